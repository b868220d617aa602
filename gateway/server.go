package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/meshgen/gateway/auth"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/metrics"
	"github.com/meshgen/gateway/ratelog"
	"github.com/meshgen/gateway/recovery"
	"github.com/meshgen/gateway/rooms"
)

// Path is where Socket.IO is served, as socket.io-client expects it.
const Path = "/socket.io/"

// Defaults of Options, Socket.IO's own.
const (
	DefaultMaxMessageBytes = 1_000_000
	DefaultPingInterval    = 25 * time.Second
	DefaultPingTimeout     = 20 * time.Second
	DefaultConnectTimeout  = 45 * time.Second
)

// handlerTimeout bounds the work of one client event (a Redis round trip
// for log follows at most).
const handlerTimeout = 3 * time.Second

// Sentinel errors of the handshake.
var (
	// ErrOriginNotAllowed rejects a handshake from an origin outside the
	// CORS list. Its text is what the engine's 403 answer carries: no
	// detail.
	ErrOriginNotAllowed = errors.New("Forbidden")
	// ErrDraining rejects new handshakes while the node drains.
	ErrDraining = errors.New("Draining")
)

// Options configures a Server.
type Options struct {
	// AllowedOrigins are the CORS origins of the handshake; "*" allows any,
	// empty allows only same-origin browsers (and every non-browser client).
	AllowedOrigins []string
	// MaxMessageBytes is the largest message a client may send. Zero means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// PingInterval, PingTimeout and ConnectTimeout are the Engine.IO and
	// Socket.IO timers. Zero means DefaultPingInterval, DefaultPingTimeout
	// and DefaultConnectTimeout.
	PingInterval   time.Duration
	PingTimeout    time.Duration
	ConnectTimeout time.Duration
	// Protocol answers client events. Required.
	Protocol *rooms.Protocol
	// Auth authenticates every CONNECT and authorizes every join. Nil
	// means auth.Open (everyone may join everything).
	Auth auth.Policy
	// AuthExtract says where credentials may come from besides the CONNECT
	// auth payload and the Authorization header.
	AuthExtract auth.ExtractOptions
	// Limits bounds handshakes and what each client may take.
	Limits Limits
	// Logger is required.
	Logger *slog.Logger
	// LogRate and LogBurst bound the log lines clients can cause (refused
	// handshakes, joins, connects, events); zero means ratelog's defaults.
	LogRate  float64
	LogBurst int
	// Metrics, when set, counts client events, emits and deliveries.
	Metrics *metrics.Metrics
	// Recovery turns on connection state recovery (recovery.go) when its
	// Window is positive.
	Recovery Recovery
	// BatchState, when set, turns on state on join: a client that joins a
	// batch room gets the batch's current batch_status right after
	// joined_batch, the last one this node delivered or, when it has none,
	// the counts this function reads (the registry's BatchStatus).
	BatchState func(ctx context.Context, batch string) (counts event.BatchCounts, position string, found bool, err error)
	// Delivered is the bus consumer's position (bus.Bus.Delivered): a
	// recovery or a batch state waits until the node has delivered what
	// it replays or reports. Nil means no wait (tests without a bus).
	Delivered func() string
	// BacklogBytes bounds the recent events kept in memory for recovery
	// and state on join. Zero means recovery.DefaultBacklogBytes.
	BacklogBytes int64

	// disableGate turns the handshake gate off; only tests use it, to show
	// that the race it closes is real.
	disableGate bool
	// wsWriteTimeout replaces writeTimeout; only tests use it.
	wsWriteTimeout time.Duration
	// libraryWebSocket serves WebSocket with the library's own transport and
	// room adapter; only benchmarks use it, as the reference run.
	libraryWebSocket bool
	// libraryEngine keeps WebSocket-first sessions on the library's engine
	// socket (with the gateway's transport), as before the lean sessions;
	// only benchmarks use it, as the reference run.
	libraryEngine bool
}

