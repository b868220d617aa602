package recovery

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
)

// DefaultBacklogBytes bounds a Backlog by default.
const DefaultBacklogBytes = 32 << 20

// entryOverhead is what one kept event costs besides its bytes (the struct,
// slice headers, the time).
const entryOverhead = 160

// Backlog keeps the events this node delivered most recently, in delivery
// order (which is stream order), bounded by bytes and by age. It is where
// a recovering client's missed events are read from first, without a
// round trip to Redis, and the only place for the in-process bus.
//
// Everything after the newest evicted event is kept: a read from a
// position at or after it is complete.
type Backlog struct {
	maxBytes int64
	maxAge   time.Duration
	now      func() time.Time

	mu      sync.Mutex
	events  []kept // events[start:] are kept, oldest first
	start   int
	bytes   int64
	evicted string            // id of the newest event evicted ("" when none)
	first   string            // id of the first event ever kept ("" until one is)
	last    map[string]string // room -> id of its newest event kept
	status  map[string]string // room -> id of its newest batch_status kept
}

type kept struct {
	ev   event.Event
	at   time.Time
	size int64
}

// NewBacklog returns an empty backlog of at most maxBytes (zero means
// DefaultBacklogBytes) holding events for at most maxAge.
func NewBacklog(maxBytes int64, maxAge time.Duration) *Backlog {
	if maxBytes <= 0 {
		maxBytes = DefaultBacklogBytes
	}
	return &Backlog{maxBytes: maxBytes, maxAge: maxAge, now: time.Now, last: map[string]string{}, status: map[string]string{}}
}

// Append keeps e, the event just delivered (ids increase), and evicts the
// oldest events past the bounds.
func (b *Backlog) Append(e event.Event) {
	size := int64(len(e.ID)+len(e.Name)+len(e.Payload)) + entryOverhead
	for _, r := range e.Rooms {
		size += int64(len(r)) + 16
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, kept{ev: e, at: now, size: size})
	b.bytes += size
	if b.first == "" {
		b.first = e.ID
	}
	for _, r := range e.Rooms {
		b.last[r] = e.ID
		if e.Name == event.BatchStatus {
			b.status[r] = e.ID
		}
	}
	b.evict(now)
}

// evict drops the oldest events past the bounds (the newest always
// stays); b.mu held.
func (b *Backlog) evict(now time.Time) {
	for len(b.events)-b.start > 1 {
		old := b.events[b.start]
		if b.bytes <= b.maxBytes && (b.maxAge <= 0 || now.Sub(old.at) <= b.maxAge) {
			break
		}
		b.bytes -= old.size
		b.evicted = old.ev.ID
		for _, r := range old.ev.Rooms {
			if b.last[r] == old.ev.ID {
				delete(b.last, r)
			}
			if b.status[r] == old.ev.ID {
				delete(b.status, r)
			}
		}
		b.events[b.start] = kept{}
		b.start++
	}
	// Compact once half the slice is dead, so its memory follows the
	// bounds.
	if b.start > 1024 && b.start > len(b.events)/2 {
		n := copy(b.events, b.events[b.start:])
		clear(b.events[n:])
		b.events = b.events[:n]
		b.start = 0
	}
}

// Newest is the id of the newest event kept ("" when empty).
func (b *Backlog) Newest() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.events) == b.start {
		return ""
	}
	return b.events[len(b.events)-1].ev.ID
}

// Has reports whether the event with this exact id is kept.
func (b *Backlog) Has(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.search(id)
	return i < len(b.events) && b.events[i].ev.ID == id
}

// Position says where id stands against what is kept.
type Position int

// Positions of Backlog.Locate.
const (
	// Kept: the id of an event kept.
	Kept Position = iota
	// Older: before everything kept (or nothing is kept): whether it was
	// an event is for the bus's history to say.
	Older
	// Newer: after the newest event kept: not delivered here yet.
	Newer
	// Missing: within what is kept, but no event has this id.
	Missing
)

