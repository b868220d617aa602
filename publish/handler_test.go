package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/httpapi/httpapitest"
	"github.com/meshgen/gateway/signature"
)

var (
	// receipt is the fake clock: 12:00:00.123Z, given in another zone.
	receipt     = time.Date(2024, 5, 1, 14, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	receiptJSON = `"2024-05-01T12:00:00.123Z"`
	discardLog  = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// newServer serves the publish API as the app does: behind the SignedBody
// middleware, without a secret (development) unless sb says otherwise.
func newServer(t testing.TB, cfg Config, sb ...httpapi.SignedBodyConfig) *echo.Echo {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discardLog
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return receipt }
	}
	mw := httpapi.SignedBodyConfig{Header: httpapi.SignatureHeader, Logger: cfg.Logger}
	if len(sb) > 0 {
		mw.Verifier, mw.Limit = sb[0].Verifier, sb[0].Limit
	}
	return httpapitest.Server(t, Path, New(cfg).Serve, mw)
}

func post(e *echo.Echo, body, sig string) *httptest.ResponseRecorder {
	return httpapitest.Post(e, Path, body, map[string]string{httpapi.SignatureHeader: sig})
}

// want is one expected bus event.
type want struct {
	name    string
	rooms   []string
	payload string
	dedupe  string
}

func checkEvents(t *testing.T, got []event.Event, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("published %d events, want %d: %v", len(got), len(wants), names(got))
	}
	for i, w := range wants {
		g := got[i]
		if g.Name != w.name || !slices.Equal(g.Rooms, w.rooms) || g.DedupeKey != w.dedupe {
			t.Fatalf("event %d = %s to %v (dedupe %q), want %s to %v (dedupe %q)", i, g.Name, g.Rooms, g.DedupeKey, w.name, w.rooms, w.dedupe)
		}
		if string(g.Payload) != w.payload {
			t.Fatalf("event %d payload = %s\nwant              %s", i, g.Payload, w.payload)
		}
	}
}

func names(events []event.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Name + fmt.Sprint(e.Rooms)
	}
	return out
}

var assertJSON = httpapitest.AssertJSON

func ok(n, dups int) string {
	return fmt.Sprintf(`{"status":"ok","accepted":%d,"duplicates":%d}`, n, dups)
}

// invalid is the 400 answer with one invalid item.
func invalid(index int, reason string) string {
	b, _ := json.Marshal(map[string]any{"error": "Invalid events", "items": []ItemError{{Index: index, Error: reason}}})
	return string(b)
}

