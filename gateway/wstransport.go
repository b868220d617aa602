package gateway

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
	"unicode/utf8"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/slices"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// This file is the gateway's seam in the library's transport layer: a
// WebSocket transport that replaces the library's (servers/engine/v3
// transports/websocket.go) through the engine's own SetTransports option.
// It reads exactly as the library does; it writes differently:
//
//   - Writes need no goroutine of their own. A frame is appended to the
//     connection's pending list; whichever goroutine finds the connection
//     idle writes the list at once with one non-blocking sendmsg. Only when
//     the kernel's socket buffer is full does a goroutine stay behind to
//     finish the rest with blocking writes. An idle connection holds no
//     writer goroutine and no queue.
//   - The transport is always writable, so the engine never buffers: every
//     engine packet (open, ping, replies, acks) is framed and queued in the
//     order the engine sends it.
//   - A broadcast reaches a recipient without the engine's per-packet path:
//     the fan-out adapter (fanout.go) frames the event once and hands the
//     same bytes to every recipient's queue (queueFrames), then flushes the
//     idle ones in parallel.
//   - A client that lets more than maxPendingBytes pile up unread is
//     disconnected: it cannot hold the process's memory.
//
// Frames are written straight to the hijacked connection. That is safe
// because every frame of a connection goes through the pending list, one
// writer at a time, per-message compression is off (the library turns it
// off for this transport too), and the control frames gorilla would write
// on its own (pong, close reply) are queued the same way (newWSTransport).

// wsBuilder registers wsTransport as the engine's "websocket" transport.
type wsBuilder struct {
	pingDelay    time.Duration // see wsTransport.Send
	writeTimeout time.Duration // writeTimeout when zero
	// onLimit, when set, is told the limit (LimitWSBuffer or
	// LimitWSWriteTimeout) a client that does not read was disconnected by.
	// With it the builder is registered by pointer (the engine keeps its
	// transports in a set, and a func is not hashable).
	onLimit func(limit string)
}

func (b wsBuilder) New(ctx *types.HttpContext) transports.Transport {
	w := newWSTransport(ctx, b.pingDelay)
	w.fw.onLimit = b.onLimit
	w.fw.writeTimeout = b.writeTimeout
	return w
}
func (wsBuilder) Name() string          { return transports.WEBSOCKET }
func (wsBuilder) HandlesUpgrades() bool { return true }
func (wsBuilder) UpgradesTo() []string  { return nil }

// pingDelayFor is how long a ping waits before it is written: a second,
// or a quarter of the ping timeout when that is shorter, so the client
// keeps most of the timeout to answer.
func pingDelayFor(pingTimeout time.Duration) time.Duration {
	return min(time.Second, pingTimeout/4)
}

var _ transports.TransportCtor = wsBuilder{}

type wsTransport struct {
	transports.Transport

	idleTimeout time.Duration
	socket      *types.WebSocketConn
	pingDelay   time.Duration
	fw          frameWriter

	// direct is true once broadcasts may bypass the engine: from the start
	// for a WebSocket-first session, after the upgrade for an upgraded one
	// (when the engine has handed over what it buffered meanwhile).
	direct atomic.Bool
}

func newWSTransport(ctx *types.HttpContext, pingDelay time.Duration) *wsTransport {
	w := &wsTransport{Transport: transports.MakeTransport(), pingDelay: pingDelay}
	w.Prototype(w)
	w.Transport.Construct(ctx)

	w.idleTimeout = ctx.IdleTimeout
	w.socket = ctx.Websocket
	w.fw.init(w.socket.NetConn())
	w.fw.closeConn = func() { _ = w.socket.Close() }
	w.fw.failed = func(err error) {
		if errors.Is(err, errSlowClient) {
			w.socket.Emit("error", err)
		}
		_ = w.socket.Close()
	}
	// An upgrade request names its session; its transport is not the
	// session's until the upgrade completes (read).
	_, upgrade := ctx.Query().Get("sid")
	w.direct.Store(!upgrade)

	_ = w.socket.On("error", func(errs ...any) {
		w.OnError("websocket error", slices.TryGetAny[error](errs, 0))
	})
	_ = w.socket.Once("close", func(...any) {
		w.OnClose()
	})
	// gorilla answers pings and close frames itself with WriteControl; here
	// they are queued behind the data frames instead, never written in the
	// middle of one.
	w.socket.SetPingHandler(func(data string) error {
		w.fw.send(appendFrame(nil, ws.PongMessage, []byte(data)))
		return nil
	})
	w.socket.SetCloseHandler(func(code int, _ string) error {
		var payload []byte
		if code != ws.CloseNoStatusReceived {
			payload = ws.FormatCloseMessage(code, "")
		}
		w.fw.send(appendFrame(nil, ws.CloseMessage, payload))
		return nil
	})

	w.SetWritable(true)
	w.SetPerMessageDeflate(nil)

	transports.StartReader(w, ctx.TransportReadPermission(), w.read)
	return w
}

// Name is the transport's name.
func (w *wsTransport) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades advertises upgrade support.
func (w *wsTransport) HandlesUpgrades() bool { return true }

