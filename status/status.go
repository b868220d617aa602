package status

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgen/gateway/event"
)

// Defaults and limits of Options.
const (
	// DefaultMaxStreams is the default of Options.MaxStreams.
	DefaultMaxStreams = 16
	// DefaultRecent is the default of Options.Recent.
	DefaultRecent = 50
	// MaxRecent is the largest Options.Recent.
	MaxRecent = 1000
	// DefaultLoginAttempts is the default of Options.LoginAttempts.
	DefaultLoginAttempts = 10
	// DefaultInterval is the default of Options.Interval.
	DefaultInterval = 2 * time.Second
	// MinTokenLength is the shortest token config accepts.
	MinTokenLength = 16
	// MaxLoginBodyBytes bounds the login form's body.
	MaxLoginBodyBytes = 4096
	// HistoryLength is how many samples the charts keep (five minutes at
	// the default interval).
	HistoryLength = 150
	// TopRooms is how many of the biggest rooms the page lists.
	TopRooms = 10
)

// Node is what one node reports about itself.
type Node struct {
	ID       string            `json:"id"`
	Role     string            `json:"role"`
	Version  string            `json:"version"`
	Ready    bool              `json:"ready"`
	Failures map[string]string `json:"failures,omitempty"`
	// Clients are the connected clients by transport (websocket, polling).
	Clients map[string]int `json:"clients"`
	// Rooms is the number of rooms with a client on this node.
	Rooms int `json:"rooms"`
	// BusLag is how far the node's consumer is behind, in seconds.
	BusLag    float64   `json:"bus_lag_seconds"`
	StartedAt time.Time `json:"started_at"`
	// SeenAt is when the node last reported.
	SeenAt time.Time `json:"seen_at"`
}

// Counters are a node's running totals; the charts draw their rates.
type Counters struct {
	// Emitted counts events emitted to rooms.
	Emitted float64
	// Deliveries counts events written to clients.
	Deliveries float64
	// Webhooks counts webhook answers by class: "2xx", "4xx", "5xx".
	Webhooks map[string]float64
	// Publishes and PublishSeconds are the count and the summed duration
	// of publishes onto the bus.
	Publishes      float64
	PublishSeconds float64
}

// Room is one room and its members on this node.
type Room struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
}

// Probe reads this node's state. app implements it over package health,
// gateway and metrics.
type Probe interface {
	// Node reports this node now (ID, role, version and start are filled
	// in by the Server).
	Node(ctx context.Context) Node
	// Counters reports this node's running totals.
	Counters() Counters
	// TopRooms reports the n biggest rooms of this node, biggest first.
	TopRooms(n int) []Room
}

// Options configures a Server.
type Options struct {
	// NodeID, Role and Version name this node. NodeID is required.
	NodeID, Role, Version string
	// Token guards every route but the static assets; empty serves the
	// page to anyone (app allows that in development only).
	Token string
	// Probe reads this node's state. Required.
	Probe Probe
	// Cluster is where nodes announce themselves. Nil means this node only.
	Cluster Cluster
	// Recent holds the latest events; nil means a ring of DefaultRecent.
	Recent *Recent
	// Interval is how often figures are sampled, pushed and announced.
	// Zero means DefaultInterval.
	Interval time.Duration
	// MaxStreams bounds the live streams. Zero means DefaultMaxStreams.
	MaxStreams int
	// LoginAttempts bounds wrong tokens per minute. Zero means
	// DefaultLoginAttempts.
	LoginAttempts int
	// Logger is required.
	Logger *slog.Logger
}

// Point is one sample of the rates, per second over the interval before
// At.
type Point struct {
	At         time.Time          `json:"t"`
	Emitted    float64            `json:"emitted"`
	Deliveries float64            `json:"deliveries"`
	Webhooks   map[string]float64 `json:"webhooks"`
	// PublishMs is the mean publish latency over the interval, in ms.
	PublishMs float64 `json:"publish_ms"`
}

// State is what the page shows, as it is sent to a live stream.
type State struct {
	Node    Node    `json:"node"`
	Nodes   []Node  `json:"nodes"`
	History []Point `json:"history"`
	Recent  []Entry `json:"recent"`
	Rooms   []Room  `json:"rooms"`
	// ClusterError says why the other nodes could not be read.
	ClusterError string `json:"cluster_error,omitempty"`
}

// Limits counts how often each bound tripped.
type Limits struct {
	Streams       atomic.Uint64
	Recent        atomic.Uint64
	LoginBody     atomic.Uint64
	LoginAttempts atomic.Uint64
}

// Map returns the counts by limit name, as gateway_status_limited_total
// labels them.
func (l *Limits) Map() map[string]float64 {
	return map[string]float64{
		"streams": float64(l.Streams.Load()), "recent": float64(l.Recent.Load()),
		"login_body": float64(l.LoginBody.Load()), "login_attempts": float64(l.LoginAttempts.Load()),
	}
}

// Server is the status page of one node.
type Server struct {
	opts    Options
	log     *slog.Logger
	started time.Time
	auth    *auth
	limits  *Limits

	streams atomic.Int64
	done    chan struct{} // closed by Close
	once    sync.Once

	mu      sync.Mutex // guards the fields below
	prev    *Counters
	prevAt  time.Time
	history []Point
	state   []byte                   // the latest State, encoded
	subs    map[chan []byte]struct{} // live streams
}

