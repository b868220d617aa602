package soak

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshgen/gateway/test/load/internal/eio"
)

// Fleet is the clients of a soak: a fixed number of slots, each holding at
// most one Session at a time; churn closes a slot's session and opens a
// new one (a fresh connection that subscribes to the same room again, on
// the next node).
type Fleet struct {
	urls         []string
	rooms        int
	pollingEvery int
	ledger       *Ledger
	dialers      []*websocket.Dialer
	pollCli      *http.Client

	slots []slot

	ConnectErrors atomic.Int64
	Churned       atomic.Int64
	Reconnected   atomic.Int64
	Unexpected    atomic.Int64

	errMu      sync.Mutex
	ErrSamples []string
	wg         sync.WaitGroup
}

type slot struct {
	mu   sync.Mutex
	cur  *Session
	node int
	busy bool
}

// SourceIPs is how many loopback source addresses the websocket clients
// are spread over.
const SourceIPs = 8

// NewFleet prepares n client slots over urls; every pollingEvery-th client
// uses long-polling (0: none). Client i is in room i % rooms.
func NewFleet(urls []string, n, rooms, pollingEvery int, l *Ledger) *Fleet {
	f := &Fleet{urls: urls, rooms: rooms, pollingEvery: pollingEvery, ledger: l,
		pollCli: eio.NewHTTPClient(4*n/max(pollingEvery, 1) + 16),
		slots:   make([]slot, n)}
	for i := range f.slots {
		f.slots[i].node = i % len(urls)
	}
	// Websocket clients come from 127.0.0.2-9, as browsers come from many
	// addresses: the gateway's per-address connection share (1,024 by
	// default) stays what production runs with.
	for i := 0; i < SourceIPs; i++ {
		f.dialers = append(f.dialers, eio.NewDialer("127.0.0."+strconv.Itoa(2+i)))
	}
	return f
}

func (f *Fleet) note(kind string, err error) {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if len(f.ErrSamples) < 20 {
		f.ErrSamples = append(f.ErrSamples, kind+": "+err.Error())
	}
}

// dial opens a session for slot i on node, retrying up to 5 times.
func (f *Fleet) dial(ctx context.Context, i, node int) *Session {
	room := i % f.rooms
	polling := f.pollingEvery > 0 && i%f.pollingEvery == f.pollingEvery-1
	pid := ProjectID(room)
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		s := &Session{Room: room, Node: node, Polling: polling}
		opts := eio.Options{
			URL:     f.urls[node],
			Polling: polling,
			OnConnect: []eio.Emit{{
				Name:  "subscribe_project",
				Arg:   []byte(`{"project_id":"` + pid + `"}`),
				Reply: "subscribed_project",
			}},
			OnEvent: func(_, arg []byte, recv int64) { f.ledger.OnEvent(s, arg, recv) },
			OnClose: func(err error) { f.lost(ctx, i, s, err) },
			Dialer:  f.dialers[i%len(f.dialers)],
			HTTP:    f.pollCli,
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, err := eio.Dial(cctx, opts)
		cancel()
		if err != nil {
			f.ConnectErrors.Add(1)
			f.note("connect", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			node = (node + 1) % len(f.urls)
			continue
		}
		s.mu.Lock()
		s.c = c
		if s.JoinedAt == 0 && s.LeftAt == 0 {
			s.JoinedAt = time.Now().UnixNano()
		}
		s.mu.Unlock()
		f.ledger.AddSession(s)
		return s
	}
	return nil
}

// lost handles a session the server or the network ended: it is counted,
// and the slot reconnects after a second (as a browser would).
func (f *Fleet) lost(ctx context.Context, i int, s *Session, err error) {
	s.mu.Lock()
	if s.LeftAt == 0 {
		s.LeftAt = time.Now().UnixNano()
		s.Unexpected = err
	}
	s.mu.Unlock()
	f.Unexpected.Add(1)
	f.note("disconnect", err)
	sl := &f.slots[i]
	sl.mu.Lock()
	if sl.cur != s || sl.busy {
		sl.mu.Unlock()
		return
	}
	sl.busy = true
	sl.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		f.replace(ctx, i, s)
	}()
}

// replace closes old (if still open) and opens a new session on the next node.
func (f *Fleet) replace(ctx context.Context, i int, old *Session) {
	sl := &f.slots[i]
	leave(old)
	sl.mu.Lock()
	sl.node = (sl.node + 1) % len(f.urls)
	node := sl.node
	sl.mu.Unlock()
	var s *Session
	if ctx.Err() == nil {
		s = f.dial(ctx, i, node)
		f.Reconnected.Add(1)
	}
	sl.mu.Lock()
	sl.cur, sl.busy = s, false
	sl.mu.Unlock()
}

// leave marks s as leaving now and closes it.
func leave(s *Session) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.LeftAt == 0 {
		s.LeftAt = time.Now().UnixNano()
	}
	c := s.c
	s.mu.Unlock()
	if c != nil {
		c.Close()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

// Connect opens every slot's first session, conc handshakes at a time.
func (f *Fleet) Connect(ctx context.Context, conc int) {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range f.slots {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			s := f.dial(ctx, i, f.slots[i].node)
			f.slots[i].mu.Lock()
			f.slots[i].cur = s
			f.slots[i].mu.Unlock()
		}(i)
	}
	wg.Wait()
}

// Churn closes and reopens n random open sessions (in the background).
func (f *Fleet) Churn(ctx context.Context, n int, rng *rand.Rand) {
	for k, tries := 0, 0; k < n && tries < 20*n; tries++ {
		i := rng.IntN(len(f.slots))
		sl := &f.slots[i]
		sl.mu.Lock()
		if sl.cur == nil || sl.busy {
			sl.mu.Unlock()
			continue
		}
		sl.busy = true
		old := sl.cur
		sl.mu.Unlock()
		k++
		f.Churned.Add(1)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.replace(ctx, i, old)
		}()
	}
}

// Open counts the slots holding a session.
func (f *Fleet) Open() int {
	n := 0
	for i := range f.slots {
		f.slots[i].mu.Lock()
		if f.slots[i].cur != nil {
			n++
		}
		f.slots[i].mu.Unlock()
	}
	return n
}

// CloseAll waits for the churn in flight and closes every session.
func (f *Fleet) CloseAll() {
	f.wg.Wait()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for i := range f.slots {
		f.slots[i].mu.Lock()
		s := f.slots[i].cur
		f.slots[i].cur = nil
		f.slots[i].mu.Unlock()
		if s == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() { defer wg.Done(); defer func() { <-sem }(); leave(s) }()
	}
	wg.Wait()
}

// ProjectID is the project id of room i.
func ProjectID(room int) string { return "p" + strconv.Itoa(room) }
