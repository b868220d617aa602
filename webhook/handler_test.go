package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/httpapi/httpapitest"
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/signature"
)

type mapResolver map[string]event.Owner

func (m mapResolver) Resolve(_ context.Context, job string) (event.Owner, bool, error) {
	o, ok := m[job]
	return o, ok, nil
}

type failingResolver struct{ err error }

func (f failingResolver) Resolve(context.Context, string) (event.Owner, bool, error) {
	return event.Owner{}, false, f.err
}

// newServer serves the webhook as the app does: behind the SignedBody
// middleware (limit 0: the default; secrets nil: development).
func newServer(t testing.TB, cfg Config, limit int64, secrets []string) *echo.Echo {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = httpapitest.Discard
	}
	return httpapitest.Server(t, Path, New(cfg).Serve, httpapi.SignedBodyConfig{
		Verifier: signature.NewVerifier(secrets), Header: SignatureHeader, Limit: limit,
	})
}

func post(e *echo.Echo, body, sig string) *httptest.ResponseRecorder {
	return httpapitest.Post(e, Path, body, map[string]string{SignatureHeader: sig})
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
			wantEvent: event.JobCompleted, wantRoom: "project_p1",
			wantData: `{"project_id":"p1","job_id":"j1","status":"completed","result":{"success":true,"quality_metrics":{"sicn_avg":0.85,"total_elements":125032}}}`},
		{name: "failed with error", body: `{"job_id":"j2","status":"failed","error":"OOM","project_id":7}`, wantCode: 200, wantBody: `{"status":"ok","job_id":"j2"}`,
			wantEvent: event.JobFailed, wantRoom: "project_7", wantData: `{"project_id":7,"job_id":"j2","error":"OOM"}`},
		{name: "missing status is failed, default error", body: `{"job_id":"j3","project_id":"p"}`, wantCode: 200, wantBody: `{"status":"ok","job_id":"j3"}`,
			wantEvent: event.JobFailed, wantRoom: "project_p", wantData: `{"project_id":"p","job_id":"j3","error":"Unknown error"}`},
		{name: "completed without result", body: `{"job_id":"j4","status":"completed","project_id":"p"}`, wantCode: 200, wantBody: `{"status":"ok","job_id":"j4"}`,
			wantEvent: event.JobCompleted, wantRoom: "project_p", wantData: `{"project_id":"p","job_id":"j4","status":"completed","result":null}`},
		{name: "numeric job id echoed", body: `{"job_id":99,"status":"completed","result":{},"project_id":"p"}`, wantCode: 200, wantBody: `{"status":"ok","job_id":99}`,
			wantEvent: event.JobCompleted, wantRoom: "project_p", wantData: `{"project_id":"p","job_id":99,"status":"completed","result":{}}`},
		{name: "resolved by registry", body: `{"job_id":"known","status":"completed","result":1}`, resolver: mapResolver{"known": {Project: rooms.ID{Raw: "rp", Key: "rp"}}},
			wantCode: 200, wantBody: `{"status":"ok","job_id":"known"}`, wantEvent: event.JobCompleted, wantRoom: "project_rp", wantData: `{"project_id":"rp","job_id":"known","status":"completed","result":1}`},
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
		{name: "bus unavailable", body: completed, pubErr: httpapitest.ErrUnavailable, wantCode: 503, wantBody: `{"error":"Event bus unavailable, retry later"}`},
		{name: "replicas did not confirm", body: completed, pubErr: &bus.UnavailableError{Err: &bus.ReplicaError{Want: 1}}, wantCode: 503, wantBody: `{"error":"Event not confirmed by the Redis replicas, retry later"}`},
		{name: "registry unavailable", body: `{"job_id":"j","status":"completed"}`, resolver: failingResolver{httpapitest.ErrUnavailable}, wantCode: 503, wantBody: `{"error":"Event bus unavailable, retry later"}`},
		{name: "registry failure", body: `{"job_id":"j","status":"completed"}`, resolver: failingResolver{errors.New("corrupt entry")}, wantCode: 500, wantBody: `{"error":"Job lookup failed"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &httpapitest.Publisher{Err: tc.pubErr}
			e := newServer(t, Config{Publisher: pub, Resolver: tc.resolver}, tc.maxBody, nil)
			rec := post(e, tc.body, tc.sig)
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d (body %s)", rec.Code, tc.wantCode, rec.Body)
			}
			httpapitest.AssertJSON(t, rec.Body.String(), tc.wantBody)
			events := pub.Events()
			if tc.wantEvent == "" {
				if len(events) != 0 {
					t.Fatalf("published %v, want nothing", events)
				}
				return
			}
			if len(events) != 1 {
				t.Fatalf("published %d events, want 1", len(events))
			}
			ev := events[0]
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
	e := newServer(t, Config{Publisher: &httpapitest.Publisher{Err: bus.ErrDuplicate}}, 0, nil)
	rec := post(e, `{"job_id":"j1","status":"completed","project_id":"p"}`, "")
	if rec.Code != 200 {
		t.Fatalf("code = %d", rec.Code)
	}
	httpapitest.AssertJSON(t, rec.Body.String(), `{"status":"ok","job_id":"j1"}`)
}

func TestDedupeKeyPerJobAndStatus(t *testing.T) {
	a, _ := Parse([]byte(`{"job_id":"j1","status":"completed"}`), 0)
	b, _ := Parse([]byte(`{"job_id":"j1","status":"failed"}`), 0)
	c, _ := Parse([]byte(`{"job_id":"j1"}`), 0)
	if DedupeKey(a) == DedupeKey(b) || DedupeKey(b) != DedupeKey(c) {
		t.Fatalf("keys: %q %q %q", DedupeKey(a), DedupeKey(b), DedupeKey(c))
	}
}

// batchRecorder is a BatchTracker that keeps the ends it was given.
type batchRecorder struct {
	ends []event.JobEnd
	err  error
}

func (b *batchRecorder) JobEnded(_ context.Context, end event.JobEnd) (bool, error) {
	if b.err != nil {
		return false, b.err
	}
	b.ends = append(b.ends, end)
	return len(b.ends) == 1, nil
}

// A batch job's end is counted, also on a duplicate (a retry after a failed
// count must count it); a failed count answers 503 so Modal retries.
func TestServeCountsBatchJobs(t *testing.T) {
	body := `{"job_id":"j1","status":"failed","error":"OOM","project_id":"p","batch_id":7}`
	batches := &batchRecorder{}
	pub := &httpapitest.Publisher{}
	e := newServer(t, Config{Publisher: pub, Batches: batches}, 0, nil)
	for range 2 {
		if rec := post(e, body, ""); rec.Code != 200 {
			t.Fatalf("code = %d (%s)", rec.Code, rec.Body)
		}
	}
	if len(pub.Events()) != 1 || len(batches.ends) != 2 {
		t.Fatalf("published %d, counted %d; want 1 and 2", len(pub.Events()), len(batches.ends))
	}
	end := batches.ends[0]
	if end.Owner.Batch.Key != "7" || end.Job.Key != "j1" || !end.Failed || end.ProgressMessage() != "OOM" {
		t.Fatalf("end = %+v", end)
	}
	e = newServer(t, Config{Publisher: &httpapitest.Publisher{}, Batches: &batchRecorder{err: httpapitest.ErrUnavailable}}, 0, nil)
	if rec := post(e, body, ""); rec.Code != 503 {
		t.Fatalf("failed count: code = %d", rec.Code)
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
		pub := &httpapitest.Publisher{}
		e := newServer(t, Config{Publisher: pub}, 4096, []string{"k"})
		if signIt {
			header = signature.Header("k", []byte(body))
		}
		rec := post(e, body, header)
		events := pub.Events()
		switch rec.Code {
		case 200:
			if !signIt && header != signature.Header("k", []byte(body)) {
				if _, err := signature.Parse(header); err != nil {
					t.Fatalf("200 for a malformed signature %q", header)
				}
			}
			if len(events) != 1 || !json.Valid(events[0].Payload) {
				t.Fatalf("200 without exactly one valid event: %v", events)
			}
		case 400, 401, 404, 413:
			if len(events) != 0 {
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
	e := newServer(b, Config{Publisher: discard{}, Logger: slog.New(slog.DiscardHandler)}, 0, []string{"k"})
	b.ReportAllocs()
	for b.Loop() {
		if rec := post(e, body, sig); rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

type discard struct{}

func (discard) Publish(context.Context, event.Event) error { return nil }

// The 200 answer is the bytes the map it was written from gave: members in
// key order, HTML escaped as Echo's encoder does, a newline after.
func TestServeAnswerBytes(t *testing.T) {
	for _, job := range []string{`"j1"`, `99`, `"<a&b>"`, `"é\u2028"`} {
		body := `{"job_id":` + job + `,"status":"completed","project_id":"p"}`
		e := newServer(t, Config{Publisher: &httpapitest.Publisher{}}, 0, nil)
		rec := post(e, body, "")
		pretty := httpapitest.Post(e, Path+"?pretty", body, nil)
		e.Debug = true // Echo indents every JSON answer it encodes in debug mode
		debug := post(e, body, "")
		for _, rec := range []*httptest.ResponseRecorder{pretty, debug} {
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), "{\n  \"job_id\": ") {
				t.Fatalf("debug or ?pretty: answer %d %q, indented before", rec.Code, rec.Body)
			}
		}
		var raw any
		if err := json.Unmarshal([]byte(job), &raw); err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(map[string]any{"status": "ok", "job_id": raw})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Code != 200 || rec.Body.String() != string(want)+"\n" || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("answer %d %q %q, want %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body, want)
		}
	}
}

// Every line about a request names the route and what was learnt of the
// webhook so far, in the order learnt; the line's own attributes last.
func TestServeLogLines(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := newServer(t, Config{Publisher: &httpapitest.Publisher{}, Batches: &batchRecorder{}, Logger: log}, 0, nil)
	if rec := post(e, `{"job_id":"j1","status":"completed","project_id":"p1","batch_id":"b1"}`, ""); rec.Code != 200 {
		t.Fatalf("code = %d", rec.Code)
	}
	post(e, `{"job_id":"j2"}`, "")
	post(e, `{"job_id":`, "")
	want := []string{
		"msg=\"batch progress recorded\" route=/api/webhooks/modal request_id=\"\" job_id=j1 status=completed project_id=p1 batch_id=b1\n",
		"msg=\"webhook accepted\" route=/api/webhooks/modal request_id=\"\" job_id=j1 status=completed project_id=p1 batch_id=b1 event=job_completed\n",
		"msg=\"webhook for unknown job\" route=/api/webhooks/modal request_id=\"\" job_id=j2 status=failed\n",
		"msg=\"webhook rejected\" route=/api/webhooks/modal request_id=\"\" reason=",
	}
	for _, w := range want {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("no line with %q in\n%s", w, logs.String())
		}
	}
}