// Server is the Socket.IO side of the gateway.
type Server struct {
	opts    Options
	log     *slog.Logger
	io      *socket.Server
	eio     engine.Server
	gate    *handshakeGate
	guard   *guard
	quiet   *ratelog.Logger // lines a client can cause, rate-limited
	clients atomic.Int64
	// pollingClients are the clients counted in clients whose connection
	// is on long-polling (whilePolling): the status page and the gauges
	// read both without walking every socket.
	pollingClients atomic.Int64
	draining       atomic.Bool

	closeOnce sync.Once
	closed    chan struct{} // closed once the library's Close returned

	// deliverMu orders deliveries against the joins that must not miss or
	// repeat one: a recovery's last replayed events and its joins, a batch
	// join and its state.
	deliverMu sync.Mutex
	// backlog keeps recent events for recovery and state on join; nil
	// when both are off.
	backlog *recovery.Backlog
	// rec is connection state recovery; nil when off.
	rec           *recoverer
	stopHeartbeat context.CancelFunc
}

// New builds the Socket.IO server. It panics when Protocol or Logger is
// missing (a wiring error).
func New(opts Options) *Server {
	if opts.Protocol == nil || opts.Logger == nil {
		panic("gateway: Options needs Protocol and Logger")
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = DefaultPingTimeout
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.Auth == nil {
		opts.Auth = auth.Open{}
	}
	if opts.Limits.ClientEventRate <= 0 {
		opts.Limits.ClientEventRate = DefaultClientEventRate
	}
	if opts.Limits.MaxPollingBuffer <= 0 {
		opts.Limits.MaxPollingBuffer = DefaultMaxPollingBuffer
	}
	s := &Server{opts: opts, log: opts.Logger, gate: newHandshakeGate(opts.ConnectTimeout), closed: make(chan struct{})}
	s.quiet = ratelog.New(opts.Logger, opts.LogRate, opts.LogBurst, opts.Metrics.LogSuppressed)
	s.guard = newGuard(s)

	so := socket.DefaultServerOptions()
	so.SetPath(strings.TrimSuffix(Path, "/"))
	so.SetServeClient(false)
	so.SetPingInterval(opts.PingInterval)
	so.SetPingTimeout(opts.PingTimeout)
	so.SetConnectTimeout(opts.ConnectTimeout)
	// Every WebSocket read gets a deadline of a heartbeat round and a
	// margin: a connection whose peer is gone is dropped even when its
	// heartbeat timer is late, and the HTTP server's read deadline set
	// before the upgrade never outlives it.
	so.SetIdleTimeout(opts.PingInterval + opts.PingTimeout + 5*time.Second)
	so.SetMaxHttpBufferSize(opts.MaxMessageBytes)
	so.SetAllowEIO3(false)
	so.SetCors(s.cors())
	so.SetAllowRequest(s.allowRequest)
	// Long-polling as the library ships it; WebSocket through the gateway's
	// transport (wstransport.go), and broadcasts framed once and queued on
	// it directly (fanout.go).
	if opts.Recovery.Window > 0 && opts.libraryWebSocket {
		panic("gateway: recovery needs the gateway's room adapter")
	}
	if opts.Recovery.Window > 0 || opts.BatchState != nil {
		age := time.Duration(0)
		if opts.Recovery.Window > 0 {
			age = BacklogAge(opts.Recovery.Window)
		}
		s.backlog = recovery.NewBacklog(opts.BacklogBytes, age)
	}
	var restore func(pid, offset string) (*socket.Session, error)
	if opts.Recovery.Window > 0 {
		if opts.Recovery.Store == nil {
			panic("gateway: Recovery needs a Store")
		}
		// A replay must fit what one client may have queued, with room
		// for the events that go on arriving.
		s.rec = newRecoverer(s, opts.Recovery, s.backlog, opts.Limits.MaxPollingBuffer/2)
		restore = s.rec.restore
		csr := &socket.ConnectionStateRecovery{}
		csr.SetMaxDisconnectionDuration(opts.Recovery.Window.Milliseconds())
		// Authentication runs for a recovered session as for a new one.
		csr.SetSkipMiddlewares(false)
		so.SetConnectionStateRecovery(csr)
		var ctx context.Context
		ctx, s.stopHeartbeat = context.WithCancel(context.Background())
		go s.rec.heartbeat(ctx)
	}
	if !opts.libraryWebSocket {
		so.SetTransports(types.NewSet[transports.TransportCtor](&transports.PollingBuilder{}, &wsBuilder{pingDelay: pingDelayFor(opts.PingTimeout), writeTimeout: opts.wsWriteTimeout, onLimit: s.slowClient}))
		so.SetAdapter(fanoutAdapterBuilder{metrics: opts.Metrics, restore: restore})
	}

	s.io = socket.NewServer(nil, so)
	if opts.libraryWebSocket || opts.libraryEngine {
		s.eio = engine.NewServer(so)
	} else {
		// WebSocket-first sessions are the gateway's lean sessions
		// (leanengine.go); the rest stays the library's.
		s.eio = newLeanEngine(&engineOptions{lib: so, pingInterval: opts.PingInterval,
			pingTimeout: opts.PingTimeout, maxPayload: opts.MaxMessageBytes,
			writeTimeout: opts.wsWriteTimeout, onLimit: s.slowClient})
	}
	// The gate's listener must see each connection before Socket.IO does.
	if !opts.disableGate {
		_ = s.eio.On("connection", s.gate.attach)
	}
	_ = s.eio.On("connection", s.bound)
	s.io.Bind(s.eio)
	s.io.Use(s.authenticate)
	_ = s.io.On("connection", s.onConnection)
	if opts.Metrics != nil {
		s.registerGauges(opts.Metrics)
	}
	return s
}

// Handler serves Path (HTTP long-polling and the WebSocket upgrade), behind
// the handshake and request bounds of Options.Limits.
func (s *Server) Handler() http.Handler { return s.guard }

// Clients returns the number of connected clients.
func (s *Server) Clients() int64 { return s.clients.Load() }

// Deliver emits bus events to their rooms, in order: each payload arrives
// encoded once by its producer and is embedded as is; the room adapter
// (fanout.go) frames each packet once, queues it on every member and
// counts the deliveries. With recovery on, the event's id follows the
// payload as the client's offset.
//
// Events handed over together (one read of the bus) are written together:
// a connection gets all the frames queued for it in one write (sendmsg)
// instead of one write per event, the syscall being most of a small
// delivery's cost. No frame waits more than coalesceWindow (plus the
// queueing of the event that crossed it) for its write to start; a single
// event is written at once.
func (s *Server) Deliver(events ...event.Event) {
	s.deliverMu.Lock()
	fan, _ := s.io.Sockets().Adapter().(*fanoutAdapter) // nil with the library's adapter
	var w writeBatch
	var since time.Time
	for i := range events {
		e := &events[i]
		if s.backlog != nil {
			s.backlog.Append(*e)
		}
		data := make([]any, 2, 3)
		data[0], data[1] = e.Name, e.Payload
		if s.rec != nil && e.ID != "" {
			data = append(data, e.ID)
		}
		if fan == nil {
			_ = s.io.To(toRooms(e.Rooms)...).Emit(e.Name, data[1:]...)
			continue
		}
		if socket.SOCKET_RESERVED_EVENTS.Has(e.Name) {
			continue // what Emit refuses
		}
		if !w.pending() {
			since = time.Now() // the batch's first frame is queued from here
		}
		p := &parser.Packet{Type: parser.EVENT, Data: data}
		if len(e.Rooms) == 1 {
			fan.broadcastRoom(p, socket.Room(e.Rooms[0]), &w)
		} else {
			fan.broadcast(p, &socket.BroadcastOptions{Rooms: types.NewSet(toRooms(e.Rooms)...)}, &w)
		}
		if i < len(events)-1 && w.pending() && time.Since(since) >= coalesceWindow {
			w.flush()
		}
	}
	w.flush()
	s.deliverMu.Unlock()
	now := time.Now()
	for i := range events {
		s.opts.Metrics.Emitted(events[i].Name)
		s.opts.Metrics.Consumed(events[i], now)
	}
}

// coalesceWindow bounds how long Deliver keeps a batch's frames queued
// before it writes them.
var coalesceWindow = time.Millisecond // a variable for the tests

// registerGauges exposes the connection and room gauges.
func (s *Server) registerGauges(m *metrics.Metrics) {
	m.GaugeVec("gateway_socket_clients", "Connected Socket.IO clients by transport.", "transport", func() map[string]float64 {
		out := map[string]float64{}
		for t, n := range s.ClientsByTransport() {
			out[t] = float64(n)
		}
		return out
	})
	m.CounterVec("gateway_ws_write_calls_total", "Write system calls to WebSocket clients, by mode: nonblocking (one sendmsg of every frame queued for the client), blocking (the rest, once the client's socket buffer was full). Deliveries divided by these is the frames per write.", "mode", func() map[string]float64 {
		return map[string]float64{"nonblocking": float64(wsWriteCalls.nonblocking.Load()), "blocking": float64(wsWriteCalls.blocking.Load())}
	})
	m.Gauge("gateway_socket_rooms", "Rooms with at least one client on this node (socket-id rooms excluded).", func() float64 {
		n, _ := s.Rooms(0)
		return float64(n)
	})
}

// ClientsByTransport counts the connected clients by transport name
// (websocket, polling; both always present), from counters kept on
// connect, upgrade and disconnect.
func (s *Server) ClientsByTransport() map[string]int {
	polling := max(s.pollingClients.Load(), 0)
	return map[string]int{"websocket": int(max(s.clients.Load()-polling, 0)), "polling": int(polling)}
}

// RoomSize is one room of this node and its members here.
type RoomSize struct {
	Name    string
	Members int
}

// Rooms counts the rooms with a client on this node (socket-id rooms
// excluded) and returns the top biggest, biggest first (ties by name).
func (s *Server) Rooms(top int) (int, []RoomSize) {
	n := 0
	var sizes []RoomSize
	count := func(r socket.Room, members *types.Set[socket.SocketId]) bool {
		n++
		if top > 0 {
			sizes = append(sizes, RoomSize{Name: string(r), Members: members.Len()})
		}
		return true
	}
	if a, ok := s.io.Sockets().Adapter().(*fanoutAdapter); ok {
		a.namedRooms(count) // without walking every socket's own room
	} else {
		s.io.Sockets().Adapter().Rooms().Range(func(r socket.Room, members *types.Set[socket.SocketId]) bool {
			if !members.Has(socket.SocketId(r)) {
				return count(r, members)
			}
			return true
		})
	}
	slices.SortFunc(sizes, func(a, b RoomSize) int {
		if a.Members != b.Members {
			return b.Members - a.Members
		}
		return strings.Compare(a.Name, b.Name)
	})
	return n, sizes[:min(top, len(sizes))]
}

// Close disconnects every client at the transport level (socket.io-client
// reconnects by itself) and stops the engine, waiting until done or ctx
// ends. It is idempotent: a later call waits for the same close.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if s.stopHeartbeat != nil {
			s.stopHeartbeat()
		}
		go func() {
			s.io.Close(nil)
			close(s.closed)
		}()
	})
	select {
	case <-s.closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gateway: close: %w", ctx.Err())
	}
}

