package registry_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/httpapi/httpapitest"
	"github.com/meshgen/gateway/registry"
	"github.com/meshgen/gateway/signature"
)

func jobsServer(t testing.TB, secrets []string) (*echo.Echo, registry.Store) {
	t.Helper()
	b := bus.NewMemory(bus.MemoryOptions{})
	t.Cleanup(func() { _ = b.Close() })
	store := registry.NewMemory(b, time.Hour)
	h := registry.NewHandler(registry.HandlerConfig{Store: store, Logger: httpapitest.Discard})
	e := httpapitest.Server(t, registry.Path, h.Serve, httpapi.SignedBodyConfig{
		Verifier: signature.NewVerifier(secrets), Header: httpapi.SignatureHeader, Limit: 2048,
	})
	return e, store
}

func postJobs(e *echo.Echo, body, sig string) *httptest.ResponseRecorder {
	return httpapitest.Post(e, registry.Path, body, map[string]string{httpapi.SignatureHeader: sig})
}

func TestJobsHandler(t *testing.T) {
	const secret = "jobs-secret"
	tests := []struct {
		name     string
		body     string
		sign     bool
		code     int
		answer   string
		resolves map[string]string // job -> project key
	}{
		{"one job", `{"job_id":"j1","project_id":"p1"}`, true, 200, `{"registered":1,"status":"ok"}`, map[string]string{"j1": "p1"}},
		{"many jobs with defaults", `{"project_id":5,"batch_id":"b","total_jobs":3,"jobs":[{"job_id":"a"},{"job_id":"b","project_id":"other"}]}`, true, 200,
			`{"batch_id":"b","registered":2,"status":"ok","total_jobs":3}`, map[string]string{"a": "5", "b": "other"}},
		{"batch on its own", `{"batch_id":"b2","total_jobs":10}`, true, 200, `{"batch_id":"b2","registered":0,"status":"ok","total_jobs":10}`, nil},
		{"unsigned", `{"job_id":"j1","project_id":"p1"}`, false, 401, `{"error":"Invalid signature"}`, nil},
		{"invalid JSON", `{"job_id":`, true, 400, `{"error":"Invalid JSON"}`, nil},
		{"nothing", `{}`, true, 400, `{"error":"Nothing to register: give job_id, jobs or batch_id with total_jobs"}`, nil},
		{"total without batch", `{"total_jobs":3}`, true, 400, `{"error":"Missing batch_id: total_jobs registers a batch"}`, nil},
		{"bad total", `{"batch_id":"b","total_jobs":-1}`, true, 400, `{"error":"Invalid total_jobs: must be an integer between 0 and 1000000"}`, nil},
		{"all or nothing", `{"jobs":[{"job_id":"ok","project_id":"p"},{"job_id":"x"},{"project_id":"p"},{"job_id":"y","project_id":{"a":1}}]}`, true, 400,
			`{"error":"Invalid jobs","items":[{"error":"Missing project_id","index":1},{"error":"Missing job_id","index":2},{"error":"Invalid project_id: must be a string or an integer, not an object","index":3}]}`, map[string]string{"ok": ""}},
		{"too large", `{"job_id":"j","project_id":"` + strings.Repeat("p", 3000) + `"}`, true, 413, `{"error":"Request body too large (limit 2048 bytes)"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, store := jobsServer(t, []string{secret})
			sig := ""
			if tc.sign {
				sig = signature.Header(secret, []byte(tc.body))
			}
			rec := postJobs(e, tc.body, sig)
			if rec.Code != tc.code {
				t.Fatalf("code %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			httpapitest.AssertJSON(t, rec.Body.String(), tc.answer)
			for job, project := range tc.resolves {
				o, found, err := store.Resolve(context.Background(), job)
				if project == "" {
					if found {
						t.Fatalf("%s registered although the request was refused", job)
					}
					continue
				}
				if err != nil || !found || o.Project.Key != project {
					t.Fatalf("Resolve(%s) = %+v, %v, %v", job, o, found, err)
				}
			}
		})
	}
}

// FuzzServe drives /api/jobs with arbitrary bodies: no panic, only
// documented answers, and nothing registered unless answered 200.
func FuzzServe(f *testing.F) {
	f.Add(`{"job_id":"j1","project_id":"p1"}`)
	f.Add(`{"project_id":5,"batch_id":"b","total_jobs":3,"jobs":[{"job_id":"a"},{"job_id":1}]}`)
	f.Add(`{"jobs":[{"job_id":{"x":1}}]}`)
	f.Add(`{"batch_id":1e400,"total_jobs":1e9}`)
	// One server per fuzzing process: building a bus per input would cost
	// more than the input's handling.
	e, _ := jobsServer(f, nil)
	f.Fuzz(func(t *testing.T, body string) {
		rec := postJobs(e, body, "")
		switch rec.Code {
		case 200, 400, 413:
		default:
			t.Fatalf("code %d for %q", rec.Code, body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", rec.Body)
		}
	})
}