// Locate says where id stands against what is kept.
func (b *Backlog) Locate(id string) Position {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.events) == b.start || bus.CompareIDs(id, b.events[b.start].ev.ID) < 0 {
		return Older
	}
	if bus.CompareIDs(id, b.events[len(b.events)-1].ev.ID) > 0 {
		return Newer
	}
	i := b.search(id)
	if b.events[i].ev.ID == id {
		return Kept
	}
	return Missing
}

// Complete reports whether no event after id was evicted: every event
// after id this node delivered is still kept.
func (b *Backlog) Complete(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.evicted == "" || bus.CompareIDs(id, b.evicted) >= 0
}

// search returns the index of the first kept event whose id is not before
// id; b.mu held.
func (b *Backlog) search(id string) int {
	return b.start + sort.Search(len(b.events)-b.start, func(i int) bool {
		return bus.CompareIDs(b.events[b.start+i].ev.ID, id) >= 0
	})
}

// Since calls fn with every kept event after id (exclusive), oldest first,
// until fn returns false. It holds the backlog's lock: fn must not block.
func (b *Backlog) Since(id string, fn func(event.Event) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.start
	if id != "" {
		i = b.search(id)
		if i < len(b.events) && b.events[i].ev.ID == id {
			i++
		}
	}
	for ; i < len(b.events); i++ {
		if !fn(b.events[i].ev) {
			return
		}
	}
}

// Quiet is a stretch of the stream in which a set of rooms had no event:
// none after From, up to and including To. A client in those rooms that
// received the event From (or a later one) missed nothing up to To.
type Quiet struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Applies reports whether a client whose last event is offset missed
// nothing up to To: offset is at or after From and before To.
func (q Quiet) Applies(offset string) bool {
	return q.From != "" && q.To != "" && bus.CompareIDs(offset, q.From) >= 0 && bus.CompareIDs(offset, q.To) < 0
}

// QuietFor returns the stretch, ending at the newest event kept, in which
// rooms had no event; false when nothing was delivered yet.
func (b *Backlog) QuietFor(rooms []string) (Quiet, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first == "" || len(b.events) == b.start {
		return Quiet{}, false
	}
	// A room with no event kept had none since the newest evicted one,
	// or, when nothing was evicted, since this node began delivering: the
	// position just before its first event.
	base := b.evicted
	if base == "" {
		base = before(b.first)
	}
	from := base
	for _, r := range rooms {
		if id, ok := b.last[r]; ok && bus.CompareIDs(id, from) > 0 {
			from = id
		}
	}
	return Quiet{From: from, To: b.events[len(b.events)-1].ev.ID}, true
}

// before returns the greatest id before id in its bus's id space.
func before(id string) string {
	ms, seq, stream := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	if !stream {
		if m == 0 {
			return "0"
		}
		return strconv.FormatUint(m-1, 10)
	}
	s, _ := strconv.ParseUint(seq, 10, 64)
	switch {
	case s > 0:
		return ms + "-" + strconv.FormatUint(s-1, 10)
	case m > 0:
		return strconv.FormatUint(m-1, 10) + "-" + strconv.FormatUint(math.MaxUint64, 10)
	}
	return "0-0"
}

// Evicted reports whether id is at or before the newest evicted event:
// what followed it may be gone.
func (b *Backlog) Evicted(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.evicted != "" && bus.CompareIDs(id, b.evicted) <= 0
}

// Oldest is the id of the oldest event kept ("" when empty).
func (b *Backlog) Oldest() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.events) == b.start {
		return ""
	}
	return b.events[b.start].ev.ID
}

// LastStatus returns the newest batch_status kept for room.
func (b *Backlog) LastStatus(room string) (event.Event, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, ok := b.status[room]
	if !ok {
		return event.Event{}, false
	}
	i := b.search(id)
	if i >= len(b.events) || b.events[i].ev.ID != id {
		return event.Event{}, false
	}
	return b.events[i].ev, true
}

// Len is the number of events kept and their estimated bytes.
func (b *Backlog) Len() (int, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events) - b.start, b.bytes
}
