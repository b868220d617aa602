package soak

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgen/gateway/test/load/internal/eio"
	"github.com/meshgen/gateway/test/load/internal/stats"
)

// Session is one connection of one client (a churned client gets a new
// Session). It is in its room from JoinedAt (the subscribed_project reply
// arrived) until LeftAt (the moment the harness began to close it, or the
// moment the server ended it; 0 while open).
type Session struct {
	Room    int
	Node    int
	Polling bool

	mu         sync.Mutex
	JoinedAt   int64
	LeftAt     int64
	Unexpected error // the server or the network ended it
	seen       stats.Bitset
	dups       int
	foreign    int
	c          *eio.Client
}

// event is what the producer knows about one event of one room: SentAt is
// its first attempt (and the ts it carries), AckAt the 200 that
// acknowledged it (0: never acknowledged).
type event struct {
	SentAt int64
	AckAt  int64
}

// Ledger is the accounting of a run: every event of every room and every
// session of every client.
type Ledger struct {
	rooms []roomLog

	mu       sync.Mutex
	sessions []*Session

	unparsed  atomic.Int64
	delivered atomic.Int64
	dups      atomic.Int64
	foreign   atomic.Int64
	hist      stats.Histogram
	window    atomic.Pointer[stats.Histogram]
}

type roomLog struct {
	mu  sync.Mutex
	evs []event
}

// NewLedger prepares n rooms.
func NewLedger(rooms int) *Ledger {
	l := &Ledger{rooms: make([]roomLog, rooms)}
	l.window.Store(new(stats.Histogram))
	return l
}

// Next assigns the next sequence number of room, sent at sentAt.
func (l *Ledger) Next(room int, sentAt int64) int64 {
	r := &l.rooms[room]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, event{SentAt: sentAt})
	return int64(len(r.evs) - 1)
}

// Ack records the acknowledgement of (room, seq) at t (the first one wins).
func (l *Ledger) Ack(room int, seq, t int64) {
	r := &l.rooms[room]
	r.mu.Lock()
	if r.evs[seq].AckAt == 0 {
		r.evs[seq].AckAt = t
	}
	r.mu.Unlock()
}

// AddSession registers s.
func (l *Ledger) AddSession(s *Session) {
	l.mu.Lock()
	l.sessions = append(l.sessions, s)
	l.mu.Unlock()
}

// SwapWindow returns the latency histogram of the window just ended and
// starts a new one.
func (l *Ledger) SwapWindow() *stats.Histogram { return l.window.Swap(new(stats.Histogram)) }

var (
	keySeq  = []byte(`"seq":`)
	keyTS   = []byte(`"ts":`)
	keyRoom = []byte(`"r":`)
)

// OnEvent accounts one event received by s at recv (unix nanos).
func (l *Ledger) OnEvent(s *Session, arg []byte, recv int64) {
	seq, ok1 := eio.FindInt(arg, keySeq)
	room, ok2 := eio.FindInt(arg, keyRoom)
	ts, ok3 := eio.FindInt(arg, keyTS)
	if !ok1 || !ok2 || !ok3 || seq < 0 {
		l.unparsed.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(room) != s.Room {
		s.foreign++
		l.foreign.Add(1)
		return
	}
	if s.seen.Set(seq) {
		s.dups++
		l.dups.Add(1)
		return
	}
	l.delivered.Add(1)
	l.hist.Record(recv - ts)
	l.window.Load().Record(recv - ts)
}

// Delivered is the count of first receipts so far.
func (l *Ledger) Delivered() int64 { return l.delivered.Load() }

// Verdict is the loss accounting of a run.
type Verdict struct {
	Events         int64         `json:"events"`
	Acknowledged   int64         `json:"acknowledged"`
	Unacknowledged int64         `json:"unacknowledged"`
	Sessions       int           `json:"sessions"`
	Owed           int64         `json:"owed_deliveries"`
	Delivered      int64         `json:"delivered"`
	DeliveredOwed  int64         `json:"delivered_owed"`
	Lost           int64         `json:"lost"`
	Duplicates     int64         `json:"duplicates"`
	Foreign        int64         `json:"foreign"`
	Unparsed       int64         `json:"unparsed"`
	Unexpected     int           `json:"unexpected_disconnects"`
	LostSamples    []string      `json:"lost_samples,omitempty"`
	DroppedPolling int           `json:"dropped_polling_sessions"`
	DroppedSamples []string      `json:"dropped_samples,omitempty"`
	ChurnGraceMS   int64         `json:"churn_grace_ms"`
	LatencyOverall stats.Latency `json:"latency"`
}

// Owed reports whether an event e of s's room must have reached s: s was
// in the room before the event's first attempt began, and stayed until at
// least grace after its acknowledgement (or to the end of the run).
func Owed(s *Session, e event, grace int64) bool {
	if e.AckAt == 0 || s.JoinedAt == 0 || s.JoinedAt >= e.SentAt {
		return false
	}
	return s.LeftAt == 0 || s.LeftAt > e.AckAt+grace
}

// Verdict computes the accounting; call it once every session is closed
// and the producer stopped.
func (l *Ledger) Verdict(grace int64) Verdict {
	v := Verdict{ChurnGraceMS: grace / 1e6, Delivered: l.delivered.Load(), Duplicates: l.dups.Load(),
		Foreign: l.foreign.Load(), Unparsed: l.unparsed.Load(), LatencyOverall: l.hist.Summary()}
	byRoom := make([][]event, len(l.rooms))
	for i := range l.rooms {
		r := &l.rooms[i]
		r.mu.Lock()
		byRoom[i] = append([]event(nil), r.evs...)
		r.mu.Unlock()
		for _, e := range byRoom[i] {
			v.Events++
			if e.AckAt != 0 {
				v.Acknowledged++
			} else {
				v.Unacknowledged++
			}
		}
	}
	l.mu.Lock()
	sessions := append([]*Session(nil), l.sessions...)
	l.mu.Unlock()
	v.Sessions = len(sessions)
	for _, s := range sessions {
		s.mu.Lock()
		if s.Unexpected != nil {
			v.Unexpected++
			if s.Polling {
				v.DroppedPolling++
			}
			if len(v.DroppedSamples) < 20 {
				v.DroppedSamples = append(v.DroppedSamples, time.Unix(0, s.LeftAt).UTC().Format("15:04:05.000")+
					" node "+strconv.Itoa(s.Node)+" polling="+strconv.FormatBool(s.Polling)+": "+s.Unexpected.Error())
			}
		}
		for seq, e := range byRoom[s.Room] {
			if e.SentAt <= s.JoinedAt {
				continue
			}
			if !Owed(s, e, grace) {
				continue
			}
			v.Owed++
			if s.seen.Has(int64(seq)) {
				v.DeliveredOwed++
			} else {
				v.Lost++
				if len(v.LostSamples) < 10 {
					v.LostSamples = append(v.LostSamples, lostSample(s, seq, e))
				}
			}
		}
		s.mu.Unlock()
	}
	return v
}

func lostSample(s *Session, seq int, e event) string {
	left := "open"
	if s.LeftAt != 0 {
		left = strconv.FormatFloat(float64(s.LeftAt-e.AckAt)/1e6, 'f', 0, 64) + "ms after the ack"
	}
	return "room " + strconv.Itoa(s.Room) + " seq " + strconv.Itoa(seq) + " node " + strconv.Itoa(s.Node) +
		" polling=" + strconv.FormatBool(s.Polling) + ": joined " + strconv.FormatFloat(float64(e.SentAt-s.JoinedAt)/1e6, 'f', 0, 64) +
		"ms before the send, left " + left
}
