package bus

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/meshgen/gateway/event"
)

// History is a bus whose past events can be read again: the Redis bus,
// whose stream keeps them until trimmed. Connection state recovery reads
// it for a client whose offset is older than what its node keeps in
// memory.
type History interface {
	// Locate says where id stands in the stored history: an entry of it,
	// older than the oldest entry kept (trimmed), or not an entry at all.
	Locate(ctx context.Context, id string) (Location, error)
	// After reads up to count entries stored after id (exclusive), oldest
	// first, and returns the events among them (canaries and entries that
	// do not decode are skipped, as the consumer skips them) and the id of
	// the last entry read; last is "" when there was none, so the caller
	// has reached the end.
	After(ctx context.Context, id string, count int64) (events []event.Event, last string, err error)
}

// Location is where an id stands in a History.
type Location int

// Locations of History.Locate.
const (
	// Absent: not the id of an entry (never issued by this stream).
	Absent Location = iota
	// Present: the id of an entry still stored.
	Present
	// Trimmed: older than the oldest entry stored.
	Trimmed
)

var _ History = (*Redis)(nil)

// Locate implements History.
func (r *Redis) Locate(ctx context.Context, id string) (Location, error) {
	if !ValidID(id) {
		return Absent, nil
	}
	var exact, first *redis.XMessageSliceCmd
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		exact = p.XRangeN(ctx, r.opts.Stream, id, id, 1)
		first = p.XRangeN(ctx, r.opts.Stream, "-", "+", 1)
		return nil
	})
	if err != nil {
		return Absent, &UnavailableError{Err: fmt.Errorf("locate %s: %w", id, err)}
	}
	if len(exact.Val()) == 1 && exact.Val()[0].ID == id {
		return Present, nil
	}
	if f := first.Val(); len(f) == 0 || CompareIDs(id, f[0].ID) < 0 {
		return Trimmed, nil
	}
	return Absent, nil
}

// After implements History.
func (r *Redis) After(ctx context.Context, id string, count int64) ([]event.Event, string, error) {
	if !ValidID(id) {
		return nil, "", fmt.Errorf("bus: %q is not a stream id", id)
	}
	msgs, err := r.client.XRangeN(ctx, r.opts.Stream, "("+id, "+", count).Result()
	if err != nil {
		return nil, "", &UnavailableError{Err: fmt.Errorf("read after %s: %w", id, err)}
	}
	if len(msgs) == 0 {
		return nil, "", nil
	}
	out := make([]event.Event, 0, len(msgs))
	for _, msg := range msgs {
		if ev, ok := r.decode(msg); ok {
			out = append(out, ev)
		}
	}
	return out, msgs[len(msgs)-1].ID, nil
}

// LastID is the id of the newest entry of the stream ("0-0" when empty):
// a position every event stored so far is at or before.
func (r *Redis) LastID(ctx context.Context) (string, error) {
	msgs, err := r.client.XRevRangeN(ctx, r.opts.Stream, "+", "-", 1).Result()
	if err != nil {
		return "", &UnavailableError{Err: fmt.Errorf("stream tail: %w", err)}
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// ValidID reports whether id has the form of an event id either bus
// issues: a Redis stream id "<ms>-<seq>" or the in-process bus's sequence
// number, each part decimal digits that fit 64 bits. It checks the form
// only: whether an event has that id is the caller's question.
func ValidID(id string) bool {
	if id == "" || len(id) > 41 {
		return false
	}
	ms, seq, hasSeq := strings.Cut(id, "-")
	if !decimal(ms) || (hasSeq && !decimal(seq)) {
		return false
	}
	return true
}

func decimal(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// CompareIDs orders two event ids of the same bus (both stream ids, or
// both sequence numbers): -1, 0 or +1.
func CompareIDs(a, b string) int { return compareIDs(a, b) }
