package gateway

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// leanEngine is the library's Engine.IO server with one change: a session
// that starts on WebSocket (no sid, EIO=4) is a leanSession of the gateway
// (leansession.go) instead of the library's engine socket and transport.
// Everything else, long-polling, the polling -> WebSocket upgrade, the
// middlewares and the request checks, is the library's.
//
// The seam is the engine's own prototype dispatch: the library's
// server calls Proto().Handshake for every new session, and leanEngine is
// the prototype.
type leanEngine struct {
	engine.Server

	pingInterval time.Duration
	pingTimeout  time.Duration
	maxPayload   int64
	open         []byte       // the OPEN packet's JSON minus the sid
	poller       *poller      // nil: a reader goroutine per session
	lean         atomic.Int64 // lean sessions open (the library counts its own)
	writeTimeout time.Duration
	onLimit      func(limit string)
}

// newLeanEngine builds the engine with opts (the Socket.IO server's
// options, as engine.NewServer takes them).
func newLeanEngine(opts *engineOptions) *leanEngine {
	e := &leanEngine{Server: engine.MakeServer(), pingInterval: opts.pingInterval,
		pingTimeout: opts.pingTimeout, maxPayload: opts.maxPayload,
		writeTimeout: opts.writeTimeout, onLimit: opts.onLimit}
	e.Prototype(e)
	e.Construct(opts.lib)
	e.open, _ = json.Marshal(map[string]any{
		"upgrades":     []string{},
		"pingInterval": opts.pingInterval.Milliseconds(),
		"pingTimeout":  opts.pingTimeout.Milliseconds(),
		"maxPayload":   opts.maxPayload,
	})
	e.poller = newPoller()
	return e
}

// engineOptions are what leanEngine needs besides the library's options.
type engineOptions struct {
	lib          any // the library's server options
	pingInterval time.Duration
	pingTimeout  time.Duration
	maxPayload   int64
	// writeTimeout and onLimit go to each session's frameWriter.
	writeTimeout time.Duration
	onLimit      func(limit string)
}

// ClientsCount counts the library's sessions and the lean ones.
func (e *leanEngine) ClientsCount() uint64 {
	return e.Server.ClientsCount() + uint64(e.lean.Load())
}

// Handshake opens a lean session for a WebSocket-first EIO=4 client and
// leaves every other handshake to the library.
func (e *leanEngine) Handshake(name string, ctx *types.HttpContext) (*types.CodeMessage, transports.Transport) {
	// A lean session speaks no extension: with permessage-deflate
	// configured (the gateway does not), the library's path negotiates it.
	if name != transports.WEBSOCKET || ctx.Websocket == nil || ctx.Websocket.Conn == nil ||
		ctx.Query().Peek("EIO") != "4" || e.Opts().PerMessageDeflate() != nil {
		return e.Server.Handshake(name, ctx)
	}
	s := e.newSession(ctx)
	return nil, &s.t
}

// newSession starts a lean session on the upgraded connection of ctx. The
// library's gorilla connection, the HttpContext and net/http's response
// are not kept: only the net.Conn and a copy of what the Socket.IO layer
// reads of the request (upgradeRequest).
func (e *leanEngine) newSession(ctx *types.HttpContext) *leanSession {
	conn := ctx.Websocket.NetConn()
	s := &leanSession{engine: e, id: e.Proto().GenerateId(ctx),
		remote: conn.RemoteAddr().String(), req: strippedRequest(ctx.Request())}
	s.t.s = s
	s.fw.init(conn)
	s.fw.closeConn = s.closeConn
	s.fw.failed = s.writeFailed
	s.fw.writeTimeout, s.fw.onLimit = e.writeTimeout, e.onLimit
	s.state.Store(stateOpen)

	e.Clients().Store(s.id, s)
	e.lean.Add(1)
	_ = s.Once("close", func(...any) {
		if e.Clients().CompareAndDelete(s.id, s) {
			e.lean.Add(-1)
		}
	})
	// The OPEN packet after the registration: a client that has it is
	// counted (max-clients).
	open := make([]byte, 0, len(e.open)+len(s.id)+24)
	open = append(open, '0', '{', '"', 's', 'i', 'd', '"', ':')
	open, _ = appendJSONString(open, s.id)
	open = append(open, ',')
	open = append(open, e.open[1:]...)
	s.fw.send(appendFrame(nil, opText, open))

	// Listeners (the gate, the limits, the Socket.IO client) attach here,
	// before anything is read.
	e.Emit("connection", s)
	s.startHeartbeat()
	s.startReading()
	return s
}

// appendJSONString appends v as a JSON string.
func appendJSONString(dst []byte, v string) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

// upgradeRequest is what the Socket.IO layer and the gateway read of the
// upgrade request while a namespace connects: the headers of
// handshakeHeaders, the path and query, the address and whether it came
// over TLS. leanSession.Request rebuilds an http.Request from it.
type upgradeRequest struct {
	host, remoteAddr, requestURI, path, rawQuery string
	header                                       http.Header // nil when none of handshakeHeaders came
	secure                                       bool
}

// handshakeHeaders are the request headers a lean session keeps for the
// Socket.IO handshake: the credentials (credentialsOf reads no other
// header) and Origin (the library's Handshake.Xdomain). A browser sends a
// dozen more, which nothing reads after the upgrade.
var handshakeHeaders = [...]string{"Authorization", "Cookie", "Origin"}

// strippedRequest copies what upgradeRequest keeps of r.
func strippedRequest(r *http.Request) *upgradeRequest {
	u := &upgradeRequest{host: r.Host, remoteAddr: r.RemoteAddr, requestURI: r.RequestURI, secure: r.TLS != nil}
	if r.URL != nil {
		u.path, u.rawQuery = r.URL.Path, r.URL.RawQuery
	}
	for _, k := range handshakeHeaders {
		if v, ok := r.Header[k]; ok {
			if u.header == nil {
				u.header = make(http.Header, len(handshakeHeaders))
			}
			u.header[k] = v
		}
	}
	return u
}

// request rebuilds the http.Request.
func (u *upgradeRequest) request() *http.Request {
	h := u.header
	if h == nil {
		h = http.Header{}
	}
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: u.path, RawQuery: u.rawQuery},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Host: u.host,
		RemoteAddr: u.remoteAddr, RequestURI: u.requestURI, Body: http.NoBody}
	if u.secure {
		r.TLS = &tls.ConnectionState{} // the library only asks whether it is set (Secure)
	}
	return r
}

// discardWriter is the ResponseWriter of a lean session's request copy:
// the response went out with the upgrade.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return 0, http.ErrHijacked }
func (discardWriter) WriteHeader(int)             {}
