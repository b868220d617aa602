package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meshgen/gateway/rooms"
)

// DefaultError is the job_failed error when a producer gives none.
const DefaultError = "Unknown error"

// StatusCompleted is the status of job_completed (and of a completed job
// in job_progress).
const StatusCompleted = "completed"

// TimestampLayout is the layout of the log_line timestamps the gateway fills
// in: UTC, RFC 3339 with milliseconds.
const TimestampLayout = "2006-01-02T15:04:05.000Z07:00"

// Timestamp formats t as a log_line timestamp.
func Timestamp(t time.Time) string { return t.UTC().Format(TimestampLayout) }

// LogLinePayload is log_line {job_id, message, timestamp}, sent to
// project_<id>.
type LogLinePayload struct {
	JobID     rooms.ID `json:"job_id"`
	Message   string   `json:"message"`
	Timestamp string   `json:"timestamp"`
	Extra     Members  `json:"-"`
}

// JobProgressPayload is job_progress {batch_id, job_id, progress, status,
// message}, sent to batch_<batch_id> when it has one (the batch view filters
// on data.batch_id), else to project_<id>. BatchID and Message are left out
// when zero.
type JobProgressPayload struct {
	BatchID  rooms.ID `json:"batch_id,omitzero"`
	JobID    rooms.ID `json:"job_id"`
	Progress float64  `json:"progress"`
	Status   string   `json:"status"`
	Message  *string  `json:"message,omitempty"`
	Extra    Members  `json:"-"`
}

// BatchStatusPayload is batch_status {batch_id, status, completed_jobs,
// total_jobs, failed_jobs}, sent to batch_<batch_id>. TotalJobs is null
// while the total is unknown; FailedJobs is left out when nil.
type BatchStatusPayload struct {
	BatchID       rooms.ID `json:"batch_id"`
	Status        string   `json:"status"`
	CompletedJobs int64    `json:"completed_jobs"`
	TotalJobs     *int64   `json:"total_jobs"`
	FailedJobs    *int64   `json:"failed_jobs,omitempty"`
	Extra         Members  `json:"-"`
}

// JobCompletedPayload is job_completed {project_id, job_id, status:
// "completed", result}, sent to project_<project_id>. Status is always
// "completed"; a nil Result is null.
type JobCompletedPayload struct {
	ProjectID rooms.ID
	JobID     rooms.ID
	Result    json.RawMessage
	Extra     Members
}

// JobFailedPayload is job_failed {project_id, job_id, error}, sent to
// project_<project_id>. A nil or null Error is DefaultError.
type JobFailedPayload struct {
	ProjectID rooms.ID
	JobID     rooms.ID
	Error     json.RawMessage
	Extra     Members
}

// ExtraPayload is the payload of a configured extra event (publish API):
// any JSON object, passed through as given (compacted).
type ExtraPayload struct {
	Name string
	Data json.RawMessage
}

// EventName implements Payload.
func (LogLinePayload) EventName() string { return LogLine }

// EventName implements Payload.
func (JobProgressPayload) EventName() string { return JobProgress }

// EventName implements Payload.
func (BatchStatusPayload) EventName() string { return BatchStatus }

// EventName implements Payload.
func (JobCompletedPayload) EventName() string { return JobCompleted }

// EventName implements Payload.
func (JobFailedPayload) EventName() string { return JobFailed }

// EventName implements Payload.
func (p ExtraPayload) EventName() string { return p.Name }

// MarshalJSON encodes job_completed in the protocol's key order.
func (p JobCompletedPayload) MarshalJSON() ([]byte, error) {
	b, err := openJob(len(`,"status":"completed","result":}`)+max(len(p.Result), 4), p.ProjectID, p.JobID)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"status":"`+StatusCompleted+`","result":`...)
	if b, err = appendCompact(b, orNull(p.Result)); err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	return append(b, '}'), nil
}

// MarshalJSON encodes job_failed, DefaultError when it carries no error.
func (p JobFailedPayload) MarshalJSON() ([]byte, error) {
	errValue := p.Error
	if isNull(errValue) {
		errValue = defaultErrorJSON
	}
	b, err := openJob(len(`,"error":}`)+len(errValue), p.ProjectID, p.JobID)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"error":`...)
	if b, err = appendCompact(b, errValue); err != nil {
		return nil, fmt.Errorf("error: %w", err)
	}
	return append(b, '}'), nil
}

// openJob starts a job payload: `{"project_id":…,"job_id":…`, in a buffer
// with room for rest more bytes.
func openJob(rest int, project, job rooms.ID) ([]byte, error) {
	b := make([]byte, 0, len(`{"project_id":,"job_id":`)+idSize(project)+idSize(job)+rest)
	b = append(b, `{"project_id":`...)
	b, err := appendID(b, project)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"job_id":`...)
	return appendID(b, job)
}

// idSize is room for the JSON of id: its key, quoted, and a few escapes.
func idSize(id rooms.ID) int { return len(id.Key) + 8 }

// appendID appends the JSON of id as encoding/json writes a rooms.ID
// member (its MarshalJSON, whose output is compact).
func appendID(b []byte, id rooms.ID) ([]byte, error) {
	b, err := AppendID(b, id)
	if err != nil {
		return nil, fmt.Errorf("id %q: %w", id.Key, err)
	}
	return b, nil
}

// AppendID appends id.MarshalJSON() to b: the id as encoding/json writes
// it (HTML-escaped). A string id of printable ASCII that needs no escape,
// the usual one, is quoted as it is without encoding/json's reflection.
func AppendID(b []byte, id rooms.ID) ([]byte, error) {
	if s, ok := id.Raw.(string); ok && plainJSONString(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"'), nil
	}
	v, err := id.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(b, v...), nil
}

// plainJSONString reports whether json.Marshal writes s as it is between
// quotes: printable ASCII without '"', '\\' or the HTML-escaped '<', '>'
// and '&'.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// MarshalJSON passes the extra event's data through.
func (p ExtraPayload) MarshalJSON() ([]byte, error) {
	if len(p.Data) == 0 || p.Data[0] != '{' {
		return nil, errors.New("an extra event's data must be a JSON object")
	}
	return p.Data, nil
}

var defaultErrorJSON = json.RawMessage(`"` + DefaultError + `"`)

// isNull reports whether raw is absent or the JSON null.
func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}
