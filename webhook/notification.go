package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/rooms"
)

// Modal job statuses.
const (
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// Parse errors; each maps to one 400 answer.
var (
	ErrInvalidJSON   = errors.New("webhook: invalid JSON")
	ErrMissingJobID  = errors.New("webhook: missing job_id")
	ErrInvalidJobID  = errors.New("webhook: invalid job_id")
	ErrInvalidStatus = errors.New("webhook: invalid status")
	ErrInvalidOwner  = errors.New("webhook: invalid project_id or batch_id")
)

// Notification is a parsed Modal webhook body.
type Notification struct {
	// JobID is the job the webhook reports on.
	JobID rooms.ID
	// Status is "completed", or anything else for a failure; a missing
	// status is "failed".
	Status string
	// Result is passed through to clients exactly as received (null when
	// absent).
	Result json.RawMessage
	// Error is passed through as received; nil when absent (job_failed then
	// carries event.DefaultError).
	Error json.RawMessage
	// ProjectID and BatchID are the optional owner fields; Key is empty when
	// absent.
	ProjectID rooms.ID
	BatchID   rooms.ID
}

// Completed reports whether the job succeeded.
func (n Notification) Completed() bool { return n.Status == StatusCompleted }

// End is the job's end as the event package shapes it, for owner.
func (n Notification) End(owner event.Owner) event.JobEnd {
	return event.JobEnd{Owner: owner, Job: n.JobID, Failed: !n.Completed(), Result: n.Result, Error: n.Error}
}

type rawNotification struct {
	JobID     json.RawMessage `json:"job_id"`
	Status    json.RawMessage `json:"status"`
	Result    json.RawMessage `json:"result"`
	Error     json.RawMessage `json:"error"`
	ProjectID json.RawMessage `json:"project_id"`
	BatchID   json.RawMessage `json:"batch_id"`
}

// Parse decodes and validates a webhook body. maxIDLength bounds every id.
func Parse(body []byte, maxIDLength int) (Notification, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Notification{}, ErrInvalidJSON
	}
	var raw rawNotification
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return Notification{}, fmt.Errorf("%w: %v", ErrInvalidJSON, err)
	}
	var n Notification
	job, err := parseID(raw.JobID, maxIDLength)
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
		id, err := parseID(owner.raw, maxIDLength)
		if err != nil && !errors.Is(err, rooms.ErrMissingID) {
			return Notification{}, fmt.Errorf("%w: %v", ErrInvalidOwner, err)
		}
		*owner.dst = id
	}
	return n, nil
}

func parseID(raw json.RawMessage, maxLen int) (rooms.ID, error) {
	if isNull(raw) {
		return rooms.ID{}, rooms.ErrMissingID
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return rooms.ID{}, err
	}
	return rooms.ParseID(v, maxLen)
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}
