package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgen/gateway/clientaddr"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/time/rate"
)

// Limits bounds what clients may take of a node. A zero field disables its
// bound unless noted.
type Limits struct {
	// MaxClients is the most Engine.IO sessions; handshakes above it
	// answer 503.
	MaxClients int
	// MaxPollingSessions is the most sessions on long-polling (not
	// upgraded); polling handshakes above it answer 503.
	MaxPollingSessions int
	// HandshakeRate is the handshakes per second of the node, in bursts of
	// twice as many; above it handshakes answer 503.
	HandshakeRate float64
	// HandshakeRatePerIP is the same for one client address (an IPv6
	// client: its /64).
	HandshakeRatePerIP float64
	// ClientIP returns a request's client address. Nil means the
	// connection's address.
	ClientIP func(*http.Request) string
	// ClientEventRate is the events per second one client may send, in
	// bursts of twice as many: above it an event answers error "Rate limit
	// exceeded", and a client still over it after ClientEventAbuseWindow
	// is disconnected. Zero means DefaultClientEventRate.
	ClientEventRate float64
	// ClientEventAbuseWindow is how long a client may go on being refused
	// for its rate (without a pause of eventPause) before it is
	// disconnected. Zero means DefaultClientEventAbuseWindow.
	ClientEventAbuseWindow time.Duration
	// MaxPollingBuffer is the bytes queued for one long-polling client
	// between two polls; past it the client is disconnected. Zero means
	// DefaultMaxPollingBuffer.
	MaxPollingBuffer int64
}

// Defaults of Limits.
const (
	DefaultClientEventRate  = 20
	DefaultMaxPollingBuffer = 8 << 20
	// DefaultClientEventAbuseWindow: a client refused for its rate this
	// long without a pause is disconnected.
	DefaultClientEventAbuseWindow = 10 * time.Second
	// maxTrackedIPs bounds the per-address handshake limiters; past it,
	// addresses idle for a minute are forgotten (and, if none is, the
	// per-address bound is skipped for new addresses: the node's bound
	// still holds).
	maxTrackedIPs = 100_000
	// rateLimitMessage answers an event over the client's rate.
	rateLimitMessage = "Rate limit exceeded"
)

// Limit names, the label of gateway_limit_hits_total.
const (
	LimitMaxClients         = "max_clients"
	LimitMaxPolling         = "max_polling_sessions"
	LimitHandshakeRate      = "handshake_rate"
	LimitHandshakeRatePerIP = "handshake_rate_per_ip"
	LimitClientEventRate    = "client_event_rate"
	LimitClientAbuse        = "client_event_rate_disconnect"
	LimitPollingBuffer      = "polling_buffer"
	LimitPollingBody        = "polling_body"
	LimitBinaryPacket       = "binary_packet"
	// LimitWSBuffer: a WebSocket client let more than 8 MiB wait unread
	// (maxPendingBytes) and was disconnected.
	LimitWSBuffer = "ws_buffer"
	// LimitWSWriteTimeout: one write to a WebSocket client blocked for
	// writeTimeout (10 s) and the client was disconnected.
	LimitWSWriteTimeout = "ws_write_timeout"
)

// guard applies the handshake and request bounds in front of the engine.
type guard struct {
	s       *Server
	node    *rate.Limiter // nil when off
	perIP   rate.Limit
	polling atomic.Int64 // sessions on long-polling now

	mu  sync.Mutex
	ips map[string]*addrLimiter
}

type addrLimiter struct {
	lim  *rate.Limiter
	seen time.Time
}

func newGuard(s *Server) *guard {
	g := &guard{s: s, perIP: rate.Limit(s.opts.Limits.HandshakeRatePerIP), ips: make(map[string]*addrLimiter)}
	if r := s.opts.Limits.HandshakeRate; r > 0 {
		g.node = rate.NewLimiter(rate.Limit(r), max(1, int(2*r)))
	}
	return g
}

// ServeHTTP bounds what reaches the engine: a handshake over a limit
// answers 503 with Retry-After, a polling POST body over the message size
// 413, before the engine reads anything.
func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("sid") == "" {
		if limit := g.admit(r, q.Get("transport")); limit != "" {
			g.s.opts.Metrics.LimitHit(limit)
			g.s.quiet.Log(r.Context(), slog.LevelInfo, "handshake refused", slog.String("limit", limit), slog.String("client", g.clientIP(r)))
			w.Header().Set("Retry-After", "1")
			busy(w, http.StatusServiceUnavailable, "Service Unavailable")
			return
		}
	} else if r.Method == http.MethodPost {
		if !g.boundBody(w, r) {
			g.s.opts.Metrics.LimitHit(LimitPollingBody)
			return
		}
		w = &closeOnError{ResponseWriter: w}
	}
	g.s.eio.ServeHTTP(w, r)
}