func (w *wsTransport) fail(err error) {
	if ws.IsUnexpectedCloseError(err) || errors.Is(err, net.ErrClosed) {
		w.socket.Emit("close")
	} else {
		w.socket.Emit("error", err)
	}
}

// read is the library's reader loop, unchanged in behaviour, plus the
// moment an upgraded session's broadcasts may go direct.
func (w *wsTransport) read() {
	defer func() {
		if w.ReadyState() != "closed" {
			w.socket.Emit("close")
		}
	}()
	for {
		if w.idleTimeout > 0 {
			_ = w.socket.SetReadDeadline(time.Now().Add(w.idleTimeout))
		}
		mt, message, err := w.socket.NextReader()
		if err != nil {
			w.fail(err)
			return
		}
		switch mt {
		case ws.BinaryMessage:
			data := types.NewBytesBuffer(nil)
			if _, err := data.ReadFrom(message); err != nil {
				w.fail(err)
			} else {
				w.OnData(data)
			}
		case ws.TextMessage:
			data := types.NewStringBuffer(nil)
			if _, err := data.ReadFrom(message); err != nil {
				w.fail(err)
			} else if !utf8.Valid(data.Bytes()) {
				// RFC 6455 8.1: a text frame that is not UTF-8 fails the
				// connection with 1007.
				w.closeWith(ws.CloseInvalidFramePayloadData)
				return
			} else if data.Len() == 1 && data.Bytes()[0] == '1' {
				// The Engine.IO close packet: the client is leaving. The
				// library's polling transport honours it; its WebSocket
				// transport ignored it until the ping timeout.
				w.closeWith(ws.CloseNormalClosure)
				return
			} else {
				upgrade := !w.direct.Load() && data.Len() == 1 && data.Bytes()[0] == '5'
				w.OnData(data)
				// The engine handles the upgrade packet synchronously: it
				// makes this transport the session's and flushes what it
				// buffered into it. Broadcasts queued directly from now on
				// come after those packets.
				if upgrade && w.ReadyState() == "open" {
					w.direct.Store(true)
				}
			}
		case ws.CloseMessage:
			w.socket.Emit("close")
			if c, ok := message.(io.Closer); ok {
				_ = c.Close()
			}
			return
		}
		if c, ok := message.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// Send frames the engine's packets and writes them in order. The
// transport stays writable: nothing waits in the engine's buffer.
//
// A ping is written pingDelay later. The engine arms its ping timeout only
// after Send returns (engine socket.schedulePing: sendPacket, then
// resetPingTimeout, on a timer goroutine). When the client's pong is
// handled before that, it clears nothing, the timeout armed afterwards
// stands, and the client is closed for a "ping timeout" although it
// answered. On a saturated machine the timer goroutine can be held up
// long enough: written at once, about 1% of 10,000 clients per heartbeat
// were closed that way under the rooms load (2 of 10,000 when written from
// another goroutine, as the library's own transport does); see
// gateway_socket_disconnects_total{reason="ping timeout"}. The delay gives
// the engine that margin; the client still has the rest of the ping
// timeout to answer, and expects pings only within interval + timeout.
func (w *wsTransport) Send(packets []*packet.Packet) {
	frames := make([][]byte, 0, len(packets))
	var pings [][]byte
	for _, p := range packets {
		if p.Type == packet.PING && w.pingDelay > 0 {
			data, err := w.Parser().EncodePacket(p, w.SupportsBinary())
			if err != nil {
				w.fail(err)
				return
			}
			pings = append(pings, appendFrame(nil, ws.TextMessage, data.Bytes()))
			continue
		}
		if p.Options != nil && p.Options.WsPreEncodedFrame != nil {
			if sb, ok := p.Options.WsPreEncodedFrame.(*types.StringBuffer); ok {
				frames = append(frames, appendFrame(nil, ws.TextMessage, sb.Bytes()))
				continue
			}
		}
		data, err := w.Parser().EncodePacket(p, w.SupportsBinary())
		if err != nil {
			w.fail(err)
			return
		}
		opcode := byte(ws.BinaryMessage)
		if _, ok := data.(*types.StringBuffer); ok {
			opcode = ws.TextMessage
		}
		frames = append(frames, appendFrame(nil, opcode, data.Bytes()))
	}
	if len(frames) > 0 {
		w.fw.send(frames...)
	}
	if len(pings) > 0 {
		time.AfterFunc(w.pingDelay, func() { w.fw.send(pings...) })
	}
	w.Emit("drain")
}

// closeWith ends the session from the reader: a close frame with code is
// queued, the engine learns the transport closed, and the connection is
// closed once the frame is written.
func (w *wsTransport) closeWith(code int) {
	w.fw.send(appendFrame(nil, ws.CloseMessage, ws.FormatCloseMessage(code, "")))
	w.OnClose()
}

// OnClose marks the transport closed (the engine learns it from the
// "close" event) and closes the connection once what is queued, such as
// the reply to a client's close frame, is written.
func (w *wsTransport) OnClose() {
	w.fw.closeAfterWrites()
	w.Transport.OnClose()
}

// DoClose closes the transport once what is already queued is written.
func (w *wsTransport) DoClose(fn types.Callable) {
	if fn != nil {
		fn()
	}
	w.fw.closeAfterWrites()
}