// onConnection wires one new socket to the protocol.
func (s *Server) onConnection(args ...any) {
	sock, ok := args[0].(*socket.Socket)
	if !ok {
		return
	}
	m := member{s: s, sock: sock, p: principalOf(sock), join: &joinMark{}}
	if s.rec != nil {
		m.st = s.rec.connected(sock, m)
	}
	stopExpiry := s.expireAt(sock, m.p)
	budget := newEventBudget(s.opts.Limits.ClientEventRate, cmp.Or(s.opts.Limits.ClientEventAbuseWindow, DefaultClientEventAbuseWindow))
	s.clients.Add(1)
	leftPolling, _ := whilePolling(sock.Conn(), &s.pollingClients)
	_ = sock.OnAny(func(args ...any) { s.onEvent(sock, m, budget, args) })
	_ = sock.On("disconnect", func(args ...any) {
		stopExpiry()
		leftPolling()
		s.clients.Add(-1)
		reason := "unknown"
		if len(args) > 0 {
			if r, ok := args[0].(string); ok {
				reason = r
			}
		}
		s.opts.Metrics.Disconnected(reason)
		if s.rec != nil {
			s.rec.disconnected(sock, reason)
		}
		s.log.Debug("client disconnected", slog.String("sid", string(sock.Id())), slog.String("user", m.p.User), slog.String("reason", reason))
		ctx, cancel := context.WithTimeout(context.Background(), handlerTimeout)
		defer cancel()
		s.opts.Protocol.Disconnected(ctx, m)
	})
	// The namespace is registered now: release what the gate held.
	if ls, ok := sock.Conn().(*leanSession); ok {
		ls.openGate() // a lean session keeps its gate itself (gate.go)
	} else {
		s.gate.open(sock.Conn().Id())
	}
}

