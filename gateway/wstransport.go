package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/slices"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/sys/unix"
)

// This file is the gateway's seam in the library's transport layer: a
// WebSocket transport that replaces the library's (servers/engine/v3
// transports/websocket.go) through the engine's own SetTransports option.
// It reads exactly as the library does; it writes differently:
//
//   - Writes need no goroutine of their own. A frame is appended to the
//     connection's pending list; whichever goroutine finds the connection
//     idle writes the list at once with one non-blocking writev. Only when
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

// maxPendingBytes bounds what a connection may have queued and unwritten.
const maxPendingBytes = 8 << 20

// writeTimeout bounds one blocking write to a client that does not read.
const writeTimeout = 10 * time.Second

// errSlowClient closes a connection whose unread backlog passed
// maxPendingBytes.
var errSlowClient = errors.New("gateway: client reads too slowly, more than 8 MiB queued")

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
	w.onLimit = b.onLimit
	if b.writeTimeout > 0 {
		w.writeTimeout = b.writeTimeout
	}
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
	conn        net.Conn
	raw         syscall.RawConn // nil when conn has no file descriptor
	pingDelay   time.Duration
	onLimit     func(limit string) // see wsBuilder; nil in some tests
	// writeTimeout bounds one blocking write (the writeTimeout constant
	// unless a test sets it).
	writeTimeout time.Duration

	// direct is true once broadcasts may bypass the engine: from the start
	// for a WebSocket-first session, after the upgrade for an upgraded one
	// (when the engine has handed over what it buffered meanwhile).
	direct atomic.Bool

	mu           sync.Mutex
	pending      net.Buffers // frames queued and not yet written, in order
	pendingBytes int
	spare        net.Buffers // the previous batch's array, reused
	writing      bool        // a goroutine owns the write side
	closing      bool        // close the connection once pending is written
	closed       bool        // the connection is closed: frames are dropped
}