// New returns the status page. It panics when NodeID, Probe or Logger is
// missing (a wiring error).
func New(opts Options) *Server {
	if opts.NodeID == "" || opts.Probe == nil || opts.Logger == nil {
		panic("status: Options needs NodeID, Probe and Logger")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.LoginAttempts <= 0 {
		opts.LoginAttempts = DefaultLoginAttempts
	}
	limits := &Limits{}
	if opts.Recent == nil {
		opts.Recent = NewRecent(DefaultRecent, limits)
	} else {
		opts.Recent.limits = limits
	}
	if opts.Cluster == nil {
		opts.Cluster = NewLocalCluster()
	}
	return &Server{
		opts: opts, log: opts.Logger, started: time.Now().UTC(), limits: limits,
		auth: newAuth(opts.Token, opts.LoginAttempts, limits),
		done: make(chan struct{}), subs: map[chan []byte]struct{}{},
	}
}

// Observe lists a consumed event among the latest.
func (s *Server) Observe(e event.Event) { s.opts.Recent.Observe(e) }

// Limits returns the counts of tripped bounds.
func (s *Server) Limits() *Limits { return s.limits }

// Run samples the figures every interval, announces this node and pushes
// the new state to every live stream, until ctx ends or Close.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		s.Sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
		}
	}
}

// Close ends every live stream and stops Run; idempotent.
func (s *Server) Close() { s.once.Do(func() { close(s.done) }) }

// Sample takes one sample now: it reads the probe, announces this node,
// reads the cluster and pushes the state to the live streams.
func (s *Server) Sample(ctx context.Context) {
	now := time.Now().UTC()
	node := s.node(ctx, now)
	counters := s.opts.Probe.Counters()
	ttl := 3 * s.opts.Interval
	actx, cancel := context.WithTimeout(ctx, s.opts.Interval)
	defer cancel()
	if err := s.opts.Cluster.Announce(actx, node, ttl); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug("status: announce failed", slog.String("error", err.Error()))
	}
	st := State{Node: node, Recent: s.opts.Recent.List(now), Rooms: s.opts.Probe.TopRooms(TopRooms)}
	nodes, err := s.opts.Cluster.Nodes(actx)
	if err != nil {
		st.ClusterError = err.Error()
		nodes = []Node{node}
	}
	st.Nodes = nodes

	s.mu.Lock()
	// A sample closer than half an interval to the last (a page's first
	// request racing Run) refreshes the state but draws no point: its
	// rates would be noise.
	if s.prev == nil || now.Sub(s.prevAt) >= s.opts.Interval/2 {
		if s.prev != nil {
			if p, ok := rates(*s.prev, counters, now.Sub(s.prevAt)); ok {
				p.At = now
				s.history = append(s.history, p)
				if len(s.history) > HistoryLength {
					s.history = append(s.history[:0], s.history[len(s.history)-HistoryLength:]...)
				}
			}
		}
		s.prev, s.prevAt = &counters, now
	}
	st.History = append([]Point(nil), s.history...)
	b, err := json.Marshal(st)
	if err != nil {
		s.mu.Unlock()
		s.log.Error("status: encode state", slog.String("error", err.Error()))
		return
	}
	s.state = b
	for ch := range s.subs {
		select { // keep only the latest state for a slow reader
		case <-ch:
		default:
		}
		ch <- b
	}
	s.mu.Unlock()
}

// node reads the probe and names this node.
func (s *Server) node(ctx context.Context, now time.Time) Node {
	n := s.opts.Probe.Node(ctx)
	n.ID, n.Role, n.Version, n.StartedAt, n.SeenAt = s.opts.NodeID, s.opts.Role, s.opts.Version, s.started, now
	if n.Clients == nil {
		n.Clients = map[string]int{}
	}
	return n
}

// current returns the latest encoded state, sampling once when there is
// none yet.
func (s *Server) current(ctx context.Context) []byte {
	s.mu.Lock()
	b := s.state
	s.mu.Unlock()
	if b == nil {
		s.Sample(ctx)
		s.mu.Lock()
		b = s.state
		s.mu.Unlock()
	}
	return b
}

// subscribe registers a live stream; false when MaxStreams are open.
func (s *Server) subscribe() (chan []byte, bool) {
	if s.streams.Add(1) > int64(s.opts.MaxStreams) {
		s.streams.Add(-1)
		s.limits.Streams.Add(1)
		return nil, false
	}
	ch := make(chan []byte, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, true
}

func (s *Server) unsubscribe(ch chan []byte) {
	s.mu.Lock()
	delete(s.subs, ch)
	s.mu.Unlock()
	s.streams.Add(-1)
}

// rates turns two samples into per-second rates; false when no time
// passed or a counter went back (a restart).
func rates(a, b Counters, dt time.Duration) (Point, bool) {
	sec := dt.Seconds()
	if sec <= 0 || b.Emitted < a.Emitted || b.Deliveries < a.Deliveries || b.Publishes < a.Publishes {
		return Point{}, false
	}
	p := Point{
		Emitted:    (b.Emitted - a.Emitted) / sec,
		Deliveries: (b.Deliveries - a.Deliveries) / sec,
		Webhooks:   map[string]float64{},
	}
	for _, class := range []string{"2xx", "4xx", "5xx"} {
		p.Webhooks[class] = max(0, b.Webhooks[class]-a.Webhooks[class]) / sec
	}
	if n := b.Publishes - a.Publishes; n > 0 {
		p.PublishMs = (b.PublishSeconds - a.PublishSeconds) / n * 1000
	}
	return p, true
}

// sortNodes orders nodes by id.
func sortNodes(nodes []Node) {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
}