func TestServe(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		extras   []string
		wantCode int
		wantBody string
		want     []want
	}{
		// One event per type, room from the payload.
		{name: "single log_line, timestamp kept", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"log_line","data":{"job_id":"j1","message":"meshing...","timestamp":"2024-05-01T10:00:00Z","project_id":42}}`,
			want: []want{{"log_line", []string{"project_42"}, `{"job_id":"j1","message":"meshing...","timestamp":"2024-05-01T10:00:00Z","project_id":42}`, ""}}},
		{name: "log_line timestamp filled (UTC, ms)", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"log_line","project_id":"p1","data":{"message":"m","job_id":7}}`,
			want: []want{{"log_line", []string{"project_p1"}, `{"job_id":7,"message":"m","timestamp":` + receiptJSON + `}`, ""}}},
		{name: "log_line null timestamp filled", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"log_line","project_id":"p1","data":{"job_id":"j","message":"m","timestamp":null}}`,
			want: []want{{"log_line", []string{"project_p1"}, `{"job_id":"j","message":"m","timestamp":` + receiptJSON + `}`, ""}}},
		{name: "log_line Python isoformat timestamp", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"log_line","project_id":"p1","data":{"job_id":"j","message":"","timestamp":"2024-05-01T10:00:00.123456"}}`,
			want: []want{{"log_line", []string{"project_p1"}, `{"job_id":"j","message":"","timestamp":"2024-05-01T10:00:00.123456"}`, ""}}},
		{name: "log_line timestamp with offset", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"log_line","project_id":"p1","data":{"job_id":"j","message":"x","timestamp":"2024-05-01T10:00:00.5+02:00"}}`,
			want: []want{{"log_line", []string{"project_p1"}, `{"job_id":"j","message":"x","timestamp":"2024-05-01T10:00:00.5+02:00"}`, ""}}},
		{name: "job_progress to its batch room", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_progress","data":{"job_id":"j1","progress":42.5,"status":"meshing","message":"step 2/4","batch_id":9}}`,
			want: []want{{"job_progress", []string{"batch_9"}, `{"batch_id":9,"job_id":"j1","progress":42.5,"status":"meshing","message":"step 2/4"}`, ""}}},
		{name: "job_progress without batch to its project room", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_progress","data":{"job_id":"j1","progress":0,"status":"queued","project_id":"p"}}`,
			want: []want{{"job_progress", []string{"project_p"}, `{"job_id":"j1","progress":0,"status":"queued","project_id":"p"}`, ""}}},
		{name: "job_progress with batch and project in payload goes to the batch", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_progress","data":{"job_id":"j1","progress":100,"status":"done","project_id":"p","batch_id":"b"}}`,
			want: []want{{"job_progress", []string{"batch_b"}, `{"batch_id":"b","job_id":"j1","progress":100,"status":"done","project_id":"p"}`, ""}}},
		{name: "job_progress event-level batch_id inserted", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_progress","batch_id":9,"data":{"job_id":"j1","progress":10,"status":"running"}}`,
			want: []want{{"job_progress", []string{"batch_9"}, `{"batch_id":9,"job_id":"j1","progress":10,"status":"running"}`, ""}}},
		{name: "job_progress event-level string batch_id inserted as a string", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_progress","batch_id":"9","data":{"job_id":"j1","progress":10,"status":"running"}}`,
			want: []want{{"job_progress", []string{"batch_9"}, `{"batch_id":"9","job_id":"j1","progress":10,"status":"running"}`, ""}}},
		{name: "job_progress to both rooms, one event", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_progress","project_id":1,"batch_id":9,"data":{"job_id":"j1","progress":10,"status":"running"}}`,
			want: []want{{"job_progress", []string{"project_1", "batch_9"}, `{"batch_id":9,"job_id":"j1","progress":10,"status":"running"}`, ""}}},
		{name: "job_progress to a project room named by room", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_progress","room":"project_1","data":{"job_id":"j1","progress":10,"status":"running"}}`,
			want: []want{{"job_progress", []string{"project_1"}, `{"job_id":"j1","progress":10,"status":"running"}`, ""}}},
		{name: "batch_status", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"batch_status","data":{"total_jobs":10,"completed_jobs":3,"status":"processing","batch_id":"b7","failed_jobs":1}}`,
			want: []want{{"batch_status", []string{"batch_b7"}, `{"batch_id":"b7","status":"processing","completed_jobs":3,"total_jobs":10,"failed_jobs":1}`, ""}}},
		{name: "batch_status event-level batch_id inserted", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"batch_status","batch_id":7,"data":{"status":"completed","completed_jobs":10,"total_jobs":10}}`,
			want: []want{{"batch_status", []string{"batch_7"}, `{"batch_id":7,"status":"completed","completed_jobs":10,"total_jobs":10}`, ""}}},
		{name: "job_completed, status filled", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_completed","data":{"result":{"success":true,"quality_metrics":{"sicn_avg":0.85}},"job_id":"j1","project_id":42}}`,
			want: []want{{"job_completed", []string{"project_42"}, `{"project_id":42,"job_id":"j1","status":"completed","result":{"success":true,"quality_metrics":{"sicn_avg":0.85}}}`, ""}}},
		{name: "job_completed without result", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_completed","project_id":"p","data":{"job_id":"j1","status":"completed"}}`,
			want: []want{{"job_completed", []string{"project_p"}, `{"project_id":"p","job_id":"j1","status":"completed","result":null}`, ""}}},
		{name: "job_failed with error", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_failed","data":{"project_id":"p","job_id":"j1","error":"OOM"}}`,
			want: []want{{"job_failed", []string{"project_p"}, `{"project_id":"p","job_id":"j1","error":"OOM"}`, ""}}},
		{name: "job_failed default error", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_failed","data":{"project_id":"p","job_id":"j1","error":null}}`,
			want: []want{{"job_failed", []string{"project_p"}, `{"project_id":"p","job_id":"j1","error":"Unknown error"}`, ""}}},
		{name: "job_failed event-level project_id inserted", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_failed","project_id":5,"data":{"job_id":"j1"}}`,
			want: []want{{"job_failed", []string{"project_5"}, `{"project_id":5,"job_id":"j1","error":"Unknown error"}`, ""}}},
		{name: "extra payload fields pass through, compacted, in order", wantCode: 200, wantBody: ok(1, 0),
			body: "{ \"event\" : \"job_failed\" ,\n \"data\": {\"zeta\": [1, {\"a b\": \" x \"}], \"project_id\": \"p\", \"job_id\": \"j\", \"alpha\":\t\"\\u00e9\\\"\"} }",
			want: []want{{"job_failed", []string{"project_p"}, `{"project_id":"p","job_id":"j","error":"Unknown error","zeta":[1,{"a b":" x "}],"alpha":"\u00e9\""}`, ""}}},
		{name: "id becomes the dedupe key", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"log_line","id":"j1:log:1","project_id":1,"data":{"job_id":"j1","message":"m","timestamp":"2024-05-01T10:00:00Z"}}`,
			want: []want{{"log_line", []string{"project_1"}, `{"job_id":"j1","message":"m","timestamp":"2024-05-01T10:00:00Z"}`, "events:j1:log:1"}}},

		// Batches.
		{name: "batch in order", wantCode: 200, wantBody: ok(3, 0),
			body: `{"events":[
				{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"a"}},
				{"event":"job_progress","batch_id":9,"data":{"job_id":"j","progress":50,"status":"running"}},
				{"event":"log_line","room":"project_1","data":{"job_id":"j","message":"b"}}]}`,
			want: []want{
				{"log_line", []string{"project_1"}, `{"job_id":"j","message":"a","timestamp":` + receiptJSON + `}`, ""},
				{"job_progress", []string{"batch_9"}, `{"batch_id":9,"job_id":"j","progress":50,"status":"running"}`, ""},
				{"log_line", []string{"project_1"}, `{"job_id":"j","message":"b","timestamp":` + receiptJSON + `}`, ""},
			}},
		{name: "a batch with one event", wantCode: 200, wantBody: ok(1, 0),
			body: `{"events":[{"event":"job_failed","data":{"project_id":1,"job_id":"j"}}]}`,
			want: []want{{"job_failed", []string{"project_1"}, `{"project_id":1,"job_id":"j","error":"Unknown error"}`, ""}}},

		// Explicit rooms.
		{name: "room project_<id>", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_completed","room":"project_42","data":{"project_id":42,"job_id":"j","result":1}}`,
			want: []want{{"job_completed", []string{"project_42"}, `{"project_id":42,"job_id":"j","status":"completed","result":1}`, ""}}},
		{name: "room batch_<id>", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"batch_status","room":"batch_b-1","data":{"batch_id":"b-1","status":"failed","completed_jobs":0,"total_jobs":2}}`,
			want: []want{{"batch_status", []string{"batch_b-1"}, `{"batch_id":"b-1","status":"failed","completed_jobs":0,"total_jobs":2}`, ""}}},
		{name: "room overrides the payload's room", wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"job_progress","room":"project_1","data":{"job_id":"j","progress":1,"status":"s","batch_id":9}}`,
			want: []want{{"job_progress", []string{"project_1"}, `{"batch_id":9,"job_id":"j","progress":1,"status":"s"}`, ""}}},
		{name: "room with a bad prefix", wantCode: 400, body: `{"event":"log_line","room":"projects_1","data":{"job_id":"j","message":"m"}}`,
			wantBody: invalid(0, `room "projects_1" is not a project or batch room ("project_<id>" or "batch_<id>")`)},
		{name: "room that is a socket id", wantCode: 400, body: `{"event":"log_line","room":"vHk3QqzE0x1dO5rFAAAB","data":{"job_id":"j","message":"m"}}`,
			wantBody: invalid(0, `room "vHk3QqzE0x1dO5rFAAAB" is not a project or batch room ("project_<id>" or "batch_<id>")`)},
		{name: "room without an id", wantCode: 400, body: `{"event":"log_line","room":"project_","data":{"job_id":"j","message":"m"}}`,
			wantBody: invalid(0, `room "project_": the id must not be empty`)},
		{name: "room with a control character", wantCode: 400, body: `{"event":"log_line","room":"batch_a\u0000b","data":{"job_id":"j","message":"m"}}`,
			wantBody: invalid(0, `room "batch_a\x00b": the id is invalid: contains control characters`)},
		{name: "room that is not a string", wantCode: 400, body: `{"event":"log_line","room":["project_1"],"data":{"job_id":"j","message":"m"}}`,
			wantBody: invalid(0, `"room" must be a string: "project_<id>" or "batch_<id>"`)},
		{name: "room and project_id", wantCode: 400, body: `{"event":"log_line","room":"project_1","project_id":1,"data":{"job_id":"j","message":"m"}}`,
			wantBody: invalid(0, `give either "room" or "project_id"/"batch_id", not both`)},
		{name: "payload project_id not the room's", wantCode: 400, body: `{"event":"job_completed","room":"project_1","data":{"project_id":2,"job_id":"j"}}`,
			wantBody: invalid(0, `data.project_id "2" does not match room project_1`)},
		{name: "payload batch_id not the event-level one", wantCode: 400, body: `{"event":"batch_status","batch_id":1,"data":{"batch_id":2,"status":"processing","completed_jobs":0,"total_jobs":1}}`,
			wantBody: invalid(0, `data.batch_id "2" does not match room batch_1`)},
		{name: "job_progress to a batch room named by room needs data.batch_id", wantCode: 400, body: `{"event":"job_progress","room":"batch_9","data":{"job_id":"j","progress":1,"status":"s"}}`,
			wantBody: invalid(0, `data.batch_id is required when job_progress goes to a batch room (the batch view filters on it)`)},
		{name: "invalid event-level project_id", wantCode: 400, body: `{"event":"log_line","project_id":true,"data":{"job_id":"j","message":"m"}}`,
			wantBody: invalid(0, `"project_id" is invalid: must be a string or an integer, not a boolean`)},
		{name: "fractional event-level batch_id", wantCode: 400, body: `{"event":"batch_status","batch_id":1.5,"data":{"status":"processing","completed_jobs":0,"total_jobs":1}}`,
			wantBody: invalid(0, `"batch_id" is invalid: a number id must be an integer`)},

		// No room.
		{name: "log_line without any room", wantCode: 400, body: `{"event":"log_line","data":{"job_id":"j","message":"m"}}`,
			wantBody: invalid(0, `no room: give "room", "project_id" or "batch_id", or data.project_id`)},
		{name: "job_progress without any room", wantCode: 400, body: `{"event":"job_progress","data":{"job_id":"j","progress":1,"status":"s"}}`,
			wantBody: invalid(0, `no room: give "room", "project_id" or "batch_id", or data.batch_id or data.project_id`)},

		// Required fields per type.
		{name: "log_line missing job_id", wantCode: 400, body: `{"event":"log_line","project_id":1,"data":{"message":"m"}}`, wantBody: invalid(0, "data.job_id is required")},
		{name: "log_line object job_id", wantCode: 400, body: `{"event":"log_line","project_id":1,"data":{"job_id":{},"message":"m"}}`,
			wantBody: invalid(0, "data.job_id is invalid: must be a string or an integer, not an object")},
		{name: "log_line missing message", wantCode: 400, body: `{"event":"log_line","project_id":1,"data":{"job_id":"j"}}`, wantBody: invalid(0, "data.message is required (a string)")},
		{name: "log_line non-string message", wantCode: 400, body: `{"event":"log_line","project_id":1,"data":{"job_id":"j","message":5}}`, wantBody: invalid(0, "data.message must be a string")},
		{name: "log_line numeric timestamp", wantCode: 400, body: `{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"m","timestamp":1714557600}}`,
			wantBody: invalid(0, "data.timestamp must be an ISO-8601 date-time string, e.g. 2024-05-01T12:00:00.000Z")},
		{name: "log_line bad timestamp", wantCode: 400, body: `{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"m","timestamp":"2024-13-01T00:00:00Z"}}`,
			wantBody: invalid(0, "data.timestamp must be an ISO-8601 date-time string, e.g. 2024-05-01T12:00:00.000Z")},
		{name: "log_line empty payload project_id", wantCode: 400, body: `{"event":"log_line","data":{"job_id":"j","message":"m","project_id":""}}`,
			wantBody: invalid(0, `data.project_id must not be empty`)},
		{name: "log_line empty job_id", wantCode: 400, body: `{"event":"log_line","project_id":1,"data":{"job_id":"","message":"m"}}`,
			wantBody: invalid(0, `data.job_id must not be empty`)},
		{name: "empty event-level id", wantCode: 400, body: `{"event":"log_line","id":"","project_id":1,"data":{"job_id":"j","message":"m"}}`,
			wantBody: invalid(0, `"id" must not be empty`)},
		{name: "job_progress missing job_id", wantCode: 400, body: `{"event":"job_progress","batch_id":1,"data":{"progress":1,"status":"s"}}`, wantBody: invalid(0, "data.job_id is required")},
		{name: "job_progress missing progress", wantCode: 400, body: `{"event":"job_progress","batch_id":1,"data":{"job_id":"j","status":"s"}}`,
			wantBody: invalid(0, "data.progress is required (a number from 0 to 100)")},
		{name: "job_progress progress over 100", wantCode: 400, body: `{"event":"job_progress","batch_id":1,"data":{"job_id":"j","progress":100.5,"status":"s"}}`,
			wantBody: invalid(0, "data.progress must be a number from 0 to 100")},
		{name: "job_progress negative progress", wantCode: 400, body: `{"event":"job_progress","batch_id":1,"data":{"job_id":"j","progress":-1,"status":"s"}}`,
			wantBody: invalid(0, "data.progress must be a number from 0 to 100")},
		{name: "job_progress string progress", wantCode: 400, body: `{"event":"job_progress","batch_id":1,"data":{"job_id":"j","progress":"50","status":"s"}}`,
			wantBody: invalid(0, "data.progress must be a number from 0 to 100")},
		{name: "job_progress missing status", wantCode: 400, body: `{"event":"job_progress","batch_id":1,"data":{"job_id":"j","progress":5}}`,
			wantBody: invalid(0, "data.status is required (a string)")},
		{name: "job_progress empty status", wantCode: 400, body: `{"event":"job_progress","batch_id":1,"data":{"job_id":"j","progress":5,"status":""}}`,
			wantBody: invalid(0, "data.status must not be empty")},
		{name: "job_progress non-string message", wantCode: 400, body: `{"event":"job_progress","batch_id":1,"data":{"job_id":"j","progress":5,"status":"s","message":{}}}`,
			wantBody: invalid(0, "data.message must be a string")},
		{name: "batch_status missing batch_id", wantCode: 400, body: `{"event":"batch_status","data":{"status":"processing","completed_jobs":0,"total_jobs":1}}`,
			wantBody: invalid(0, "data.batch_id is required")},
		{name: "batch_status bad status", wantCode: 400, body: `{"event":"batch_status","batch_id":1,"data":{"status":"running","completed_jobs":0,"total_jobs":1}}`,
			wantBody: invalid(0, `data.status must be processing, completed or failed, not "running"`)},
		{name: "batch_status missing completed_jobs", wantCode: 400, body: `{"event":"batch_status","batch_id":1,"data":{"status":"processing","total_jobs":1}}`,
			wantBody: invalid(0, "data.completed_jobs is required (a non-negative integer)")},
		{name: "batch_status missing total_jobs", wantCode: 400, body: `{"event":"batch_status","batch_id":1,"data":{"status":"processing","completed_jobs":0}}`,
			wantBody: invalid(0, "data.total_jobs is required (a non-negative integer)")},
		{name: "batch_status negative count", wantCode: 400, body: `{"event":"batch_status","batch_id":1,"data":{"status":"processing","completed_jobs":-1,"total_jobs":1}}`,
			wantBody: invalid(0, "data.completed_jobs must be a non-negative integer")},
		{name: "batch_status fractional count", wantCode: 400, body: `{"event":"batch_status","batch_id":1,"data":{"status":"processing","completed_jobs":0,"total_jobs":1.5}}`,
			wantBody: invalid(0, "data.total_jobs must be a non-negative integer")},
		{name: "batch_status bad failed_jobs", wantCode: 400, body: `{"event":"batch_status","batch_id":1,"data":{"status":"processing","completed_jobs":0,"total_jobs":1,"failed_jobs":"1"}}`,
			wantBody: invalid(0, "data.failed_jobs must be a non-negative integer")},
		{name: "job_completed missing project_id", wantCode: 400, body: `{"event":"job_completed","data":{"job_id":"j"}}`, wantBody: invalid(0, "data.project_id is required")},
		{name: "job_completed missing job_id", wantCode: 400, body: `{"event":"job_completed","data":{"project_id":"p"}}`, wantBody: invalid(0, "data.job_id is required")},
		{name: "job_completed wrong status", wantCode: 400, body: `{"event":"job_completed","data":{"project_id":"p","job_id":"j","status":"failed"}}`,
			wantBody: invalid(0, `data.status must be "completed" (send job_failed for a failure)`)},
		{name: "job_failed missing project_id", wantCode: 400, body: `{"event":"job_failed","data":{"job_id":"j"}}`, wantBody: invalid(0, "data.project_id is required")},
		{name: "job_failed missing job_id", wantCode: 400, body: `{"event":"job_failed","data":{"project_id":"p"}}`, wantBody: invalid(0, "data.job_id is required")},
		{name: "job_failed too long job_id", wantCode: 400, body: `{"event":"job_failed","data":{"project_id":"p","job_id":"` + strings.Repeat("j", 129) + `"}}`,
			wantBody: invalid(0, "data.job_id is invalid: longer than 128 bytes")},

		// Event envelope.
		{name: "unknown event", wantCode: 400, body: `{"event":"job_started","project_id":1,"data":{}}`, wantBody: invalid(0, `unknown event "job_started"`)},
		{name: "missing event", wantCode: 400, body: `{"project_id":1,"data":{}}`, wantBody: invalid(0, `"event" is required`)},
		{name: "non-string event", wantCode: 400, body: `{"event":1,"project_id":1,"data":{}}`, wantBody: invalid(0, `"event" must be a non-empty string`)},
		{name: "missing data", wantCode: 400, body: `{"event":"log_line","project_id":1}`, wantBody: invalid(0, `"data" is required (the event's payload, a JSON object)`)},
		{name: "data not an object", wantCode: 400, body: `{"event":"log_line","project_id":1,"data":"hello"}`, wantBody: invalid(0, `"data" must be a JSON object`)},
		{name: "unknown event field", wantCode: 400, body: `{"event":"log_line","rooms":["project_1"],"data":{}}`,
			wantBody: invalid(0, `unknown field "rooms" (an event has event, data, room, project_id, batch_id, id)`)},
		{name: "duplicate event field", wantCode: 400, body: `{"event":"log_line","event":"job_failed","data":{}}`, wantBody: invalid(0, `field "event" appears twice`)},
		{name: "duplicate data field", wantCode: 400, body: `{"event":"job_failed","data":{"project_id":1,"job_id":"a","job_id":"b"}}`, wantBody: invalid(0, `data.job_id appears twice`)},
		{name: "invalid id", wantCode: 400, body: `{"event":"job_failed","id":{},"data":{"project_id":1,"job_id":"a"}}`,
			wantBody: invalid(0, `"id" is invalid: must be a string or an integer, not an object`)},
		{name: "an event that is not an object", wantCode: 400, body: `{"events":[1]}`, wantBody: invalid(0, "an event must be a JSON object")},
		{name: "same id twice in a request", wantCode: 400, body: `{"events":[
				{"event":"job_failed","id":"x","data":{"project_id":1,"job_id":"a"}},
				{"event":"job_failed","id":"x","data":{"project_id":1,"job_id":"b"}}]}`,
			wantBody: invalid(1, `"id" repeats the id of event 0`)},

		// Extra events.
		{name: "extra event to a room", extras: []string{"mesh_preview"}, wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"mesh_preview","room":"project_1","data":{"url": "https://x/y.png", "n": [1, 2]}}`,
			want: []want{{"mesh_preview", []string{"project_1"}, `{"url":"https://x/y.png","n":[1,2]}`, ""}}},
		{name: "extra event to both rooms by ids", extras: []string{"mesh_preview"}, wantCode: 200, wantBody: ok(1, 0),
			body: `{"event":"mesh_preview","project_id":1,"batch_id":2,"data":{}}`,
			want: []want{{"mesh_preview", []string{"project_1", "batch_2"}, `{}`, ""}}},
		{name: "extra event needs a room", extras: []string{"mesh_preview"}, wantCode: 400,
			body: `{"event":"mesh_preview","data":{"project_id":1}}`, wantBody: invalid(0, `event "mesh_preview" needs "room", "project_id" or "batch_id"`)},
		{name: "extra event data must be an object", extras: []string{"mesh_preview"}, wantCode: 400,
			body: `{"event":"mesh_preview","room":"project_1","data":[1]}`, wantBody: invalid(0, `"data" must be a JSON object`)},
		{name: "extra event not configured", wantCode: 400,
			body: `{"event":"mesh_preview","room":"project_1","data":{}}`, wantBody: invalid(0, `unknown event "mesh_preview"`)},

		// Whole-body errors.
		{name: "invalid JSON", wantCode: 400, body: `{"event":`, wantBody: `{"error":"Invalid JSON"}`},
		{name: "empty body", wantCode: 400, body: ``, wantBody: `{"error":"Invalid JSON"}`},
		{name: "JSON list", wantCode: 400, body: `[{"event":"log_line"}]`, wantBody: `{"error":"Invalid JSON"}`},
		{name: "JSON null", wantCode: 400, body: `null`, wantBody: `{"error":"Invalid JSON"}`},
		{name: "trailing garbage", wantCode: 400, body: `{"events":[]} x`, wantBody: `{"error":"Invalid JSON"}`},
		{name: "invalid UTF-8", wantCode: 400, body: "{\"event\":\"log_line\",\"project_id\":1,\"data\":{\"job_id\":\"j\",\"message\":\"\xff\"}}", wantBody: `{"error":"Invalid JSON"}`},
		{name: "empty events", wantCode: 400, body: `{"events":[]}`, wantBody: `{"error":"No events"}`},
		{name: "events not a list", wantCode: 400, body: `{"events":{"event":"log_line"}}`, wantBody: `{"error":"\"events\" must be a list of events"}`},
		{name: "events twice", wantCode: 400, body: `{"events":[],"events":[{"event":"log_line"}]}`, wantBody: `{"error":"Field \"events\" appears twice"}`},
		{name: "field next to events", wantCode: 400, body: `{"events":[],"event":"log_line"}`, wantBody: `{"error":"Unexpected field \"event\" next to \"events\""}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &httpapitest.Publisher{}
			e := newServer(t, Config{Publisher: pub, ExtraEvents: tc.extras})
			rec := post(e, tc.body, "")
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d (body %s)", rec.Code, tc.wantCode, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
			assertJSON(t, rec.Body.String(), tc.wantBody)
			checkEvents(t, pub.Events(), tc.want)
		})
	}
}

