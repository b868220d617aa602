package status

import (
	"sync"
	"time"

	"github.com/meshgen/gateway/event"
)

// Entry is one event in the list of the latest: never its payload.
type Entry struct {
	// Source is "webhook" for an event made by a Modal webhook, else
	// "publish" (the publish API, a batch's progress).
	Source string   `json:"source"`
	Event  string   `json:"event"`
	JobID  string   `json:"job_id,omitempty"`
	Status string   `json:"status,omitempty"`
	Rooms  []string `json:"rooms"`
	// At is when the event was stored on the bus (or consumed, when the
	// bus does not say).
	At time.Time `json:"at"`
	// Age is At's age in seconds when the list was read.
	Age float64 `json:"age_seconds"`
}

// Recent is a ring of the latest events a node consumed. Observe is called
// once per event on the consume path: it reads only job_id and status
// from the payload, and keeps neither the payload nor more than its
// capacity.
type Recent struct {
	limits *Limits

	mu      sync.Mutex // guards the fields below
	entries []Entry    // ring of len cap
	next    int        // where the next entry goes
	full    bool
}

// NewRecent returns a ring of capacity entries (1 to MaxRecent; outside
// that, DefaultRecent). Pushed-out entries are counted in limits (may be
// nil; a Server sets its own).
func NewRecent(capacity int, limits *Limits) *Recent {
	if capacity < 1 || capacity > MaxRecent {
		capacity = DefaultRecent
	}
	if limits == nil {
		limits = &Limits{}
	}
	return &Recent{limits: limits, entries: make([]Entry, capacity)}
}

// Observe records e.
func (r *Recent) Observe(e event.Event) {
	jobID, status := jobFields(e.Payload) // an event without them is listed by name
	entry := Entry{Source: "publish", Event: e.Name, JobID: jobID, Status: status, Rooms: e.Rooms, At: e.PublishedAt}
	if !e.ReceivedAt.IsZero() {
		entry.Source = "webhook"
	}
	if entry.Status == "" && e.Name == event.JobFailed {
		entry.Status = "failed"
	}
	if entry.At.IsZero() {
		entry.At = time.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		r.limits.Recent.Add(1)
	}
	r.entries[r.next] = entry
	r.next = (r.next + 1) % len(r.entries)
	if r.next == 0 {
		r.full = true
	}
}

// List returns the entries, newest first, with their age at now.
func (r *Recent) List(now time.Time) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.entries)
	}
	out := make([]Entry, 0, n)
	for i := 1; i <= n; i++ {
		e := r.entries[(r.next-i+len(r.entries))%len(r.entries)]
		e.Age = max(0, now.Sub(e.At).Seconds())
		out = append(out, e)
	}
	return out
}
