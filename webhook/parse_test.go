package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/meshgen/gateway/rooms"
)

// parseV1 is Parse as it was before the one-pass reader: encoding/json's
// Unmarshal into raw members, then each id and the status decoded again.
// Parse must agree with it on every body (FuzzParseAgreesWithV1).
func parseV1(body []byte, maxIDLength int) (Notification, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Notification{}, ErrInvalidJSON
	}
	var raw struct {
		JobID     json.RawMessage `json:"job_id"`
		Status    json.RawMessage `json:"status"`
		Result    json.RawMessage `json:"result"`
		Error     json.RawMessage `json:"error"`
		ProjectID json.RawMessage `json:"project_id"`
		BatchID   json.RawMessage `json:"batch_id"`
	}
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return Notification{}, fmt.Errorf("%w: %v", ErrInvalidJSON, err)
	}
	idV1 := func(raw json.RawMessage) (rooms.ID, error) {
		if isNull(raw) {
			return rooms.ID{}, rooms.ErrMissingID
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return rooms.ID{}, err
		}
		return rooms.ParseID(v, maxIDLength)
	}
	var n Notification
	job, err := idV1(raw.JobID)
	switch {
	case errors.Is(err, rooms.ErrMissingID):
		return Notification{}, ErrMissingJobID
	case err != nil:
		return Notification{}, fmt.Errorf("%w: %v", ErrInvalidJobID, err)
	}
	n.JobID = job
	n.Status = StatusFailed
	if !isNull(raw.Status) {
		var status string
		if err := json.Unmarshal(raw.Status, &status); err != nil {
			return Notification{}, ErrInvalidStatus
		}
		if status != "" {
			n.Status = status
		}
	}
	if !isNull(raw.Result) {
		n.Result = raw.Result
	}
	if !isNull(raw.Error) {
		n.Error = raw.Error
	}
	for _, owner := range []struct {
		raw json.RawMessage
		dst *rooms.ID
	}{{raw.ProjectID, &n.ProjectID}, {raw.BatchID, &n.BatchID}} {
		id, err := idV1(owner.raw)
		if err != nil && !errors.Is(err, rooms.ErrMissingID) {
			return Notification{}, fmt.Errorf("%w: %v", ErrInvalidOwner, err)
		}
		*owner.dst = id
	}
	return n, nil
}

// parseErrors are Parse's sentinel errors, each one 400 answer.
var parseErrors = []error{ErrMissingJobID, ErrInvalidJobID, ErrInvalidStatus, ErrInvalidOwner, ErrInvalidJSON}

// kind names the sentinel err wraps ("" for nil).
func kind(err error) string {
	if err == nil {
		return ""
	}
	for _, s := range parseErrors {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "other: " + err.Error()
}

// assertSameParse fails when Parse and parseV1 disagree on body.
func assertSameParse(t *testing.T, body []byte) {
	t.Helper()
	got, gotErr := Parse(body, 16)
	want, wantErr := parseV1(body, 16)
	if kind(gotErr) != kind(wantErr) {
		t.Fatalf("body %q: error %v, v1 %v", body, gotErr, wantErr)
	}
	if !reflect.DeepEqual(normal(got), normal(want)) {
		t.Fatalf("body %q:\n got %#v\nv1   %#v", body, got, want)
	}
}

// normal makes nil and empty raw values compare equal.
func normal(n Notification) Notification {
	if len(n.Result) == 0 {
		n.Result = nil
	}
	if len(n.Error) == 0 {
		n.Error = nil
	}
	return n
}

var parseSeeds = []string{
	`{"job_id":"j1","status":"completed","result":{"a":1},"project_id":"p"}`,
	`{"job_id":1,"status":"failed","error":{"x":[1]},"project_id":2,"batch_id":"b"}`,
	`  {"JOB_ID":"j","Status":"completed","ſtatus":"failed","project_id":"p"} `,
	`{"job_id":"j","job_id":"k","result":[1, 2 ,3 ] , "error" : null }`,
	`{"job_id":"a\ud800b","project_id":"\u00e9\uD83D\uDE00","status":"\u0063ompleted"}`,
	"{\"job_id\":\"a\xffb\",\"status\":\"c\xc3\",\"project_id\":\"p\"}",
	`{"job_id":1e400}`, `{"job_id":1.5}`, `{"job_id":-0}`, `{"job_id":9007199254740993}`,
	`{"job_id":true}`, `{"job_id":[1]}`, `{"job_id":"x","project_id":{}}`,
	`{"job_id":"j","status":1}`, `{"job_id":"j","status":null}`, `{"job_id":"j","status":""}`,
	`{"job_id":"j"} x`, `{"job_id":"j"}{}`, `{"job_id":"j",}`, `{"job_id" "j"}`, `{"job_id":"j"`,
	`{"job_id":"0123456789abcdefg"}`, "{\"job_id\":\"a\u0001\"}", `{"job_id":"a\u0001"}`,
	"\u00a0{\"job_id\":\"j\"}\u00a0", `{"job_id":"j","result":"x"  }`, `{"job_id":"j","result":tru}`,
	`{"job_id":"j","result":01}`, `{"job_id":"j","\u006aob_id":"k"}`, `{"job_id":"j","result":{"a":1,"a":2}}`,
}

func TestParseAgreesWithV1(t *testing.T) {
	for _, s := range parseSeeds {
		assertSameParse(t, []byte(s))
	}
	for _, depth := range []int{9999, 10000, 10001} {
		deep := `{"job_id":"j","result":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
		assertSameParse(t, []byte(deep))
	}
}

// FuzzParseAgreesWithV1: the one-pass Parse answers every body as the
// encoding/json one did (same error class, same notification).
func FuzzParseAgreesWithV1(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		assertSameParse(t, body)
	})
}

// ingestBody is the load harness's ingest webhook body.
const ingestBody = `{"job_id":"lg-ingest-nobody-12345","status":"completed","project_id":"ingest-nobody","result":{"ts":1764690000000000000,"seq":12345,"st":0,"success":true,"s3_output_path":"s3://bench/ingest-nobody/12345.msh","strategy":"Tetrahedral (Delaunay)","quality_metrics":{"sicn_avg":0.85,"total_elements":125032},"metrics":{"total_time_seconds":45.2}}}`

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		name  string
		parse func([]byte, int) (Notification, error)
	}{{"jsontext", Parse}, {"encoding-json", parseV1}} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(ingestBody)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.parse(body, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
