package event

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/meshgen/gateway/rooms"
)

// completedV1 and failedV1 are job_completed and job_failed encoded as
// they were before their MarshalJSON appended the members by hand:
// encoding/json over a struct, through the Encoder of marshal. The
// payloads must stay byte for byte the same (FuzzJobPayloadsAgreeWithV1).
type completedV1 JobCompletedPayload

func (p completedV1) MarshalJSON() ([]byte, error) {
	return marshal(struct {
		ProjectID rooms.ID        `json:"project_id"`
		JobID     rooms.ID        `json:"job_id"`
		Status    string          `json:"status"`
		Result    json.RawMessage `json:"result"`
	}{p.ProjectID, p.JobID, StatusCompleted, orNull(p.Result)})
}

type failedV1 JobFailedPayload

func (p failedV1) MarshalJSON() ([]byte, error) {
	errValue := p.Error
	if isNull(errValue) {
		errValue = defaultErrorJSON
	}
	return marshal(struct {
		ProjectID rooms.ID        `json:"project_id"`
		JobID     rooms.ID        `json:"job_id"`
		Error     json.RawMessage `json:"error"`
	}{p.ProjectID, p.JobID, errValue})
}

// assertSameJobPayloads fails when encode and the encoding/json path
// disagree on the job_completed and job_failed of these members.
func assertSameJobPayloads(t *testing.T, project, job rooms.ID, raw json.RawMessage) {
	t.Helper()
	for _, pair := range []struct {
		p  Payload
		v1 any
	}{
		{JobCompletedPayload{ProjectID: project, JobID: job, Result: raw}, completedV1{ProjectID: project, JobID: job, Result: raw}},
		{JobFailedPayload{ProjectID: project, JobID: job, Error: raw}, failedV1{ProjectID: project, JobID: job, Error: raw}},
	} {
		got, err := encode(pair.p)
		want, wantErr := marshal(pair.v1)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s of %q: error %v, encoding/json %v", pair.p.EventName(), raw, err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("%s of %q:\n got %s\nwant %s", pair.p.EventName(), raw, got, want)
		}
	}
}

var jobPayloadSeeds = []struct {
	project, job string
	num          float64
	raw          string
}{
	{"p1", "j1", 0, `{"success":true,"quality_metrics":{"sicn_avg":0.85}}`},
	{"<p&>", "j\u2028", 7, " { \"a\" : [ 1 , 2 ] , \"b\" : \"<x>\" } "},
	{"p", "", 9007199254740991, `null`},
	{"p", "j", 0, ``},
	{"p", "j", 0, `"OOM"`},
	{"p", "\xff", 0, "\"a\xffb\""},
	{"p", "j", 0, `{"a":`},
	{"p", "j", 0, `1 2`},
	{"p", "j", 0, `-0.0e+12`},
}

func TestJobPayloadsAgreeWithV1(t *testing.T) {
	for _, s := range jobPayloadSeeds {
		project := rooms.ID{Raw: s.project, Key: s.project}
		job := rooms.ID{Raw: s.job, Key: s.job}
		if s.job == "" {
			job = rooms.ID{Raw: s.num, Key: "n"}
		}
		assertSameJobPayloads(t, project, job, json.RawMessage(s.raw))
	}
	assertSameJobPayloads(t, rooms.ID{}, rooms.ID{}, nil)
}

// FuzzJobPayloadsAgreeWithV1: job_completed and job_failed are the bytes
// encoding/json wrote, for any ids and any raw result or error (an
// invalid one fails both).
func FuzzJobPayloadsAgreeWithV1(f *testing.F) {
	for _, s := range jobPayloadSeeds {
		f.Add(s.project, s.job, s.num, []byte(s.raw))
	}
	f.Fuzz(func(t *testing.T, project, job string, num float64, raw []byte) {
		jobID := rooms.ID{Raw: job, Key: job}
		if job == "" {
			jobID = rooms.ID{Raw: num, Key: "n"}
		}
		assertSameJobPayloads(t, rooms.ID{Raw: project, Key: project}, jobID, raw)
	})
}

func BenchmarkJobCompleted(b *testing.B) {
	result := json.RawMessage(`{"ts":1764690000000000000,"seq":12345,"st":0,"success":true,"s3_output_path":"s3://bench/ingest-nobody/12345.msh","strategy":"Tetrahedral (Delaunay)","quality_metrics":{"sicn_avg":0.85,"total_elements":125032},"metrics":{"total_time_seconds":45.2}}`)
	project, job := rooms.ID{Raw: "ingest-nobody", Key: "ingest-nobody"}, rooms.ID{Raw: "lg-ingest-nobody-12345", Key: "lg-ingest-nobody-12345"}
	for _, bc := range []struct {
		name string
		p    any
	}{
		{"appended", JobCompletedPayload{ProjectID: project, JobID: job, Result: result}},
		{"encoding-json", completedV1{ProjectID: project, JobID: job, Result: result}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if p, ok := bc.p.(Payload); ok {
					_, err = encode(p)
				} else {
					_, err = marshal(bc.p)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// AppendID writes what rooms.ID.MarshalJSON writes, for any id.
func FuzzAppendID(f *testing.F) {
	for _, s := range []string{"p1", "lg-ingest-nobody-12345", "<a&b>", "a\"b\\c", "\u2028", "\x7f", "\xff", "é", " ~", ""} {
		f.Add(s, 0.0, false)
	}
	f.Add("", 9007199254740991.0, true)
	f.Add("", -0.0, true)
	f.Fuzz(func(t *testing.T, s string, num float64, isNum bool) {
		id := rooms.ID{Raw: s, Key: s}
		if isNum {
			id = rooms.ID{Raw: num, Key: "n"}
		}
		got, err := AppendID([]byte("x"), id)
		want, wantErr := id.MarshalJSON()
		if (err != nil) != (wantErr != nil) || (err == nil && string(got) != "x"+string(want)) {
			t.Fatalf("AppendID(%#v) = %q, %v; MarshalJSON %q, %v", id.Raw, got, err, want, wantErr)
		}
	})
}
