package event

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/meshgen/gateway/rooms"
)

func id(t *testing.T, v any) rooms.ID {
	t.Helper()
	i, err := rooms.ParseID(v, 0)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func ptr[T any](v T) *T { return &v }

// TestGolden pins the bytes a client receives for each event: key order,
// ids echoed as sent, defaults, extra members after the protocol's keys.
func TestGolden(t *testing.T) {
	tests := []struct {
		name      string
		payload   Payload
		target    Target
		wantName  string
		wantRooms []string
		want      string
	}{
		{"log_line", LogLinePayload{JobID: id(t, "j1"), Message: "Meshing <surface> & volume", Timestamp: "2024-05-01T12:00:00.000Z"},
			Target{Project: id(t, float64(42))}, LogLine, []string{"project_42"},
			`{"job_id":"j1","message":"Meshing <surface> & volume","timestamp":"2024-05-01T12:00:00.000Z"}`},
		{"log_line with extra members in order", LogLinePayload{JobID: id(t, float64(7)), Message: "m", Timestamp: "t",
			Extra: Members{{"zeta", json.RawMessage(`[1, {"a b": " x "}]`)}, {"project_id", json.RawMessage(`42`)}}},
			Target{Project: id(t, float64(42))}, LogLine, []string{"project_42"},
			`{"job_id":7,"message":"m","timestamp":"t","zeta":[1,{"a b":" x "}],"project_id":42}`},
		{"job_progress to its batch", JobProgressPayload{BatchID: id(t, "b1"), JobID: id(t, "j1"), Progress: 42.5, Status: "meshing", Message: ptr("step 2/4")},
			Target{Batch: id(t, "b1")}, JobProgress, []string{"batch_b1"},
			`{"batch_id":"b1","job_id":"j1","progress":42.5,"status":"meshing","message":"step 2/4"}`},
		{"job_progress without batch or message", JobProgressPayload{JobID: id(t, "j1"), Progress: 0, Status: "queued"},
			Target{Project: id(t, "p")}, JobProgress, []string{"project_p"},
			`{"job_id":"j1","progress":0,"status":"queued"}`},
		{"batch_status", BatchStatusPayload{BatchID: id(t, float64(9)), Status: BatchProcessing, CompletedJobs: 3, TotalJobs: ptr[int64](10), FailedJobs: ptr[int64](1)},
			Target{Batch: id(t, float64(9))}, BatchStatus, []string{"batch_9"},
			`{"batch_id":9,"status":"processing","completed_jobs":3,"total_jobs":10,"failed_jobs":1}`},
		{"batch_status with unknown total", BatchStatusPayload{BatchID: id(t, "b"), Status: BatchProcessing, CompletedJobs: 1},
			Target{Batch: id(t, "b")}, BatchStatus, []string{"batch_b"},
			`{"batch_id":"b","status":"processing","completed_jobs":1,"total_jobs":null}`},
		{"job_completed", JobCompletedPayload{ProjectID: id(t, "p1"), JobID: id(t, "modal-job-id"), Result: json.RawMessage(`{"success":true,"note":"<ok>","s3_output_path":"s3://bucket/path/to/mesh.msh","quality_metrics":{"sicn_avg":0.85,"total_elements":125032}}`)},
			Target{Project: id(t, "p1")}, JobCompleted, []string{"project_p1"},
			`{"project_id":"p1","job_id":"modal-job-id","status":"completed","result":{"success":true,"note":"<ok>","s3_output_path":"s3://bucket/path/to/mesh.msh","quality_metrics":{"sicn_avg":0.85,"total_elements":125032}}}`},
		{"job_completed without result", JobCompletedPayload{ProjectID: id(t, "p"), JobID: id(t, float64(99))},
			Target{Project: id(t, "p")}, JobCompleted, []string{"project_p"},
			`{"project_id":"p","job_id":99,"status":"completed","result":null}`},
		{"job_failed", JobFailedPayload{ProjectID: id(t, float64(7)), JobID: id(t, "j2"), Error: json.RawMessage(`"OOM"`)},
			Target{Project: id(t, float64(7))}, JobFailed, []string{"project_7"},
			`{"project_id":7,"job_id":"j2","error":"OOM"}`},
		{"job_failed default error", JobFailedPayload{ProjectID: id(t, "p"), JobID: id(t, "j3"), Error: json.RawMessage(`null`)},
			Target{Project: id(t, "p")}, JobFailed, []string{"project_p"},
			`{"project_id":"p","job_id":"j3","error":"Unknown error"}`},
		{"job_failed with extra members", JobFailedPayload{ProjectID: id(t, "p"), JobID: id(t, "j"), Extra: Members{{"alpha", json.RawMessage(`"\u00e9\""`)}}},
			Target{Project: id(t, "p")}, JobFailed, []string{"project_p"},
			`{"project_id":"p","job_id":"j","error":"Unknown error","alpha":"\u00e9\""}`},
		{"extra event to both rooms", ExtraPayload{Name: "mesh_preview", Data: json.RawMessage(`{"url": "https://x/y.png", "n": [1, 2]}`)},
			Target{Project: id(t, float64(1)), Batch: id(t, float64(2))}, "mesh_preview", []string{"project_1", "batch_2"},
			`{"url":"https://x/y.png","n":[1,2]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(tc.payload, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if e.Name != tc.wantName || !slices.Equal(e.Rooms, tc.wantRooms) {
				t.Fatalf("event = %s to %v, want %s to %v", e.Name, e.Rooms, tc.wantName, tc.wantRooms)
			}
			if string(e.Payload) != tc.want {
				t.Fatalf("payload = %s\nwant      %s", e.Payload, tc.want)
			}
			if err := e.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := New(LogLinePayload{JobID: id(t, "j")}, Target{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no room: err = %v", err)
	}
	if _, err := New(ExtraPayload{Name: "x", Data: json.RawMessage(`[1]`)}, Target{Project: id(t, "p")}); err == nil {
		t.Fatal("an extra event whose data is a list was accepted")
	}
	if _, err := New(JobFailedPayload{ProjectID: id(t, "p"), JobID: id(t, "j"), Extra: Members{{"x", json.RawMessage(`{`)}}}, Target{Project: id(t, "p")}); err == nil {
		t.Fatal("an invalid extra member was accepted")
	}
}

func TestRoute(t *testing.T) {
	p, b := id(t, "p"), id(t, "b")
	for _, tc := range []struct {
		name           string
		project, batch rooms.ID
		want           []string
	}{
		{LogLine, p, b, []string{"project_p"}},
		{JobProgress, p, b, []string{"batch_b"}},
		{JobProgress, p, rooms.ID{}, []string{"project_p"}},
		{BatchStatus, p, b, []string{"batch_b"}},
		{BatchStatus, p, rooms.ID{}, []string{}},
		{JobCompleted, p, b, []string{"project_p"}},
		{JobFailed, rooms.ID{}, b, []string{}},
	} {
		if got := Route(tc.name, tc.project, tc.batch).Rooms(); !slices.Equal(got, tc.want) {
			t.Errorf("Route(%s, %q, %q) = %v, want %v", tc.name, tc.project.Key, tc.batch.Key, got, tc.want)
		}
	}
}

func TestJobEnd(t *testing.T) {
	owner := Owner{Project: id(t, "p"), Batch: id(t, float64(5))}
	done := JobEnd{Owner: owner, Job: id(t, "j1"), Result: json.RawMessage(`{"ok":1}`)}
	failed := JobEnd{Owner: owner, Job: id(t, "j2"), Failed: true, Error: json.RawMessage(`"OOM"`)}
	silent := JobEnd{Owner: owner, Job: id(t, "j3"), Failed: true, Error: json.RawMessage(`{"code":1}`)}

	for _, tc := range []struct {
		end       JobEnd
		wantEvent string
		wantMsg   string
	}{
		{done, `job_completed [project_p] {"project_id":"p","job_id":"j1","status":"completed","result":{"ok":1}}`, "Job completed"},
		{failed, `job_failed [project_p] {"project_id":"p","job_id":"j2","error":"OOM"}`, "OOM"},
		{silent, `job_failed [project_p] {"project_id":"p","job_id":"j3","error":{"code":1}}`, "Job failed"},
	} {
		e, err := tc.end.Event()
		if err != nil {
			t.Fatal(err)
		}
		if got := describe(e); got != tc.wantEvent {
			t.Errorf("Event() = %s\nwant      %s", got, tc.wantEvent)
		}
		if got := tc.end.ProgressMessage(); got != tc.wantMsg {
			t.Errorf("ProgressMessage() = %q, want %q", got, tc.wantMsg)
		}
	}

	events, err := failed.BatchEvents(BatchCounts{Completed: 1, Failed: 1, Total: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`job_progress [batch_5] {"batch_id":5,"job_id":"j2","progress":100,"status":"failed","message":"OOM"}`,
		`batch_status [batch_5] {"batch_id":5,"status":"failed","completed_jobs":1,"total_jobs":2,"failed_jobs":1}`,
	}
	for i, e := range events {
		if got := describe(e); got != want[i] {
			t.Errorf("BatchEvents()[%d] = %s\nwant             %s", i, got, want[i])
		}
	}
	if _, err := (JobEnd{Owner: Owner{Project: owner.Project}, Job: id(t, "j")}).BatchEvents(BatchCounts{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a job without a batch: err = %v", err)
	}
}

func TestBatchCounts(t *testing.T) {
	for _, tc := range []struct {
		counts BatchCounts
		want   string
	}{
		{BatchCounts{Completed: 1}, `{"batch_id":"b","status":"processing","completed_jobs":1,"total_jobs":null,"failed_jobs":0}`},
		{BatchCounts{Completed: 1, Total: 3}, `{"batch_id":"b","status":"processing","completed_jobs":1,"total_jobs":3,"failed_jobs":0}`},
		{BatchCounts{Completed: 3, Total: 3}, `{"batch_id":"b","status":"completed","completed_jobs":3,"total_jobs":3,"failed_jobs":0}`},
		{BatchCounts{Completed: 2, Failed: 1, Total: 3}, `{"batch_id":"b","status":"failed","completed_jobs":2,"total_jobs":3,"failed_jobs":1}`},
		{BatchCounts{Completed: 4, Total: 3}, `{"batch_id":"b","status":"completed","completed_jobs":4,"total_jobs":4,"failed_jobs":0}`},
	} {
		e, err := New(tc.counts.Payload(id(t, "b")), Target{Batch: id(t, "b")})
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Payload) != tc.want {
			t.Errorf("%+v: payload = %s\nwant %s", tc.counts, e.Payload, tc.want)
		}
	}
}

func describe(e Event) string {
	return e.Name + " [" + strings.Join(e.Rooms, " ") + "] " + string(e.Payload)
}