func TestAllOrNothing(t *testing.T) {
	var items []string
	for i := range 50 {
		items = append(items, fmt.Sprintf(`{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"line %d"}}`, i))
	}
	items[17] = `{"event":"log_line","project_id":1,"data":{"job_id":"j"}}`
	items[42] = `{"event":"batch_status","batch_id":1,"data":{"status":"done","completed_jobs":0,"total_jobs":1}}`
	pub := &httpapitest.Publisher{}
	e := newServer(t, Config{Publisher: pub})
	rec := post(e, `{"events":[`+strings.Join(items, ",")+`]}`, "")
	if rec.Code != 400 {
		t.Fatalf("code = %d (%s)", rec.Code, rec.Body)
	}
	assertJSON(t, rec.Body.String(), `{"error":"Invalid events","items":[
		{"index":17,"error":"data.message is required (a string)"},
		{"index":42,"error":"data.status must be processing, completed or failed, not \"done\""}]}`)
	if len(pub.Events()) != 0 {
		t.Fatalf("published %d events of an invalid request", len(pub.Events()))
	}
}

func TestMaxEvents(t *testing.T) {
	event := `{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"m"}}`
	batch := func(n int) string {
		return `{"events":[` + strings.TrimSuffix(strings.Repeat(event+",", n), ",") + `]}`
	}
	tests := []struct {
		name     string
		max      int
		n        int
		wantCode int
		wantBody string
	}{
		{"at the limit", 3, 3, 200, ok(3, 0)},
		{"over the limit", 3, 4, 400, `{"error":"Too many events: 4 (limit 3 per request)"}`},
		{"default limit", 0, 1000, 200, ok(1000, 0)},
		{"over the default limit", 0, 1001, 400, `{"error":"Too many events: 1001 (limit 1000 per request)"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &httpapitest.Publisher{}
			e := newServer(t, Config{Publisher: pub, MaxEvents: tc.max})
			rec := post(e, batch(tc.n), "")
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d (%s)", rec.Code, tc.wantCode, rec.Body)
			}
			assertJSON(t, rec.Body.String(), tc.wantBody)
			if tc.wantCode != 200 && len(pub.Events()) != 0 {
				t.Fatal("published past the limit")
			}
		})
	}
}

func TestDuplicates(t *testing.T) {
	line := func(id string, n int) string {
		return fmt.Sprintf(`{"event":"log_line","id":%q,"project_id":1,"data":{"job_id":"j","message":"line %d"}}`, id, n)
	}
	first := `{"events":[` + line("j:1", 1) + "," + line("j:2", 2) + `]}`
	retry := `{"events":[` + line("j:1", 1) + "," + line("j:2", 2) + "," + line("j:3", 3) + "," + `{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"no id"}}` + `]}`
	pub := &httpapitest.Publisher{}
	e := newServer(t, Config{Publisher: pub})
	rec := post(e, first, "")
	assertJSON(t, rec.Body.String(), ok(2, 0))
	rec = post(e, retry, "")
	if rec.Code != 200 {
		t.Fatalf("code = %d", rec.Code)
	}
	assertJSON(t, rec.Body.String(), ok(4, 2))
	var got []string
	for _, ev := range pub.Events() {
		got = append(got, ev.DedupeKey)
	}
	if !slices.Equal(got, []string{"events:j:1", "events:j:2", "events:j:3", ""}) {
		t.Fatalf("published %q", got)
	}
	// Integer ids are keys too.
	rec = post(e, `{"events":[{"event":"job_failed","id":7,"data":{"project_id":1,"job_id":"a"}},{"event":"job_failed","id":"7","data":{"project_id":1,"job_id":"a"}}]}`, "")
	assertJSON(t, rec.Body.String(), invalid(1, `"id" repeats the id of event 0`))
}

// With the real in-process bus: a retried request is delivered once.
func TestDuplicatesOnMemoryBus(t *testing.T) {
	m := bus.NewMemory(bus.MemoryOptions{})
	defer m.Close()
	e := newServer(t, Config{Publisher: m})
	body := `{"event":"job_failed","id":"modal-1:failed","data":{"project_id":1,"job_id":"modal-1"}}`
	assertJSON(t, post(e, body, "").Body.String(), ok(1, 0))
	assertJSON(t, post(e, body, "").Body.String(), ok(1, 1))
}

func TestPublishFailureMidway(t *testing.T) {
	var items []string
	for i := range 5 {
		items = append(items, fmt.Sprintf(`{"event":"log_line","id":"l%d","project_id":1,"data":{"job_id":"j","message":"%d"}}`, i, i))
	}
	body := `{"events":[` + strings.Join(items, ",") + `]}`
	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantBody   string
		retryAfter string
	}{
		{"bus unavailable", &bus.UnavailableError{Err: errors.New("dial tcp: refused")}, 503, `{"error":"Event bus unavailable, retry later","accepted":3}`, "5"},
		{"anything marked unavailable", httpapitest.ErrUnavailable, 503, `{"error":"Event bus unavailable, retry later","accepted":3}`, "5"},
		{"replicas did not confirm", &bus.UnavailableError{Err: &bus.ReplicaError{Want: 1, Timeout: 500 * time.Millisecond}}, 503, `{"error":"Event not confirmed by the Redis replicas, retry later","accepted":3}`, "5"},
		{"other failure", errors.New("boom"), 500, `{"error":"Failed to publish event","accepted":3}`, ""},
		{"closed bus", bus.ErrClosed, 500, `{"error":"Failed to publish event","accepted":3}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &httpapitest.Publisher{FailAt: 3, Err: tc.err}
			e := newServer(t, Config{Publisher: pub})
			rec := post(e, body, "")
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d (%s)", rec.Code, tc.wantCode, rec.Body)
			}
			assertJSON(t, rec.Body.String(), tc.wantBody)
			if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Fatalf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			if len(pub.Events()) != 3 {
				t.Fatalf("stored %d events, want 3 (stop at the first failure)", len(pub.Events()))
			}
			// The sender retries the whole request once the bus is back:
			// the first three are duplicates, the rest are sent, in order.
			pub.Err = nil
			rec = post(e, body, "")
			assertJSON(t, rec.Body.String(), ok(5, 3))
			var got []string
			for _, ev := range pub.Events() {
				got = append(got, ev.DedupeKey)
			}
			if !slices.Equal(got, []string{"events:l0", "events:l1", "events:l2", "events:l3", "events:l4"}) {
				t.Fatalf("after the retry the bus holds %q", got)
			}
		})
	}
}

