package status

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// jobFieldsV1 is what Recent.Observe read with encoding/json before
// jobFields: the oracle of FuzzJobFieldsAgreesWithV1.
func jobFieldsV1(payload []byte) (jobID, status string) {
	var fields struct {
		JobID  json.RawMessage `json:"job_id"`
		Status any             `json:"status"`
	}
	_ = json.Unmarshal(payload, &fields)
	if s, ok := fields.Status.(string); ok {
		status = s
	}
	var s string
	if json.Unmarshal(fields.JobID, &s) == nil {
		return s, status
	}
	var n json.Number
	if json.Unmarshal(fields.JobID, &n) == nil {
		return n.String(), status
	}
	return "", status
}

var jobFieldsCases = []struct {
	payload, jobID, status string
}{
	{`{"project_id":"42","job_id":"j1","status":"completed","result":{"job_id":"inner","status":"x"}}`, "j1", "completed"},
	{`{"result":{"job_id":"inner"},"status":"running","job_id":99}`, "99", "running"},
	{`{"job_id":-1.5e3}`, "-1.5e3", ""},
	{` { "job\u005fid" : "esc\"aped" , "st\u0061tus":"done" } `, `esc"aped`, "done"},
	{`{"job_id":null,"status":7}`, "", ""},
	{`{"job_id":["a"],"status":{"s":"x"}}`, "", ""},
	{`{"job_id":true}`, "", ""},
	{`[{"job_id":"a"}]`, "", ""},
	{`"job_id"`, "", ""},
	{`{"job_id":"\ud83d\ude00"}`, "😀", ""},
	{``, "", ""},
	{`{"job_id":"a"`, "a", ""}, // cut short: what was read before the cut
	{`{"job_id":"a","job_id":"b","status":"s"}`, "a", "s"},
}

func TestJobFields(t *testing.T) {
	for _, c := range jobFieldsCases {
		id, st := jobFields([]byte(c.payload))
		if id != c.jobID || st != c.status {
			t.Errorf("jobFields(%s) = %q, %q; want %q, %q", c.payload, id, st, c.jobID, c.status)
		}
	}
}

func TestJobFieldsAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	payload := []byte(`{"project_id":"42","job_id":"j1","status":"completed","result":{"mesh_url":"s3://bucket/key","cells":123456}}`)
	jobFields(payload) // fill the pool
	// The two strings returned; the reader over payload.
	if n := testing.AllocsPerRun(100, func() { jobFields(payload) }); n > 3 {
		t.Fatalf("%v allocations per call, want at most 3", n)
	}
}

// FuzzJobFieldsAgreesWithV1: on every valid JSON object without repeated
// job_id or status members, jobFields finds what encoding/json finds.
func FuzzJobFieldsAgreesWithV1(f *testing.F) {
	for _, c := range jobFieldsCases {
		f.Add([]byte(c.payload))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		id, st := jobFields(payload) // never panics, whatever the input
		if !json.Valid(payload) || repeats(payload) {
			return
		}
		wantID, wantSt := jobFieldsV1(payload)
		if id != wantID || st != wantSt {
			t.Fatalf("jobFields(%q) = %q, %q; encoding/json: %q, %q", payload, id, st, wantID, wantSt)
		}
	})
}

// repeats reports whether the object payload names job_id or status at
// its top level twice (encoding/json keeps the last, jobFields the first)
// or in another case (encoding/json matches names regardless of case).
func repeats(payload []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		name, _ := tok.(string)
		for _, field := range []string{"job_id", "status"} {
			if strings.EqualFold(name, field) {
				seen[field]++
				if name != field {
					seen[field]++
				}
			}
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return seen["job_id"] > 1 || seen["status"] > 1
}
