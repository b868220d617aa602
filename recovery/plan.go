package recovery

import (
	"context"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
)

// Outcome is how one attempt to recover a session ended, as counted by
// gateway_recoveries_total{outcome}.
type Outcome string

// Outcomes of a recovery attempt.
const (
	// Recovered: the session came back with every event missed.
	Recovered Outcome = "recovered"
	// Expired: the session's window passed, or its offset is older than
	// what the stream (or the node's backlog) still holds.
	Expired Outcome = "expired"
	// Unknown: no such session, an offset the gateway did not issue, or
	// a session of another user.
	Unknown Outcome = "unknown"
	// TooMany: more events were missed than one recovery replays.
	TooMany Outcome = "too_many"
	// Unavailable: Redis could not be read; the client starts afresh.
	Unavailable Outcome = "unavailable"
)

// Defaults of a Planner.
const (
	DefaultMaxEvents = 1000
	// historyPage is how many stream entries one read takes.
	historyPage = 512
	// DefaultMaxScan bounds the stream entries read for one recovery.
	DefaultMaxScan = 100_000
)

// Replay is what a recovery sends before the client is live again: the
// missed events read from the bus's history, then every event the node's
// backlog holds after Through.
type Replay struct {
	// Events are the missed events read from the bus's history, oldest
	// first, for the session's rooms.
	Events []event.Event
	// Through is the position the replay continues from in the backlog:
	// every event up to it is in Events or was for other rooms. It is an
	// event id, which the node delivers (so can be waited for).
	Through string
}

// Planner decides whether a session can be recovered from a client's
// offset and reads what it missed.
type Planner struct {
	// Backlog is this node's recent events. Required.
	Backlog *Backlog
	// History is the bus's stored events; nil when the backlog is all
	// there is (the in-process bus).
	History bus.History
	// MaxEvents and MaxBytes bound one replay: past either the session is
	// not recovered (TooMany). Zero means DefaultMaxEvents and no byte
	// bound.
	MaxEvents int
	MaxBytes  int64
	// MaxScan bounds the stream entries read from History for one
	// recovery (TooMany past it). Zero means DefaultMaxScan.
	MaxScan int
}

// Plan checks the client's offset and counts what it missed in the rooms
// wanted selects. The offset must be an event the gateway issued (an event
// id in the backlog or the stream); quiet, the session's last known quiet
// stretch, lets a client whose rooms were idle skip the stream it slept
// through. The error is set only with Unavailable.
func (p *Planner) Plan(ctx context.Context, offset string, quiet Quiet, wanted func(rooms []string) bool) (Replay, Outcome, error) {
	if !bus.ValidID(offset) {
		return Replay{}, Unknown, nil
	}
	if o, err := p.check(ctx, offset); o != Recovered {
		return Replay{}, o, err
	}
	start := offset
	if quiet.Applies(offset) {
		if o, err := p.check(ctx, quiet.To); o != Recovered {
			// The quiet stretch's end is gone: what followed may be too.
			return Replay{}, expiredIfKnown(o), err
		}
		start = quiet.To
	}
	maxEvents := p.MaxEvents
	if maxEvents <= 0 {
		maxEvents = DefaultMaxEvents
	}
	c := counter{maxEvents: maxEvents, maxBytes: p.MaxBytes, wanted: wanted}
	r := Replay{Through: start}
	if p.Backlog.Locate(start) == Older {
		var err error
		if r, err = p.readHistory(ctx, start, &c); err != nil {
			return Replay{}, Unavailable, err
		}
		if c.over {
			return Replay{}, TooMany, nil
		}
	}
	p.Backlog.Since(r.Through, func(e event.Event) bool { return c.add(e) })
	if c.over {
		return Replay{}, TooMany, nil
	}
	return r, Recovered, nil
}

// check says whether id is an event this gateway issued and still holds
// (Recovered), and otherwise why not.
func (p *Planner) check(ctx context.Context, id string) (Outcome, error) {
	switch p.Backlog.Locate(id) {
	case Kept:
		return Recovered, nil
	case Missing:
		return Unknown, nil
	case Older:
		if p.History == nil {
			if p.Backlog.Evicted(id) {
				return Expired, nil
			}
			return Unknown, nil
		}
	case Newer:
		if p.History == nil {
			return Unknown, nil
		}
	}
	loc, err := p.History.Locate(ctx, id)
	switch {
	case err != nil:
		return Unavailable, err
	case loc == bus.Present:
		return Recovered, nil
	case loc == bus.Trimmed:
		return Expired, nil
	}
	return Unknown, nil
}

func expiredIfKnown(o Outcome) Outcome {
	if o == Unknown {
		return Expired
	}
	return o
}

// readHistory reads the stream after start until the backlog's oldest
// event (from where the backlog has everything) or the stream's end, and
// returns the wanted events read and where the backlog takes over.
func (p *Planner) readHistory(ctx context.Context, start string, c *counter) (Replay, error) {
	maxScan := p.MaxScan
	if maxScan <= 0 {
		maxScan = DefaultMaxScan
	}
	oldest := p.Backlog.Oldest()
	r := Replay{Through: start}
	cursor, scanned := start, 0
	for {
		events, last, err := p.History.After(ctx, cursor, historyPage)
		if err != nil {
			return Replay{}, err
		}
		if last == "" {
			return r, nil // the stream's end: the backlog follows
		}
		for _, e := range events {
			if oldest != "" && bus.CompareIDs(e.ID, oldest) >= 0 {
				return r, nil // the backlog has everything from here
			}
			if c.want(e) {
				r.Events = append(r.Events, e)
			}
			if c.over {
				return r, nil
			}
			r.Through = e.ID
		}
		cursor = last
		if scanned += historyPage; scanned >= maxScan {
			c.over = true
			return r, nil
		}
	}
}

// counter counts the wanted events of a replay against its bounds.
type counter struct {
	maxEvents int
	maxBytes  int64
	wanted    func([]string) bool
	events    int
	bytes     int64
	over      bool
}

// want counts e if wanted and reports whether it is.
func (c *counter) want(e event.Event) bool {
	if !c.wanted(e.Rooms) {
		return false
	}
	c.events++
	c.bytes += int64(len(e.Payload) + len(e.Name) + len(e.ID))
	if c.events > c.maxEvents || (c.maxBytes > 0 && c.bytes > c.maxBytes) {
		c.over = true
	}
	return true
}

// add counts e and reports whether to go on.
func (c *counter) add(e event.Event) bool {
	c.want(e)
	return !c.over
}