func TestExtraEventsValidation(t *testing.T) {
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{nil, true},
		{[]string{"mesh_preview", "quota_warning"}, true},
		{[]string{""}, false},
		{[]string{"log_line"}, false},
		{[]string{"disconnect"}, false},
		{[]string{"connect_error"}, false},
		{[]string{"a\nb"}, false},
		{[]string{strings.Repeat("e", 129)}, false},
	} {
		if err := ValidateExtraEvents(tc.names); (err == nil) != tc.ok {
			t.Errorf("ValidateExtraEvents(%q) = %v", tc.names, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a reserved extra event")
		}
	}()
	New(Config{Publisher: &httpapitest.Publisher{}, Logger: discardLog, ExtraEvents: []string{"disconnect"}})
}

func TestNewPanicsWithoutPublisherOrLogger(t *testing.T) {
	for _, cfg := range []Config{{Logger: discardLog}, {Publisher: &httpapitest.Publisher{}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("New(%+v) did not panic", cfg)
				}
			}()
			New(cfg)
		}()
	}
}

func TestTimestampUsesClockPerRequest(t *testing.T) {
	now := receipt
	pub := &httpapitest.Publisher{}
	e := newServer(t, Config{Publisher: pub, Now: func() time.Time { return now }})
	body := `{"events":[{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"a"}},{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"b"}}]}`
	post(e, body, "")
	now = now.Add(1500 * time.Millisecond)
	post(e, body, "")
	want := []string{"2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123Z", "2024-05-01T12:00:01.623Z", "2024-05-01T12:00:01.623Z"}
	for i, ev := range pub.Events() {
		var p struct{ Timestamp string }
		if err := json.Unmarshal(ev.Payload, &p); err != nil || p.Timestamp != want[i] {
			t.Fatalf("event %d timestamp = %q (%v), want %q", i, p.Timestamp, err, want[i])
		}
	}
}

