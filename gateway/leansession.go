package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/parsers/engine/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// leanSession is the gateway's Engine.IO v4 session of a WebSocket-first
// client, in place of the library's engine socket and WebSocket transport
// (see leanEngine). It implements engine.Socket, so the library's
// Socket.IO layer (namespaces, rooms, parser, acknowledgements, recovery)
// runs on it unchanged. What an idle one holds:
//
//   - no goroutine: reads are driven by one epoll instance for all
//     sessions (poller_linux.go), which the runtime's network poller
//     waits on (no thread blocked in epoll_wait); a goroutine runs only while a
//     connection has bytes to read, and a partial frame waits in a buffer
//     of its exact size;
//   - one runtime timer for the heartbeat (time.AfterFunc: the runtime's
//     timer heap, no goroutine while it waits), re-armed from "ping due"
//     to "pong due" and back; the ping timeout is armed before the ping is
//     written, so a fast pong always finds it;
//   - the write side of frameWriter (nothing while idle);
//   - what the Socket.IO handshake reads of the upgrade request (three
//     headers, the path and query, the address; upgradeRequest),
//     and its event listeners. Nothing of net/http, gorilla or the
//     library's engine socket.
//
// The wire is the library's: the same OPEN packet, frames, close codes
// and reasons ("transport close", "ping timeout", "transport error",
// "parse error", "forced close").
type leanSession struct {
	leanEmitter

	engine *leanEngine
	id     string
	remote string
	req    *upgradeRequest // what is kept of the upgrade request
	// reqCtx is the context Request returns while a namespace connects
	// (the library reads it six times per CONNECT); dropped once the
	// connect is done (openGate) or the session closes.
	reqCtx atomic.Pointer[types.HttpContext]
	t      leanTransport
	fw     frameWriter
	state  atomic.Int32

	// heartbeat (heartbeat.go-style state under hbMu)
	hbMu     sync.Mutex
	hbTimer  *time.Timer
	hbDue    time.Time // the timer's current deadline; earlier fires are stale
	awaiting bool      // a ping is out, its pong not yet in

	// the handshake gate (gate.go), kept here for a lean session: gated is
	// set at "connection", before anything is read; gateCh exists only
	// while a message waits.
	gated       bool
	gateTimeout time.Duration
	gateOpen    atomic.Bool
	gateCh      chan struct{}

	// read side: owned by whoever holds reading
	reading atomic.Bool
	fd      int    // the descriptor registered with the poller; -1: none
	partial []byte // bytes of an incomplete frame
	frag    []byte // the message being assembled from fragments
	fragOp  byte   // its opcode (0: none)
}

const (
	stateOpen int32 = iota
	stateClosing
	stateClosed
)

var stateNames = [...]string{"open", "closing", "closed"}

var _ engine.Socket = (*leanSession)(nil)

// SetReadyState is the engine.Socket setter; the session keeps its own.
func (s *leanSession) SetReadyState(string) {}

// Protocol is Engine.IO v4.
func (s *leanSession) Protocol() int { return 4 }

// Request is the upgrade request (what upgradeRequest keeps of it) in an
// HttpContext. The Socket.IO layer reads it while it connects a
// namespace; the context is kept from the first of those reads until the
// connect is done (openGate), not for the session's lifetime (it holds
// an emitter, a channel and the request: about 1 KB).
func (s *leanSession) Request() *types.HttpContext {
	if c := s.reqCtx.Load(); c != nil {
		return c
	}
	c := types.NewHttpContext(discardWriter{}, s.req.request())
	s.reqCtx.CompareAndSwap(nil, c)
	return c
}

// RemoteAddress is the client's address.
func (s *leanSession) RemoteAddress() string { return s.remote }

// Transport is the session's websocket transport.
func (s *leanSession) Transport() transports.Transport { return &s.t }

// Id is the session id.
func (s *leanSession) Id() string { return s.id }

// ReadyState is "open", "closing" or "closed".
func (s *leanSession) ReadyState() string { return stateNames[s.state.Load()] }

// Upgraded is true: a WebSocket session upgrades to nothing, and an
// upgrade request naming it is refused.
func (s *leanSession) Upgraded() bool { return true }

// Upgrading is false.
func (s *leanSession) Upgrading() bool { return false }

// Construct is not used: leanEngine builds sessions.
func (s *leanSession) Construct(string, engine.BaseServer, transports.Transport, *types.HttpContext, int) {
}

// MaybeUpgrade refuses: there is nothing to upgrade to.
func (s *leanSession) MaybeUpgrade(t transports.Transport) { t.Close() }

// Send sends a message packet.
func (s *leanSession) Send(data io.Reader, opts *packet.Options, cb engine.SendCallback) engine.Socket {
	return s.Write(data, opts, cb)
}

