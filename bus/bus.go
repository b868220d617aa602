package bus

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors of the bus.
var (
	// ErrClosed is returned by Publish and Consume after Close.
	ErrClosed = errors.New("bus: closed")
	// ErrInvalidEvent is returned by Publish for an event without a name,
	// rooms or a valid JSON payload.
	ErrInvalidEvent = errors.New("bus: invalid event")
	// ErrDuplicate is returned by Publish for an event whose DedupeKey was
	// already published within the dedupe window: it was not published
	// again, and the producer should answer as for a success.
	ErrDuplicate = errors.New("bus: duplicate event")
)

// UnavailableError wraps an error of a bus that cannot accept events right
// now (its backend is unreachable). The event was not stored; the producer
// should ask its caller to retry (HTTP 503 with Retry-After).
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "bus: unavailable: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Unavailable marks the error as retryable.
func (e *UnavailableError) Unavailable() bool { return true }

// Event is the unit that flows from producers to sockets.
type Event struct {
	// ID is assigned by the bus on Publish; it orders events and lets a
	// consumer resume after it.
	ID string `json:"id,omitempty"`
	// Name is the Socket.IO event name, e.g. "job_completed".
	Name string `json:"name"`
	// Rooms are the rooms the event is emitted to. Empty means nobody; use
	// Broadcast for every client of the namespace.
	Rooms []string `json:"rooms,omitempty"`
	// Broadcast sends the event to every connected client.
	Broadcast bool `json:"broadcast,omitempty"`
	// Payload is the event's single argument, encoded once.
	Payload json.RawMessage `json:"payload"`
	// DedupeKey, when set, makes Publish idempotent: a second event with the
	// same key within the bus's dedupe window is not published and Publish
	// returns ErrDuplicate. The check and the store are one atomic step, so
	// a failed publish never marks its key as seen.
	DedupeKey string `json:"-"`
	// ReceivedAt is when the producer received the request that made this
	// event (zero when unknown); it travels with the event so the consuming
	// node can measure webhook-to-emit latency.
	ReceivedAt time.Time `json:"-"`
	// PublishedAt is set by the bus on consumption: when the event was
	// stored.
	PublishedAt time.Time `json:"-"`
}

// Validate reports whether e can be published.
func (e Event) Validate() error {
	if e.Name == "" {
		return errors.Join(ErrInvalidEvent, errors.New("event has no name"))
	}
	if len(e.Rooms) == 0 && !e.Broadcast {
		return errors.Join(ErrInvalidEvent, errors.New("event has no room"))
	}
	if !json.Valid(e.Payload) {
		return errors.Join(ErrInvalidEvent, errors.New("payload is not valid JSON"))
	}
	return nil
}

// Publisher accepts events. It is what producers depend on.
type Publisher interface {
	// Publish hands e to the bus and returns once the bus has accepted it.
	Publish(ctx context.Context, e Event) error
}

// Handler receives consumed events, one at a time, in order.
type Handler func(Event)

// HealthChecker is implemented by buses that can tell whether they work
// end to end; readiness calls it.
type HealthChecker interface {
	// Health returns nil when the bus accepts events and, on a consuming
	// node, delivers them; otherwise an error saying why not.
	Health(ctx context.Context) error
}

// Bus is a Publisher whose events can be consumed.
type Bus interface {
	Publisher
	// Consume calls h for every event published from now on, in publish
	// order, until ctx is done or the bus is closed. One consumer at a time.
	Consume(ctx context.Context, h Handler) error
	// Close stops the bus; pending Publish and Consume calls return ErrClosed.
	Close() error
}