// The INFO log has one line per request, with counts and names, and never
// a payload's content.
func TestLogs(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := newServer(t, Config{Publisher: &httpapitest.Publisher{}, Logger: log}, httpapi.SignedBodyConfig{Verifier: signature.NewVerifier([]string{"topsecret-key"})})
	body := `{"events":[{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"PAYLOAD-CONTENT"}},{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"PAYLOAD-CONTENT"}},{"event":"job_progress","batch_id":2,"data":{"job_id":"j","progress":1,"status":"PAYLOAD-CONTENT"}}]}`
	if rec := post(e, body, signature.Header("topsecret-key", []byte(body))); rec.Code != 200 {
		t.Fatalf("code %d", rec.Code)
	}
	bad := `{"events":[{"event":"log_line","room":"PAYLOAD-CONTENT","data":{"job_id":"j","message":"PAYLOAD-CONTENT"}}]}`
	if rec := post(e, bad, signature.Header("topsecret-key", []byte(bad))); rec.Code != 400 {
		t.Fatalf("code %d", rec.Code)
	}
	out := logs.String()
	if strings.Contains(out, "PAYLOAD-CONTENT") || strings.Contains(out, "topsecret-key") {
		t.Fatalf("payload or secret in the INFO log:\n%s", out)
	}
	if !strings.Contains(out, `events="log_line=2 job_progress=1"`) || !strings.Contains(out, "count=3") {
		t.Fatalf("no summary line:\n%s", out)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Fatalf("%d log lines for 2 requests:\n%s", n, out)
	}
}

