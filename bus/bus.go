package bus

import (
	"context"
	"encoding/json"
	"errors"
)

// Sentinel errors of the bus.
var (
	// ErrClosed is returned by Publish and Consume after Close.
	ErrClosed = errors.New("bus: closed")
	// ErrInvalidEvent is returned by Publish for an event without a name,
	// rooms or a valid JSON payload.
	ErrInvalidEvent = errors.New("bus: invalid event")
)

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

// Bus is a Publisher whose events can be consumed.
type Bus interface {
	Publisher
	// Consume calls h for every event published from now on, in publish
	// order, until ctx is done or the bus is closed. One consumer at a time.
	Consume(ctx context.Context, h Handler) error
	// Close stops the bus; pending Publish and Consume calls return ErrClosed.
	Close() error
}
