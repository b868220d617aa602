// Package bus carries events from producers (the Modal webhook, later the
// publish API and the Flask-SocketIO bridge) to every gateway node.
//
// An Event is built once by its producer: its name, the rooms it goes to and
// its payload already encoded as JSON. Nobody downstream re-derives the rooms
// or re-encodes the payload per recipient.
//
// A Bus has two sides. Publish returns only once the event has been accepted
// by the bus (queued in memory for the in-process bus); an error means the
// event was not accepted and the producer must say so to its caller.
// Consume delivers events to one handler, one at a time, in publish order.
//
// The in-process bus (NewMemory) is the embedded default for a single node:
// delivery is in order and exactly once while the process lives, and nothing
// survives a restart. Publish blocks while the consumer's bounded queue is
// full (back-pressure instead of an unbounded queue or a silent drop).
package bus