// closeOnError closes the connection of a polling POST the engine refuses
// (an unknown session, a bad packet) without reading the body it left:
// net/http would otherwise read up to 256 KiB of it first, as slowly as
// the client sends it.
type closeOnError struct {
	http.ResponseWriter
	wrote bool
}

// WriteHeader implements http.ResponseWriter.
func (w *closeOnError) WriteHeader(code int) {
	if !w.wrote && code >= http.StatusBadRequest {
		_ = http.NewResponseController(w.ResponseWriter).SetReadDeadline(time.Now())
		w.Header().Set("Connection", "close")
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *closeOnError) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *closeOnError) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// admit checks a handshake against the node's bounds; it returns the name
// of the limit it is over, or "".
func (g *guard) admit(r *http.Request, transport string) string {
	l := g.s.opts.Limits
	switch {
	case l.MaxClients > 0 && int(g.s.eio.ClientsCount()) >= l.MaxClients:
		return LimitMaxClients
	case transport == "polling" && l.MaxPollingSessions > 0 && int(g.polling.Load()) >= l.MaxPollingSessions:
		return LimitMaxPolling
	case g.node != nil && !g.node.Allow():
		return LimitHandshakeRate
	case g.perIP > 0 && !g.allowAddr(clientaddr.Key(g.clientIP(r))):
		return LimitHandshakeRatePerIP
	}
	return ""
}

// allowAddr takes a token of the limiter of a client key (an IPv4
// address, an IPv6 /64: clientaddr.Key).
func (g *guard) allowAddr(ip string) bool {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.ips[ip]
	if a == nil {
		if len(g.ips) >= maxTrackedIPs {
			for k, v := range g.ips {
				if now.Sub(v.seen) > time.Minute {
					delete(g.ips, k)
				}
			}
			if len(g.ips) >= maxTrackedIPs {
				return true
			}
		}
		a = &addrLimiter{lim: rate.NewLimiter(g.perIP, max(1, int(2*g.perIP)))}
		g.ips[ip] = a
	}
	a.seen = now
	return a.lim.AllowN(now, 1)
}