// FuzzServe drives the whole path (body limit, parse, validation, payload
// encoding) with arbitrary bodies: it must never panic, must answer only
// documented codes with a JSON object, and must publish only on 200, then
// every event with a room, a known name and a valid JSON object payload.
func FuzzServe(f *testing.F) {
	f.Add(`{"event":"log_line","project_id":1,"data":{"job_id":"j","message":"m"}}`)
	f.Add(`{"events":[{"event":"job_progress","batch_id":"9","data":{"job_id":1,"progress":1e2,"status":"s","x":[{"y":"\"}"}]}},{"event":"batch_status","room":"batch_9","data":{"batch_id":"9","status":"failed","completed_jobs":0,"total_jobs":0}}]}`)
	f.Add(`{"event":"job_completed","data":{"project_id":"p","job_id":"j","result":{"a":[1,2,{"b":null}]}}}`)
	f.Add(`{"event":"job_failed","id":"x","room":"project_\u0001","data":{"project_id":1,"job_id":1,"error":{}}}`)
	f.Add(`{"event":"mesh_preview","project_id":1,"batch_id":2,"data":{"k":"v"}}`)
	f.Add(`{"events":[1,"a",null,{}]}`)
	f.Add(`{"events":[]}`)
	f.Add(" {\"event\" : \"log_line\" , \"data\" : { \"job_id\" : \"a\\\\\" , \"message\" : \"\\u00e9\" , \"timestamp\" : \"2024-05-01 10:00:00\" } , \"project_id\" : -0 } ")
	f.Add(`{"event":"log_line","project_id":1e400,"data":{"job_id":"j","message":"m"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		pub := &httpapitest.Publisher{}
		e := newServer(t, Config{Publisher: pub, MaxEvents: 50, ExtraEvents: []string{"mesh_preview"}}, httpapi.SignedBodyConfig{Limit: 8192})
		rec := post(e, body, "")
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("answer is not a JSON object: %q", rec.Body)
		}
		if _, ok := answer["error"].(string); !ok && rec.Code != 200 {
			t.Fatalf("%d without an error: %s", rec.Code, rec.Body)
		}
		switch rec.Code {
		case 200:
			if len(pub.Events()) == 0 || len(pub.Events()) > 50 || answer["accepted"] != float64(len(pub.Events())) {
				t.Fatalf("200 with %d events published: %s", len(pub.Events()), rec.Body)
			}
			for _, ev := range pub.Events() {
				if err := ev.Validate(); err != nil || len(ev.Rooms) == 0 || len(ev.Rooms) > 2 {
					t.Fatalf("bad event %+v: %v", ev, err)
				}
				if !slices.Contains(event.Protocol, ev.Name) && ev.Name != "mesh_preview" {
					t.Fatalf("unknown event %q published", ev.Name)
				}
				for _, r := range ev.Rooms {
					if !strings.HasPrefix(r, "project_") && !strings.HasPrefix(r, "batch_") {
						t.Fatalf("room %q published", r)
					}
				}
				var payload map[string]any
				if err := json.Unmarshal(ev.Payload, &payload); err != nil {
					t.Fatalf("payload %q is not a JSON object: %v", ev.Payload, err)
				}
			}
		case 400, 413:
			if len(pub.Events()) != 0 {
				t.Fatalf("%d but published", rec.Code)
			}
		default:
			t.Fatalf("unexpected code %d: %s", rec.Code, rec.Body)
		}
	})
}

func BenchmarkServe_100LogLines(b *testing.B) {
	var items []string
	for i := range 100 {
		items = append(items, fmt.Sprintf(`{"event":"log_line","id":"job-1:log:%d","project_id":42,"data":{"job_id":"job-1","message":"Meshing surface %d of 100: 12034 triangles, min angle 21.4 deg","timestamp":"2024-05-01T12:00:%02d.123Z"}}`, i, i, i%60))
	}
	body := `{"events":[` + strings.Join(items, ",") + `]}`
	sig := signature.Header("k", []byte(body))
	e := newServer(b, Config{Publisher: discard{}}, httpapi.SignedBodyConfig{Verifier: signature.NewVerifier([]string{"k"})})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if rec := post(e, body, sig); rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body)
		}
	}
}

type discard struct{}

func (discard) Publish(context.Context, event.Event) error { return nil }
