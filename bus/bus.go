package bus

import (
	"context"
	"errors"

	"github.com/meshgen/gateway/event"
)

// Sentinel errors of the bus.
var (
	// ErrClosed is returned by Publish and Consume after Close.
	ErrClosed = errors.New("bus: closed")
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

// Publisher accepts events. It is what producers depend on.
type Publisher interface {
	// Publish hands e to the bus and returns once the bus has accepted it.
	// An event that does not validate (event.Event.Validate) is refused
	// with an error wrapping event.ErrInvalid. Invalid UTF-8 in the
	// payload is replaced by U+FFFD (event.ValidUTF8), never delivered.
	Publish(ctx context.Context, e event.Event) error
}

// Handler receives consumed events in order, a batch at a time: the events
// one read of the bus returned (a single event when they come one by one,
// up to the read's count when they come faster than they are delivered).
// The batch is never empty; the handler must not keep the slice after it
// returns.
type Handler func(batch []event.Event)

// MaxBatch is the most events one Handler call gets.
const MaxBatch = 512

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
	// Consume calls h with every event published from now on, in publish
	// order and in batches, until ctx is done or the bus is closed. One
	// consumer at a time.
	Consume(ctx context.Context, h Handler) error
	// Close stops the bus; pending Publish and Consume calls return ErrClosed.
	Close() error
	// Delivered is the position of the consumer: every event whose id is
	// at or before it was handed to the handler, which returned.
	Delivered() string
}