func (g *guard) clientIP(r *http.Request) string {
	if f := g.s.opts.Limits.ClientIP; f != nil {
		return f(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// boundBody refuses a polling POST larger than the message size with 413
// (the library answers a chunked one past it otherwise). It reads a body
// of unknown length up front, at most the limit plus one byte.
func (g *guard) boundBody(w http.ResponseWriter, r *http.Request) bool {
	limit := g.s.opts.MaxMessageBytes
	if r.ContentLength > limit {
		busy(w, http.StatusRequestEntityTooLarge, "Payload Too Large")
		return false
	}
	if r.ContentLength >= 0 {
		return true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		busy(w, http.StatusBadRequest, "Bad Request")
		return false
	}
	if int64(len(body)) > limit {
		busy(w, http.StatusRequestEntityTooLarge, "Payload Too Large")
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return true
}

// busy answers an Engine.IO-shaped error without detail and closes the
// connection: the read deadline set in the past stops the server from
// reading what is left of the body first (it would, up to 256 KiB, as
// slowly as the client likes, Connection: close notwithstanding).
func busy(w http.ResponseWriter, code int, message string) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"code":` + strconv.Itoa(code) + `,"message":"` + message + `"}`))
}

// eventBudget is one client's token bucket for the events it sends.
type eventBudget struct {
	lim         *rate.Limiter
	window      time.Duration // over the rate this long without a pause: abuse
	overSince   time.Time     // first refusal of the current run; zero when not over
	lastRefused time.Time     // the latest refusal
}

// eventPause is how long without a refusal ends a run over the rate. The
// bucket grants a token now and then even to a flood (one every 50 ms at
// 20/s), so a granted event does not end the run: only a client that
// stays under its rate for this long does.
const eventPause = time.Second

func newEventBudget(perSecond float64, window time.Duration) *eventBudget {
	return &eventBudget{lim: rate.NewLimiter(rate.Limit(perSecond), max(1, int(2*perSecond))), window: window}
}

// take reports whether the client may send one more event, and whether it
// has been over its rate for the abuse window without a pause of
// eventPause. Called on the socket's event goroutine, one event at a time.
func (b *eventBudget) take(now time.Time) (ok, abuse bool) {
	paused := b.lastRefused.IsZero() || now.Sub(b.lastRefused) >= eventPause
	if b.lim.AllowN(now, 1) {
		if paused {
			b.overSince = time.Time{}
		}
		return true, false
	}
	if paused || b.overSince.IsZero() {
		b.overSince = now
	}
	b.lastRefused = now
	return false, now.Sub(b.overSince) >= b.window
}

// bound is an engine "connection" listener: it counts the sessions on
// long-polling, caps what one polling client may have queued between two
// polls, and refuses binary Socket.IO packets (the protocol has none; a
// client holding back attachments would hold memory).
func (s *Server) bound(args ...any) {
	conn, ok := args[0].(engine.Socket)
	if !ok {
		return
	}
	_ = conn.On("packet", func(args ...any) {
		p, _ := args[0].(*packet.Packet)
		if p != nil && p.Type == packet.MESSAGE && isBinaryPacket(p) {
			s.opts.Metrics.LimitHit(LimitBinaryPacket)
			s.quiet.Log(context.Background(), slog.LevelInfo, "binary packet from a client: closed", slog.String("sid", conn.Id()))
			go conn.Close(false)
		}
	})
	left, polling := whilePolling(conn, &s.guard.polling)
	if !polling {
		return
	}
	_ = conn.Once("close", func(...any) { left() })

	var queued atomic.Int64
	var cut atomic.Bool
	limit := s.opts.Limits.MaxPollingBuffer
	_ = conn.On("packetCreate", func(args ...any) {
		p, _ := args[0].(*packet.Packet)
		if p == nil {
			return
		}
		if queued.Add(packetSize(p)) > limit && cut.CompareAndSwap(false, true) {
			s.opts.Metrics.LimitHit(LimitPollingBuffer)
			s.quiet.Log(context.Background(), slog.LevelInfo, "long-polling client polls too slowly: disconnected", slog.String("sid", conn.Id()), slog.Int64("limit_bytes", limit))
			// Not from inside the engine's send path; discarding what is
			// queued (without discard the engine waits for a poll that
			// does not come to flush it first).
			go conn.Close(true)
		}
	})
	// A flush hands the whole buffer to the transport.
	_ = conn.On("flush", func(...any) { queued.Store(0) })
}

// isBinaryPacket reports whether an Engine.IO message carries a Socket.IO
// BINARY_EVENT or BINARY_ACK, or is a binary frame itself.
func isBinaryPacket(p *packet.Packet) bool {
	if _, text := p.Data.(*types.StringBuffer); !text {
		return p.Data != nil
	}
	b, ok := p.Data.(interface{ Bytes() []byte })
	if !ok {
		return false
	}
	data := b.Bytes()
	return len(data) > 0 && (data[0] == '5' || data[0] == '6')
}

// packetSize is the size of a packet's data.
func packetSize(p *packet.Packet) int64 {
	if l, ok := p.Data.(interface{ Len() int }); ok {
		return int64(l.Len())
	}
	return 1
}

// slowClient counts a WebSocket client disconnected because it did not
// read (limit is LimitWSBuffer or LimitWSWriteTimeout); its room goes on.
func (s *Server) slowClient(limit string) {
	s.opts.Metrics.LimitHit(limit)
	s.quiet.Log(context.Background(), slog.LevelInfo, "websocket client reads too slowly: disconnected", slog.String("limit", limit))
}

// whilePolling counts conn in n while it is on long-polling: it adds one
// now if it is, and takes it back once, at the upgrade or at the first
// call of left, whichever comes first (a connection only moves from
// polling to websocket). polling reports whether conn was counted.
func whilePolling(conn engine.Socket, n *atomic.Int64) (left func(), polling bool) {
	onPolling := func() bool { t := conn.Transport(); return t != nil && t.Name() == transports.POLLING }
	if !onPolling() {
		return func() {}, false
	}
	n.Add(1)
	var once sync.Once
	left = func() { once.Do(func() { n.Add(-1) }) }
	_ = conn.Once("upgrade", func(...any) { left() })
	if !onPolling() {
		left() // upgraded before the listener was there
	}
	return left, true
}