// onEvent answers one client event: args are the event name, its arguments
// and, last, the acknowledgement callback when the client asked for one.
func (s *Server) onEvent(sock *socket.Socket, m member, budget *eventBudget, args []any) {
	if len(args) == 0 {
		return
	}
	event, _ := args[0].(string)
	args = args[1:]
	var ack socket.Ack
	if n := len(args); n > 0 {
		if a, ok := args[n-1].(socket.Ack); ok {
			ack = a
			args = args[:n-1]
		}
	}
	if ok, abuse := budget.take(time.Now()); !ok {
		s.opts.Metrics.LimitHit(LimitClientEventRate)
		if abuse {
			s.opts.Metrics.LimitHit(LimitClientAbuse)
			s.quiet.Log(context.Background(), slog.LevelWarn, "client over its event rate for too long: disconnected", slog.String("sid", m.ID()), slog.String("user", m.p.User))
			sock.Disconnect(true)
			return
		}
		reply := map[string]any{"message": rateLimitMessage}
		_ = sock.Emit(rooms.ReplyError, reply)
		if ack != nil {
			ack([]any{reply}, nil)
		}
		return
	}
	if !rooms.Handles(event) {
		s.opts.Metrics.ClientEvent("other")
		s.log.Debug("unknown client event", slog.String("event", event), slog.String("sid", m.ID()))
		if ack != nil {
			ack([]any{map[string]any{"message": "Unknown event: " + event}}, nil)
		}
		return
	}
	s.opts.Metrics.ClientEvent(event)
	ctx, cancel := context.WithTimeout(context.Background(), handlerTimeout)
	defer cancel()
	reply := s.opts.Protocol.Handle(ctx, m, event, args)
	if reply.Event == "" {
		return
	}
	if reply.Event == rooms.ReplyError {
		s.log.Debug("client event rejected", slog.String("event", event), slog.String("sid", m.ID()), slog.String("user", m.p.User), slog.Any("reason", reply.Payload["message"]))
	}
	_ = sock.Emit(reply.Event, reply.Payload)
	if ack != nil {
		ack([]any{reply.Payload}, nil)
	}
	if reply.Event == rooms.ReplyJoinedBatch && s.opts.BatchState != nil {
		if batch, err := rooms.ParseID(reply.Payload["batch_id"], rooms.MaxIDLengthLimit); err == nil && m.join.room == rooms.BatchRoom(batch) {
			s.sendBatchState(ctx, sock, batch, m.join.at)
		}
	}
}

