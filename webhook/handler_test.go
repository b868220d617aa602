package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/eventname"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/signature"
)

// recorder is a Publisher that keeps what it was given.
type recorder struct {
	mu     sync.Mutex
	events []bus.Event
	err    error
}

func (r *recorder) Publish(_ context.Context, e bus.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.events = append(r.events, e)
	return nil
}

type unavailableErr struct{}

func (unavailableErr) Error() string     { return "redis down" }
func (unavailableErr) Unavailable() bool { return true }

type mapResolver map[string]Owner

func (m mapResolver) Resolve(_ context.Context, job string) (Owner, error) {
	if o, ok := m[job]; ok {
		return o, nil
	}
	return Owner{}, ErrJobNotFound
}

func newServer(t *testing.T, cfg Config) *echo.Echo {
	t.Helper()
	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(slog.New(slog.DiscardHandler))
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	New(cfg).Register(e)
	return e
}

func post(e *echo.Echo, body, sig string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestServe(t *testing.T) {
	const secret = "s3cret"
	sign := func(body string) string { return signature.Header(secret, []byte(body)) }
	completed := `{"job_id":"j1","status":"completed","result":{"success":true,"quality_metrics":{"sicn_avg":0.85,"total_elements":125032}},"project_id":"p1"}`
	tests := []struct {
		name      string
		body      string
		sig       string
		resolver  Resolver
		pubErr    error
		maxBody   int64
		wantCode  int
		wantBody  string
		wantEvent string
		wantRoom  string
		wantData  string
	}{
		{name: "completed", body: completed, sig: sign(completed), wantCode: 200, wantBody: `{"status":"ok","job_id":"j1"}`,
			wantEvent: eventname.JobCompleted, wantRoom: "project_p1",
			wantData: `{"project_id":"p1","job_id":"j1","status":"completed","result":{"success":true,"quality_metrics":{"sicn_avg":0.85,"total_elements":125032}}}`},
		{name: "failed with error", body: `{"job_id":"j2","status":"failed","error":"OOM","project_id":7}`, wantCode: 200, wantBody: `{"status":"ok","job_id":"j2"}`,
			wantEvent: eventname.JobFailed, wantRoom: "project_7", wantData: `{"project_id":7,"job_id":"j2","error":"OOM"}`},
		{name: "missing status is failed, default error", body: `{"job_id":"j3","project_id":"p"}`, wantCode: 200, wantBody: `{"status":"ok","job_id":"j3"}`,
			wantEvent: eventname.JobFailed, wantRoom: "project_p", wantData: `{"project_id":"p","job_id":"j3","error":"Unknown error"}`},
		{name: "completed without result", body: `{"job_id":"j4","status":"completed","project_id":"p"}`, wantCode: 200, wantBody: `{"status":"ok","job_id":"j4"}`,
			wantEvent: eventname.JobCompleted, wantRoom: "project_p", wantData: `{"project_id":"p","job_id":"j4","status":"completed","result":null}`},
		{name: "numeric job id echoed", body: `{"job_id":99,"status":"completed","result":{},"project_id":"p"}`, wantCode: 200, wantBody: `{"status":"ok","job_id":99}`,
			wantEvent: eventname.JobCompleted, wantRoom: "project_p", wantData: `{"project_id":"p","job_id":99,"status":"completed","result":{}}`},
		{name: "resolved by registry", body: `{"job_id":"known","status":"completed","result":1}`, resolver: mapResolver{"known": {Project: rooms.ID{Raw: "rp", Key: "rp"}}},
			wantCode: 200, wantBody: `{"status":"ok","job_id":"known"}`, wantEvent: eventname.JobCompleted, wantRoom: "project_rp", wantData: `{"project_id":"rp","job_id":"known","status":"completed","result":1}`},
		{name: "unknown job", body: `{"job_id":"nobody","status":"completed"}`, wantCode: 404, wantBody: `{"error":"Job not found"}`},
		{name: "unknown job with registry", body: `{"job_id":"nobody"}`, resolver: mapResolver{}, wantCode: 404, wantBody: `{"error":"Job not found"}`},
		{name: "invalid JSON", body: `{"job_id":`, wantCode: 400, wantBody: `{"error":"Invalid JSON"}`},
		{name: "JSON array", body: `[1]`, wantCode: 400, wantBody: `{"error":"Invalid JSON"}`},
		{name: "JSON null", body: `null`, wantCode: 400, wantBody: `{"error":"Invalid JSON"}`},
		{name: "empty body", body: ``, wantCode: 400, wantBody: `{"error":"Invalid JSON"}`},
		{name: "missing job_id", body: `{"status":"completed","project_id":"p"}`, wantCode: 400, wantBody: `{"error":"Missing job_id"}`},
		{name: "empty job_id", body: `{"job_id":"","project_id":"p"}`, wantCode: 400, wantBody: `{"error":"Missing job_id"}`},
		{name: "object job_id", body: `{"job_id":{"a":1},"project_id":"p"}`, wantCode: 400, wantBody: `{"error":"Invalid job_id"}`},
		{name: "non-string status", body: `{"job_id":"j","status":1,"project_id":"p"}`, wantCode: 400, wantBody: `{"error":"Invalid status"}`},
		{name: "bad project id", body: `{"job_id":"j","project_id":"a\u0000b"}`, wantCode: 400, wantBody: `{"error":"Invalid project_id or batch_id"}`},
		{name: "too large", body: `{"job_id":"j","project_id":"p","result":"` + strings.Repeat("x", 200) + `"}`, maxBody: 100, wantCode: 413, wantBody: `{"error":"Request body too large (limit 100 bytes)"}`},
		{name: "publish failure", body: completed, pubErr: errors.New("boom"), wantCode: 500, wantBody: `{"error":"Failed to publish event"}`},
		{name: "bus unavailable", body: completed, pubErr: unavailableErr{}, wantCode: 503, wantBody: `{"error":"Event bus unavailable, retry later"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recorder{err: tc.pubErr}
			e := newServer(t, Config{Publisher: pub, Resolver: tc.resolver, MaxBodyBytes: tc.maxBody})
			rec := post(e, tc.body, tc.sig)
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d (body %s)", rec.Code, tc.wantCode, rec.Body)
			}
			assertJSON(t, rec.Body.String(), tc.wantBody)
			if tc.wantEvent == "" {
				if len(pub.events) != 0 {
					t.Fatalf("published %v, want nothing", pub.events)
				}
				return
			}
			if len(pub.events) != 1 {
				t.Fatalf("published %d events, want 1", len(pub.events))
			}
			ev := pub.events[0]
			if ev.Name != tc.wantEvent || len(ev.Rooms) != 1 || ev.Rooms[0] != tc.wantRoom {
				t.Fatalf("event = %s to %v, want %s to %s", ev.Name, ev.Rooms, tc.wantEvent, tc.wantRoom)
			}
			if string(ev.Payload) != tc.wantData {
				t.Fatalf("payload = %s\nwant      %s", ev.Payload, tc.wantData)
			}
		})
	}
}

func TestServeDuplicateAnswers200WithoutPublishing(t *testing.T) {
	pub := &recorder{err: bus.ErrDuplicate}
	e := newServer(t, Config{Publisher: pub})
	rec := post(e, `{"job_id":"j1","status":"completed","project_id":"p"}`, "")
	if rec.Code != 200 {
		t.Fatalf("code = %d", rec.Code)
	}
	assertJSON(t, rec.Body.String(), `{"status":"ok","job_id":"j1"}`)
}

func TestDedupeKeyPerJobAndStatus(t *testing.T) {
	a, _ := Parse([]byte(`{"job_id":"j1","status":"completed"}`), 0)
	b, _ := Parse([]byte(`{"job_id":"j1","status":"failed"}`), 0)
	c, _ := Parse([]byte(`{"job_id":"j1"}`), 0)
	if DedupeKey(a) == DedupeKey(b) || DedupeKey(b) != DedupeKey(c) {
		t.Fatalf("keys: %q %q %q", DedupeKey(a), DedupeKey(b), DedupeKey(c))
	}
}

func TestServeSignatures(t *testing.T) {
	body := `{"job_id":"j1","status":"completed","result":{},"project_id":"p"}`
	tests := []struct {
		name     string
		secrets  []string
		sig      string
		wantCode int
	}{
		{"valid", []string{"k"}, signature.Header("k", []byte(body)), 200},
		{"valid bare hex", []string{"k"}, strings.TrimPrefix(signature.Header("k", []byte(body)), "sha256="), 200},
		{"rotation: old key", []string{"new", "k"}, signature.Header("k", []byte(body)), 200},
		{"wrong key", []string{"k"}, signature.Header("x", []byte(body)), 401},
		{"missing", []string{"k"}, "", 401},
		{"wrong prefix", []string{"k"}, "sha1=" + strings.Repeat("0", 64), 401},
		{"seed mock header without secret (development)", nil, "sha256=MOCKED_SIGNATURE_IF_SECRET_NOT_SET", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recorder{}
			e := newServer(t, Config{Publisher: pub, Verifier: signature.NewVerifier(tc.secrets)})
			rec := post(e, body, tc.sig)
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d (%s)", rec.Code, tc.wantCode, rec.Body)
			}
			if tc.wantCode == 401 {
				assertJSON(t, rec.Body.String(), `{"error":"Invalid signature"}`)
				if len(pub.events) != 0 {
					t.Fatal("an unsigned webhook was published")
				}
			}
		})
	}
}

func TestSecretNeverLogged(t *testing.T) {
	var logs strings.Builder
	e := newServer(t, Config{
		Publisher: &recorder{},
		Verifier:  signature.NewVerifier([]string{"topsecret-value"}),
		Logger:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	post(e, `{"job_id":"j"}`, "sha256="+strings.Repeat("0", 64))
	post(e, `{"job_id":"j","project_id":"p"}`, signature.Header("topsecret-value", []byte(`{"job_id":"j","project_id":"p"}`)))
	if strings.Contains(logs.String(), "topsecret-value") {
		t.Fatalf("secret in logs: %s", logs.String())
	}
}

func assertJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("response %q is not JSON: %v", got, err)
	}
	_ = json.Unmarshal([]byte(want), &w)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("body = %s, want %s", gb, wb)
	}
}

// FuzzServe drives the whole webhook path (body limit, signature, parse,
// event building) with arbitrary bodies and headers: it must never panic,
// must answer one of the documented codes, and must publish only for a
// correctly signed body it answered 200.
func FuzzServe(f *testing.F) {
	f.Add(`{"job_id":"j1","status":"completed","result":{"a":1},"project_id":"p"}`, "", true)
	f.Add(`{"job_id":1,"status":"failed","error":{"x":[1]},"project_id":2,"batch_id":"b"}`, "sha256=00", false)
	f.Add(`{"job_id":"j","project_id":"\u0000"}`, "", true)
	f.Add(`[]`, "", true)
	f.Fuzz(func(t *testing.T, body, header string, signIt bool) {
		pub := &recorder{}
		e := newServer(t, Config{Publisher: pub, Verifier: signature.NewVerifier([]string{"k"}), MaxBodyBytes: 4096})
		if signIt {
			header = signature.Header("k", []byte(body))
		}
		rec := post(e, body, header)
		switch rec.Code {
		case 200:
			if !signIt && header != signature.Header("k", []byte(body)) {
				if _, err := signature.Parse(header); err != nil {
					t.Fatalf("200 for a malformed signature %q", header)
				}
			}
			if len(pub.events) != 1 || !json.Valid(pub.events[0].Payload) {
				t.Fatalf("200 without exactly one valid event: %v", pub.events)
			}
		case 400, 401, 404, 413:
			if len(pub.events) != 0 {
				t.Fatalf("%d but published", rec.Code)
			}
		default:
			t.Fatalf("unexpected code %d", rec.Code)
		}
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("answer is not a JSON object: %q", rec.Body)
		}
	})
}

func BenchmarkServe(b *testing.B) {
	body := `{"job_id":"j1","status":"completed","result":{"success":true,"s3_output_path":"s3://bucket/path/to/mesh.msh","quality_metrics":{"sicn_avg":0.85,"total_elements":125032}},"project_id":"p1"}`
	sig := signature.Header("k", []byte(body))
	e := echo.New()
	New(Config{Publisher: &discard{}, Verifier: signature.NewVerifier([]string{"k"}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(e)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
		req.Header.Set(SignatureHeader, sig)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

type discard struct{}

func (discard) Publish(context.Context, bus.Event) error { return nil }