// Write frames a message packet and writes it (frameWriter). Text data is
// an Engine.IO MESSAGE "4…", binary data a binary frame.
func (s *leanSession) Write(data io.Reader, opts *packet.Options, cb engine.SendCallback) engine.Socket {
	if s.state.Load() != stateOpen {
		return s
	}
	var frame []byte
	if opts != nil && opts.WsPreEncodedFrame != nil {
		if sb, ok := opts.WsPreEncodedFrame.(*types.StringBuffer); ok {
			frame = appendFrame(nil, opText, sb.Bytes())
		}
	}
	if frame == nil {
		switch d := data.(type) {
		case *types.StringBuffer:
			b := d.Bytes()
			frame = appendFrameHeader(make([]byte, 0, len(b)+11), opText, len(b)+1)
			frame = append(append(frame, '4'), b...)
		case interface{ Bytes() []byte }:
			frame = appendFrame(nil, opBinary, d.Bytes())
		case nil:
			frame = appendFrame(nil, opText, []byte{'4'})
		default:
			b, err := io.ReadAll(d)
			if err != nil {
				return s
			}
			frame = appendFrameHeader(make([]byte, 0, len(b)+11), opText, len(b)+1)
			frame = append(append(frame, '4'), b...)
		}
	}
	s.fw.send(frame)
	if cb != nil {
		cb(&s.t)
	}
	return s
}

// Close closes the session: at once with discard, else once what is
// queued is written. The reason is "forced close", as the library's.
func (s *leanSession) Close(discard bool) {
	if !s.state.CompareAndSwap(stateOpen, stateClosing) {
		return
	}
	s.onClose("forced close", nil, !discard)
}

// onClose ends the session once: the heartbeat stops, the connection
// closes (after what is queued when afterWrites), and "close" is emitted.
func (s *leanSession) onClose(reason string, err error, afterWrites bool) {
	if s.state.Swap(stateClosed) == stateClosed {
		return
	}
	s.hbMu.Lock()
	if s.hbTimer != nil {
		s.hbTimer.Stop()
	}
	s.hbMu.Unlock()
	s.openGate() // a message held by the gate goes nowhere now
	if afterWrites {
		s.fw.closeAfterWrites()
	} else {
		s.fw.writeFailed(errSessionClosed)
	}
	s.Emit("close", reason, err)
}

// errSessionClosed drops a closed session's queued frames.
var errSessionClosed = errors.New("gateway: session closed")

// closeConn leaves the poller and closes the connection once what was
// queued is written (frameWriter.closeConn). When the server closes on a
// client's error (closeWith), the client may still be sending: the write
// side is shut at once and the descriptor closed closeLinger later, since
// closing a socket that has unread input makes the kernel send a reset,
// and a reset can destroy the close frame just written before the client
// reads it (a client still sending the message that was too big would see
// "connection reset" instead of 1009). Every other close (the client's
// close frame or EOF, a server-side disconnect) closes at once.
func (s *leanSession) closeConn() {
	s.engine.poller.remove(s)
	if s.fw.lingers() {
		if hc, ok := s.fw.conn.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
			conn := s.fw.conn
			time.AfterFunc(closeLinger, func() { _ = conn.Close() })
			return
		}
	}
	_ = s.fw.conn.Close()
}

// closeLinger is how long a closed session's connection stays open for
// reading only, so that the client reads the close frame.
const closeLinger = time.Second

// writeFailed ends the session after a failed write (frameWriter.failed):
// the connection is closed at once.
func (s *leanSession) writeFailed(err error) {
	s.engine.poller.remove(s)
	_ = s.fw.conn.Close()
	if errors.Is(err, errSessionClosed) {
		return
	}
	// Not an "error" event first: the Socket.IO client answers one by
	// closing with "forced close", and the disconnect is a transport error.
	s.onClose("transport error", err, false)
}

// ---- heartbeat ----

// startHeartbeat arms the first ping.
func (s *leanSession) startHeartbeat() {
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	if s.state.Load() != stateOpen {
		return
	}
	s.hbDue = time.Now().Add(s.engine.pingInterval)
	s.hbTimer = time.AfterFunc(s.engine.pingInterval, s.heartbeat)
}

// heartbeat fires when a ping is due (it arms the pong deadline, then
// writes the ping) or when the pong is late (the session closes with
// "ping timeout").
func (s *leanSession) heartbeat() {
	s.hbMu.Lock()
	if s.state.Load() != stateOpen || time.Now().Before(s.hbDue) {
		s.hbMu.Unlock() // closed, or re-armed since this fire was due
		return
	}
	if s.awaiting {
		s.hbMu.Unlock()
		s.onClose("ping timeout", nil, false)
		return
	}
	s.awaiting = true
	s.hbDue = time.Now().Add(s.engine.pingTimeout)
	s.hbTimer.Reset(s.engine.pingTimeout)
	s.hbMu.Unlock()
	s.fw.send(pingFrame)
}

// pingFrame is the Engine.IO PING "2" as a text frame.
var pingFrame = []byte{0x80 | opText, 1, '2'}

// onPong schedules the next ping a ping interval from now.
func (s *leanSession) onPong() {
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	if !s.awaiting || s.state.Load() != stateOpen {
		return
	}
	s.awaiting = false
	s.hbDue = time.Now().Add(s.engine.pingInterval)
	s.hbTimer.Reset(s.engine.pingInterval)
}

