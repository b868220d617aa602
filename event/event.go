package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meshgen/gateway/rooms"
)

// ErrInvalid is wrapped by the errors of New and Event.Validate.
var ErrInvalid = errors.New("event: invalid")

// Event is the unit that flows from a producer, through the bus, to the
// clients of the rooms it names.
type Event struct {
	// ID is assigned by the bus: the entry id of the Redis stream (on
	// publish), or a sequence number of the in-process bus (on delivery).
	// It orders events and is the offset a client's recovery resumes
	// after.
	ID string
	// Name is the Socket.IO event name, e.g. "job_completed".
	Name string
	// Rooms are the rooms the event is emitted to (at least one).
	Rooms []string
	// Payload is the event's single argument, encoded once.
	Payload json.RawMessage
	// DedupeKey, when set, makes the publish idempotent: a second event
	// with the same key within the bus's dedupe window is not published
	// again (the bus answers bus.ErrDuplicate).
	DedupeKey string
	// ReceivedAt is when the producer received the request that made this
	// event (zero when unknown), for webhook-to-emit latency.
	ReceivedAt time.Time
	// PublishedAt is set by the bus on consumption: when the event was
	// stored.
	PublishedAt time.Time
}

// Validate reports whether e can be published: a name, a room and a JSON
// payload.
func (e Event) Validate() error {
	switch {
	case e.Name == "":
		return fmt.Errorf("%w: no name", ErrInvalid)
	case len(e.Rooms) == 0:
		return fmt.Errorf("%w: %s has no room", ErrInvalid, e.Name)
	case !valid(e.Payload):
		return fmt.Errorf("%w: %s payload is not valid JSON", ErrInvalid, e.Name)
	}
	return nil
}

// Target names the rooms an event goes to: a project room, a batch room, or
// both (a client in both gets the event once).
type Target struct {
	Project rooms.ID
	Batch   rooms.ID
}

// Empty reports whether t names no room.
func (t Target) Empty() bool { return t.Project.Key == "" && t.Batch.Key == "" }

// Rooms returns the room names, the project's first.
func (t Target) Rooms() []string {
	out := make([]string, 0, 2)
	if t.Project.Key != "" {
		out = append(out, rooms.ProjectRoom(t.Project))
	}
	if t.Batch.Key != "" {
		out = append(out, rooms.BatchRoom(t.Batch))
	}
	return out
}

// Route is the protocol's room rule for the protocol event name whose
// payload names project and batch (either may be zero): job_progress goes
// to its batch when it has one, else to its project; batch_status to its
// batch; log_line, job_completed and job_failed to their project. The
// target is empty when the id the rule needs is missing.
func Route(name string, project, batch rooms.ID) Target {
	switch name {
	case JobProgress:
		if batch.Key != "" {
			return Target{Batch: batch}
		}
		return Target{Project: project}
	case BatchStatus:
		return Target{Batch: batch}
	default:
		return Target{Project: project}
	}
}

// Payload is a server -> client payload: one of the protocol's five types,
// or Extra for a configured extra event.
type Payload interface {
	// EventName is the Socket.IO event the payload is sent with.
	EventName() string
}

// New encodes p once and returns the event that sends it to t's rooms.
func New(p Payload, t Target) (Event, error) {
	if t.Empty() {
		return Event{}, fmt.Errorf("%w: %s has no room", ErrInvalid, p.EventName())
	}
	payload, err := encode(p)
	if err != nil {
		return Event{}, fmt.Errorf("event: encode %s: %w", p.EventName(), err)
	}
	return Event{Name: p.EventName(), Rooms: t.Rooms(), Payload: payload}, nil
}

// Member is one extra member of a payload, passed through as it was given.
type Member struct {
	// Key is the member's name.
	Key string
	// Value is its raw JSON value.
	Value json.RawMessage
}

// Members are the extra members of a payload, encoded after the protocol's
// keys in their order. A member whose key is one of the payload's own keys
// is the producer's mistake; Members never repeats a protocol key.
type Members []Member

// encode marshals p (whose extra members are not part of its own
// encoding) and appends the extra members after its own keys.
func encode(p Payload) (json.RawMessage, error) {
	var (
		out []byte
		err error
	)
	switch v := p.(type) {
	case JobCompletedPayload:
		// Their MarshalJSON writes compact JSON: encoding/json would
		// only check and copy it once more.
		out, err = v.MarshalJSON()
	case JobFailedPayload:
		out, err = v.MarshalJSON()
	default:
		out, err = marshal(p)
	}
	if err != nil {
		return nil, err
	}
	extra := extraOf(p)
	if len(extra) == 0 {
		return out, nil
	}
	if len(out) < 2 || out[len(out)-1] != '}' {
		return nil, errors.New("payload is not a JSON object")
	}
	out = out[:len(out)-1]
	for _, m := range extra {
		if len(out) > 1 {
			out = append(out, ',')
		}
		key, err := json.Marshal(m.Key)
		if err != nil {
			return nil, err
		}
		out = append(out, key...)
		out = append(out, ':')
		if out, err = appendCompact(out, m.Value); err != nil {
			return nil, fmt.Errorf("member %q: %w", m.Key, err)
		}
	}
	return append(out, '}'), nil
}

// marshal is json.Marshal without HTML escaping: a payload's strings reach
// the client as the producer gave them.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// extraOf returns the extra members of the protocol payloads.
func extraOf(p Payload) Members {
	switch v := p.(type) {
	case LogLinePayload:
		return v.Extra
	case JobProgressPayload:
		return v.Extra
	case BatchStatusPayload:
		return v.Extra
	case JobCompletedPayload:
		return v.Extra
	case JobFailedPayload:
		return v.Extra
	}
	return nil
}