func newWSTransport(ctx *types.HttpContext, pingDelay time.Duration) *wsTransport {
	w := &wsTransport{Transport: transports.MakeTransport(), pingDelay: pingDelay, writeTimeout: writeTimeout}
	w.Prototype(w)
	w.Transport.Construct(ctx)

	w.idleTimeout = ctx.IdleTimeout
	w.socket = ctx.Websocket
	w.conn = w.socket.NetConn()
	if sc, ok := w.conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
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
		if w.queueFrames(appendFrame(nil, ws.PongMessage, []byte(data))) {
			w.flush()
		}
		return nil
	})
	w.socket.SetCloseHandler(func(code int, _ string) error {
		var payload []byte
		if code != ws.CloseNoStatusReceived {
			payload = ws.FormatCloseMessage(code, "")
		}
		if w.queueFrames(appendFrame(nil, ws.CloseMessage, payload)) {
			w.flush()
		}
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
	if len(frames) > 0 && w.queueFrames(frames...) {
		w.flush()
	}
	if len(pings) > 0 {
		time.AfterFunc(w.pingDelay, func() {
			if w.queueFrames(pings...) {
				w.flush()
			}
		})
	}
	w.Emit("drain")
}

// queueFrames appends frames to the pending list. It reports true when
// the caller now owns the write side and must call flush.
func (w *wsTransport) queueFrames(frames ...[]byte) (mustFlush bool) {
	w.mu.Lock()
	if w.closed || w.closing {
		w.mu.Unlock()
		return false
	}
	for _, f := range frames {
		w.pending = append(w.pending, f)
		w.pendingBytes += len(f)
	}
	if w.pendingBytes > maxPendingBytes {
		w.mu.Unlock()
		w.writeFailed(errSlowClient)
		return false
	}
	mustFlush = !w.writing
	w.writing = true
	w.mu.Unlock()
	return mustFlush
}

// takeBatch hands the owner of the write side the pending frames, or
// releases the write side when there are none (closing the connection
// when a close was waiting for the writes).
func (w *wsTransport) takeBatch() (net.Buffers, bool) {
	w.mu.Lock()
	batch := w.pending
	if len(batch) == 0 || w.closed {
		w.writing = false
		closeNow := w.closing && !w.closed
		w.mu.Unlock()
		if closeNow {
			_ = w.socket.Close()
		}
		return nil, false
	}
	w.pending = w.spare[:0]
	w.spare = nil
	w.pendingBytes = 0
	w.mu.Unlock()
	return batch, true
}

// recycle keeps a written batch's array for the next one.
func (w *wsTransport) recycle(batch net.Buffers) {
	clear(batch[:cap(batch)]) // drop the frames so a finished broadcast can be freed
	w.mu.Lock()
	if w.spare == nil && cap(batch) <= 64 {
		w.spare = batch[:0]
	}
	w.mu.Unlock()
}

// flush writes the pending frames without ever blocking: when the socket
// buffer fills, the rest goes to writeBlocking on a goroutine of its own.
// Only the owner of the write side calls it.
func (w *wsTransport) flush() {
	for {
		batch, ok := w.takeBatch()
		if !ok {
			return
		}
		rest, err := w.tryWrite(batch)
		if err != nil {
			w.writeFailed(err)
			return
		}
		if len(rest) > 0 {
			go w.writeBlocking(rest)
			return
		}
		w.recycle(batch)
	}
}

// writeBlocking finishes rest and then every batch queued meanwhile, with
// blocking writes bounded by writeTimeout, then releases the write side.
func (w *wsTransport) writeBlocking(rest net.Buffers) {
	for {
		_ = w.conn.SetWriteDeadline(time.Now().Add(w.writeTimeout))
		_, err := rest.WriteTo(w.conn)
		_ = w.conn.SetWriteDeadline(time.Time{})
		if err != nil {
			w.writeFailed(err)
			return
		}
		batch, ok := w.takeBatch()
		if !ok {
			return
		}
		rest = batch
	}
}

// tryWrite writes as much of batch as the socket takes now and returns
// what is left. Without a file descriptor it returns batch unwritten.
func (w *wsTransport) tryWrite(batch net.Buffers) (net.Buffers, error) {
	if w.raw == nil {
		return batch, nil
	}
	for len(batch) > 0 {
		chunk := batch
		if len(chunk) > maxIovecs {
			chunk = chunk[:maxIovecs]
		}
		var n int
		var werr error
		if err := w.raw.Write(func(fd uintptr) bool {
			for {
				n, werr = unix.Writev(int(fd), chunk)
				if werr != unix.EINTR {
					return true
				}
			}
		}); err != nil {
			return nil, err
		}
		if n > 0 {
			batch = consume(batch, n)
		}
		if werr == unix.EAGAIN {
			return batch, nil
		}
		if werr != nil {
			return nil, werr
		}
	}
	return nil, nil
}

// maxIovecs is Linux's IOV_MAX: the most buffers one writev takes.
const maxIovecs = 1024

// consume drops the first n written bytes of bufs.
func consume(bufs net.Buffers, n int) net.Buffers {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs[0] = nil
		bufs = bufs[1:]
	}
	if n > 0 && len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// writeFailed drops what is pending and closes the transport.
func (w *wsTransport) writeFailed(err error) {
	w.mu.Lock()
	first := !w.closed // two senders can both find the backlog past the bound
	w.closed = true
	w.writing = false
	clear(w.pending)
	w.pending, w.pendingBytes = nil, 0
	w.mu.Unlock()
	if errors.Is(err, errSlowClient) {
		w.limitHit(first, LimitWSBuffer)
		w.socket.Emit("error", err)
		_ = w.socket.Close()
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.limitHit(first, LimitWSWriteTimeout)
	}
	_ = w.socket.Close()
}

// limitHit reports a disconnect by a bound of this file, once per
// connection (first: this failure closed it).
func (w *wsTransport) limitHit(first bool, limit string) {
	if first && w.onLimit != nil {
		w.onLimit(limit)
	}
}

// OnClose marks the transport closed (the engine learns it from the
// "close" event) and closes the connection once what is queued, such as
// the reply to a client's close frame, is written.
func (w *wsTransport) OnClose() {
	w.closeAfterWrites()
	w.Transport.OnClose()
}

// DoClose closes the transport once what is already queued is written.
func (w *wsTransport) DoClose(fn types.Callable) {
	if fn != nil {
		fn()
	}
	w.closeAfterWrites()
}

// closeAfterWrites refuses further frames and closes the connection now
// when no write is in progress, else lets the writer close it when done
// (within writeTimeout).
func (w *wsTransport) closeAfterWrites() {
	w.mu.Lock()
	w.closing = true
	idle := !w.writing
	w.mu.Unlock()
	if idle {
		_ = w.socket.Close()
	}
}

// closeWith ends the session from the reader: a close frame with code is
// queued, the engine learns the transport closed, and the connection is
// closed once the frame is written.
func (w *wsTransport) closeWith(code int) {
	if w.queueFrames(appendFrame(nil, ws.CloseMessage, ws.FormatCloseMessage(code, ""))) {
		w.flush()
	}
	w.OnClose()
}

// appendFrame appends an unmasked, final server frame (RFC 6455 5.2).
func appendFrame(dst []byte, opcode byte, payload []byte) []byte {
	return append(appendFrameHeader(dst, opcode, len(payload)), payload...)
}

// appendFrameHeader appends the header of an unmasked, final server frame
// of n payload bytes.
func appendFrameHeader(dst []byte, opcode byte, n int) []byte {
	switch {
	case n <= 125:
		return append(dst, 0x80|opcode, byte(n))
	case n <= 0xffff:
		return append(dst, 0x80|opcode, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|opcode, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}