// ---- the handshake gate ----

// waitGate holds the reading goroutine until the Socket.IO connection
// handler has run (openGate), the session closes or the gate's timeout
// passes: the gate of gate.go, for a lean session.
func (s *leanSession) waitGate() {
	s.hbMu.Lock()
	if s.gateOpen.Load() {
		s.hbMu.Unlock()
		return
	}
	if s.gateCh == nil {
		s.gateCh = make(chan struct{})
	}
	ch := s.gateCh
	s.hbMu.Unlock()
	t := time.NewTimer(s.gateTimeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// openGate releases the held packets and lets the next ones pass. The
// namespace has connected: the request's context is dropped too.
func (s *leanSession) openGate() {
	s.reqCtx.Store(nil)
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	if s.gateOpen.Swap(true) {
		return
	}
	if s.gateCh != nil {
		close(s.gateCh)
		s.gateCh = nil
	}
}

// ---- Engine.IO packets ----

// onMessage handles one complete WebSocket data message.
func (s *leanSession) onMessage(op byte, data []byte) {
	if s.state.Load() != stateOpen {
		return
	}
	var p *packet.Packet
	if op == opBinary {
		p = &packet.Packet{Type: packet.MESSAGE, Data: types.NewBytesBuffer(data)}
	} else {
		if len(data) == 0 || data[0] < '0' || data[0] > '6' {
			s.onClose("parse error", nil, false)
			return
		}
		p = &packet.Packet{Type: packetTypes[data[0]-'0'], Data: types.NewStringBuffer(data[1:])}
	}
	if s.gated && p.Type == packet.MESSAGE && !s.gateOpen.Load() && !isConnect(p) {
		s.waitGate()
		if s.state.Load() != stateOpen {
			return
		}
	}
	s.Emit("packet", p)
	switch p.Type {
	case packet.PONG:
		s.onPong()
		s.Emit("heartbeat")
	case packet.PING:
		// In v4 the server pings; a client ping is a protocol error, as
		// in the library.
		s.onClose("transport error", errInvalidHeartbeat, false)
	case packet.CLOSE:
		// The client is leaving: answer with a normal close frame, as the
		// upgraded path (wstransport.go) does, then end the session.
		s.fw.send(appendFrame(nil, opClose, binary.BigEndian.AppendUint16(nil, closeNormal)))
		s.onClose("transport close", nil, true)
	case packet.MESSAGE:
		s.Emit("data", p.Data)
		s.Emit("message", p.Data)
	}
}

var errInvalidHeartbeat = errors.New("invalid heartbeat direction")

var packetTypes = [...]packet.Type{packet.OPEN, packet.CLOSE, packet.PING, packet.PONG,
	packet.MESSAGE, packet.UPGRADE, packet.NOOP}

// ---- the transport the Socket.IO layer and the gateway see ----

// leanTransport is what leanSession.Transport returns: a "websocket"
// transport that is always writable. The library's transport methods that
// a session of its own would need are never called on it (leanSession
// takes their place); those that are answer from the session.
type leanTransport struct {
	transports.Transport // nil: methods not listed below are not used
	s                    *leanSession
}

func (t *leanTransport) Name() string                                  { return transports.WEBSOCKET }
func (t *leanTransport) HandlesUpgrades() bool                         { return true }
func (t *leanTransport) Writable() bool                                { return t.s.state.Load() == stateOpen }
func (t *leanTransport) Protocol() int                                 { return 4 }
func (t *leanTransport) Sid() string                                   { return t.s.id }
func (t *leanTransport) ReadyState() string                            { return t.s.ReadyState() }
func (t *leanTransport) Discarded() bool                               { return false }
func (t *leanTransport) SupportsBinary() bool                          { return true }
func (t *leanTransport) Parser() parser.Parser                         { return parser.Parserv4() }
func (t *leanTransport) MaxHttpBufferSize() int64                      { return t.s.engine.maxPayload }
func (t *leanTransport) HttpCompression() *types.HttpCompression       { return nil }
func (t *leanTransport) PerMessageDeflate() *types.PerMessageDeflate   { return nil }
func (t *leanTransport) SetSid(string)                                 {}
func (t *leanTransport) SetWritable(bool)                              {}
func (t *leanTransport) SetSupportsBinary(bool)                        {}
func (t *leanTransport) SetReadyState(string)                          {}
func (t *leanTransport) SetHttpCompression(*types.HttpCompression)     {}
func (t *leanTransport) SetPerMessageDeflate(*types.PerMessageDeflate) {}
func (t *leanTransport) SetMaxHttpBufferSize(int64)                    {}
func (t *leanTransport) OnRequest(*types.HttpContext)                  {}
func (t *leanTransport) Discard()                                      {}
func (t *leanTransport) Close(fns ...types.Callable) {
	t.s.Close(false)
	for _, fn := range fns {
		if fn != nil {
			fn()
		}
	}
}

// conn is the session's connection (for tests).
func (s *leanSession) conn() net.Conn { return s.fw.conn }