// cors returns the engine's CORS options (polling requests and the
// WebSocket origin check).
func (s *Server) cors() *types.Cors {
	origins := s.opts.AllowedOrigins
	if len(origins) == 0 {
		return nil
	}
	c := &types.Cors{Credentials: true, Methods: []string{http.MethodGet, http.MethodPost, http.MethodOptions}}
	if slices.Contains(origins, "*") {
		c.Origin = true
	} else {
		c.Origin = slices.Clone(origins)
	}
	return c
}

// allowRequest refuses a handshake whose Origin is not one of the
// configured origins. It never compares with the request's own Host: an
// attacker's page on a host name that resolves to the gateway (DNS
// rebinding) sends Origin and Host both its own. Clients without an Origin
// header (servers, workers, tests) pass: browsers always send one.
func (s *Server) allowRequest(ctx *types.HttpContext) error {
	if s.draining.Load() {
		return ErrDraining
	}
	origin := ctx.Headers().Peek("Origin")
	if origin == "" || originAllowed(origin, s.opts.AllowedOrigins) {
		return nil
	}
	s.quiet.Log(context.Background(), slog.LevelInfo, "handshake refused", slog.String("origin", origin))
	return ErrOriginNotAllowed
}

// originAllowed reports whether origin is one of the allowed origins.
func originAllowed(origin string, allowed []string) bool {
	return slices.Contains(allowed, "*") || slices.Contains(allowed, origin)
}
