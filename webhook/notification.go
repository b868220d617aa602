package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

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

// rawNotification holds the members of a webhook body Parse reads, as raw
// JSON values; nil when absent.
type rawNotification struct {
	JobID     json.RawMessage
	Status    json.RawMessage
	Result    json.RawMessage
	Error     json.RawMessage
	ProjectID json.RawMessage
	BatchID   json.RawMessage
}

// Parse decodes and validates a webhook body. maxIDLength bounds every id.
//
// The body is read in one pass (readMembers) with encoding/json's rules:
// member names match case-insensitively, the last of a repeated member
// wins, other members are ignored, and invalid UTF-8 is accepted (it
// becomes U+FFFD in the ids and the status, and result and error pass
// through as received).
func Parse(body []byte, maxIDLength int) (Notification, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Notification{}, ErrInvalidJSON
	}
	raw, err := readMembers(trimmed)
	if err != nil {
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
		status, ok := jsonString(raw.Status)
		if !ok {
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

	if n.ProjectID, err = parseOwnerID(raw.ProjectID, maxIDLength); err != nil {
		return Notification{}, err
	}
	if n.BatchID, err = parseOwnerID(raw.BatchID, maxIDLength); err != nil {
		return Notification{}, err
	}
	return n, nil
}

// parseOwnerID parses an optional owner id (project_id, batch_id): the
// zero ID when absent.
func parseOwnerID(raw json.RawMessage, maxLen int) (rooms.ID, error) {
	id, err := parseID(raw, maxLen)
	if err != nil && !errors.Is(err, rooms.ErrMissingID) {
		return rooms.ID{}, fmt.Errorf("%w: %v", ErrInvalidOwner, err)
	}
	return id, nil
}

// decodeOptions are encoding/json's leniencies, which the webhook has
// always had: repeated member names and invalid UTF-8 are accepted.
var decodeOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// noInput is what a decoder back in the pool points at: it is never
// read (Reset does not read).
var noInput = strings.NewReader("")

// decoders keeps jsontext decoders for reuse.
var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewBuffer(nil), decodeOptions...) }}

// readMembers reads the JSON object body (no surrounding whitespace) with
// jsontext, the tokenizer of encoding/json/v2 (the go-json-experiment
// mirror, as in the publish package): one pass that checks the whole body
// and keeps the raw value of each member Parse needs, sliced from body
// without a copy. It fails on anything but one well-formed object.
func readMembers(body []byte) (rawNotification, error) {
	var raw rawNotification
	dec := decoders.Get().(*jsontext.Decoder)
	defer func() {
		dec.Reset(noInput, decodeOptions...) // let go of body
		decoders.Put(dec)
	}()
	dec.Reset(bytes.NewBuffer(body), decodeOptions...)
	if _, err := dec.ReadToken(); err != nil { // '{': the caller checked
		return raw, fmt.Errorf("read body: %w", err)
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return raw, fmt.Errorf("read body: %w", err)
		}
		dst := raw.member(name.String())
		v, err := dec.ReadValue()
		if err != nil {
			return raw, fmt.Errorf("read body: %w", err)
		}
		if dst != nil {
			end := dec.InputOffset()
			*dst = body[end-int64(len(v)) : end : end]
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return raw, fmt.Errorf("read body: %w", err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return raw, errors.New("read body: data after the top-level object")
	}
	return raw, nil
}

// member returns where the value of the member name goes, nil for a
// member Parse ignores. Names match as encoding/json matches them to
// struct fields: case-insensitively (Unicode simple folding).
func (r *rawNotification) member(name string) *json.RawMessage {
	for _, m := range [...]struct {
		name string
		dst  *json.RawMessage
	}{
		{"job_id", &r.JobID}, {"status", &r.Status}, {"result", &r.Result},
		{"error", &r.Error}, {"project_id", &r.ProjectID}, {"batch_id", &r.BatchID},
	} {
		if name == m.name || strings.EqualFold(name, m.name) {
			return m.dst
		}
	}
	return nil
}

// parseID validates an id from its raw JSON value (read by readMembers, so
// well-formed).
func parseID(raw json.RawMessage, maxLen int) (rooms.ID, error) {
	if isNull(raw) {
		return rooms.ID{}, rooms.ErrMissingID
	}
	v, err := jsonValue(raw)
	if err != nil {
		return rooms.ID{}, err
	}
	return rooms.ParseID(v, maxLen)
}

// jsonValue is what encoding/json decodes a well-formed raw value into as
// far as rooms.ParseID is concerned: the string, the number as a float64
// (an error when out of its range), the boolean, and typed nil values for
// an object or a list.
func jsonValue(raw json.RawMessage) (any, error) {
	switch raw[0] {
	case '"':
		s, _ := jsonString(raw)
		return s, nil
	case 't', 'f':
		return raw[0] == 't', nil
	case '{':
		return map[string]any(nil), nil
	case '[':
		return []any(nil), nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return nil, fmt.Errorf("number %s: %w", raw, err)
	}
	return f, nil
}

// jsonString decodes raw when it is a JSON string (well-formed), invalid
// UTF-8 replaced by U+FFFD as encoding/json does.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if s := raw[1 : len(raw)-1]; bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s), true
	}
	// The only error left is invalid UTF-8, already replaced.
	b, _ := jsontext.AppendUnquote(nil, raw)
	return string(b), true
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}
