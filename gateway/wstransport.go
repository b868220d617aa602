package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
	"weak"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/queue"
	"github.com/zishang520/socket.io/v3/pkg/slices"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/sys/unix"
)

// This file is the gateway's seam in the library's transport layer: a
// WebSocket transport that replaces the library's (servers/engine/v3
// transports/websocket.go) through the engine's own SetTransports option.
// It reads exactly as the library does; it writes differently:
//
//   - A broadcast reaches every recipient with the same pre-encoded Engine.IO
//     packet (packet.Options.WsPreEncodedFrame, one pointer per broadcast).
//     The library builds a gorilla PreparedMessage from it for every
//     recipient (framing the bytes twice, each time with a throwaway
//     buffer). Here the WebSocket frame is built once per broadcast and the
//     same bytes are written to every recipient (frameCache).
//   - Every packet of one flush goes out in a single writev, attempted
//     without blocking on the caller's goroutine (the broadcast loop): no
//     goroutine wake-up per recipient. Only what the socket buffer cannot
//     take right now goes to a per-connection writer goroutine, with a
//     bounded backlog (a client more than 4 MiB behind is disconnected).
//
// Frames are written straight to the hijacked connection. That is safe
// because every data write of a connection goes through Send, which keeps
// one writer at a time (w.mu: the caller's attempt or the writer
// goroutine, never both), per-message compression is off (the library
// turns it off for this transport too), and gorilla writes nothing else on
// its own but the close frame.

// wsBuilder registers wsTransport as the engine's "websocket" transport.
type wsBuilder struct{ frames *frameCache }

func (b *wsBuilder) New(ctx *types.HttpContext) transports.Transport {
	return newWSTransport(ctx, b.frames)
}
func (*wsBuilder) Name() string          { return transports.WEBSOCKET }
func (*wsBuilder) HandlesUpgrades() bool { return true }
func (*wsBuilder) UpgradesTo() []string  { return nil }

var _ transports.TransportCtor = (*wsBuilder)(nil)

type wsTransport struct {
	transports.Transport

	idleTimeout time.Duration
	socket      *types.WebSocketConn
	writeQueue  *queue.Queue
	frames      *frameCache
	raw         syscall.RawConn // nil when the connection has no descriptor

	mu           sync.Mutex // guards the fields below
	writing      bool       // the writer goroutine owns the connection's writes
	backlog      [][]byte   // frames waiting for the writer, in order
	backlogBytes int
	closed       bool
}

func newWSTransport(ctx *types.HttpContext, frames *frameCache) transports.Transport {
	w := &wsTransport{Transport: transports.MakeTransport(), frames: frames}
	w.Prototype(w)
	w.Transport.Construct(ctx)

	w.idleTimeout = ctx.IdleTimeout
	w.socket = ctx.Websocket
	w.writeQueue = queue.New()

	_ = w.socket.On("error", func(errs ...any) {
		w.OnError("websocket error", slices.TryGetAny[error](errs, 0))
	})
	_ = w.socket.Once("close", func(...any) {
		w.OnClose()
	})

	if sc, ok := w.socket.NetConn().(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}

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

// read is the library's reader loop, unchanged in behaviour.
func (w *wsTransport) read() {
	defer func() {
		if !w.writeQueue.IsShuttingDown() {
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
			} else {
				w.OnData(data)
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

// maxBacklog bounds what a connection may have waiting to be written; a
// client that falls further behind is disconnected (a slow consumer costs
// bounded memory, never an unbounded queue).
const maxBacklog = 4 << 20

// Send writes packets in order without ever blocking the caller (the
// broadcast loop): it tries one non-blocking writev on the caller's
// goroutine, and only what the socket buffer could not take goes to the
// connection's writer goroutine. The transport stays writable, so the engine
// never buffers on its side and order is kept here.
func (w *wsTransport) Send(packets []*packet.Packet) {
	frames, err := w.encode(packets)
	if err != nil {
		w.fail(err)
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	if !w.writing {
		rest, err := w.tryWrite(frames)
		if err != nil {
			w.mu.Unlock()
			w.fail(err)
			return
		}
		if len(rest) > 0 {
			w.writing = true
			w.backlog = append(w.backlog, rest...)
			w.backlogBytes = size(rest)
			w.writeQueue.Enqueue(w.writeBacklog)
		}
	} else {
		w.backlog = append(w.backlog, frames...)
		w.backlogBytes += size(frames)
	}
	over := w.backlogBytes > maxBacklog
	w.mu.Unlock()
	if over {
		w.fail(errSlowConsumer)
		return
	}
	// One drain per Send: the engine runs that flush's sent callbacks.
	w.Emit("drain")
}

var errSlowConsumer = errors.New("gateway: client too slow, more than 4 MiB waiting to be written")

// encode turns packets into frames, sharing each broadcast's frame.
func (w *wsTransport) encode(packets []*packet.Packet) ([][]byte, error) {
	frames := make([][]byte, 0, len(packets))
	for _, p := range packets {
		if p.Options != nil && p.Options.WsPreEncodedFrame != nil {
			if sb, ok := p.Options.WsPreEncodedFrame.(*types.StringBuffer); ok {
				frames = append(frames, w.frames.text(sb))
				continue
			}
		}
		data, err := w.Parser().EncodePacket(p, w.SupportsBinary())
		if err != nil {
			return nil, err
		}
		opcode := byte(ws.BinaryMessage)
		if _, ok := data.(*types.StringBuffer); ok {
			opcode = ws.TextMessage
		}
		frames = append(frames, appendFrame(nil, opcode, data.Bytes()))
	}
	return frames, nil
}

// maxIovecs keeps one writev under the kernel's IOV_MAX (1024).
const maxIovecs = 512

// tryWrite makes one non-blocking writev attempt and returns what is left
// (the tail of a partly written frame, then the frames not written). w.mu
// is held. Connections without a raw descriptor get everything back.
func (w *wsTransport) tryWrite(frames [][]byte) ([][]byte, error) {
	if w.raw == nil {
		return frames, nil
	}
	var n int
	var werr error
	attempt := frames[:min(len(frames), maxIovecs)]
	err := w.raw.Write(func(fd uintptr) bool {
		n, werr = unix.Writev(int(fd), attempt)
		return true // one attempt: never wait for the socket here
	})
	if err != nil {
		return nil, err
	}
	if werr != nil {
		if errors.Is(werr, unix.EAGAIN) || errors.Is(werr, unix.EINTR) {
			return frames, nil
		}
		return nil, werr
	}
	for len(frames) > 0 && n >= len(frames[0]) {
		n -= len(frames[0])
		frames = frames[1:]
	}
	if len(frames) > 0 && n > 0 {
		rest := make([][]byte, len(frames))
		copy(rest, frames)
		rest[0] = rest[0][n:]
		frames = rest
	}
	return frames, nil
}

// writeBacklog runs on writeQueue: it writes (blocking) whatever is
// waiting until nothing is.
func (w *wsTransport) writeBacklog() {
	conn := w.socket.NetConn()
	for {
		w.mu.Lock()
		bufs := w.backlog
		w.backlog, w.backlogBytes = nil, 0
		if len(bufs) == 0 || w.closed {
			w.writing = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		out := net.Buffers(bufs)
		if _, err := out.WriteTo(conn); err != nil {
			w.mu.Lock()
			w.writing = false
			w.mu.Unlock()
			w.fail(err)
			return
		}
	}
}

func size(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// OnClose releases the write queue and the connection on every close path.
func (w *wsTransport) OnClose() {
	w.markClosed()
	w.writeQueue.TryClose()
	w.Transport.OnClose()
	_ = w.socket.Close()
}

// DoClose closes the transport.
func (w *wsTransport) DoClose(fn types.Callable) {
	w.markClosed()
	w.writeQueue.TryClose()
	defer func() { _ = w.socket.Close() }()
	if fn != nil {
		fn()
	}
}

func (w *wsTransport) markClosed() {
	w.mu.Lock()
	w.closed = true
	w.backlog, w.backlogBytes = nil, 0
	w.mu.Unlock()
}

// frameCache shares one server WebSocket frame per broadcast: entries are
// keyed by a weak pointer to the broadcast's pre-encoded packet and removed
// when that packet is garbage collected, so the cache holds only frames of
// broadcasts still being written.
type frameCache struct {
	m sync.Map // weak.Pointer[types.StringBuffer] -> []byte
}

// text returns the text frame of sb, building it on first use.
func (c *frameCache) text(sb *types.StringBuffer) []byte {
	key := weak.Make(sb)
	if f, ok := c.m.Load(key); ok {
		return f.([]byte)
	}
	frame := appendFrame(nil, ws.TextMessage, sb.Bytes())
	if f, loaded := c.m.LoadOrStore(key, frame); loaded {
		return f.([]byte)
	}
	runtime.AddCleanup(sb, func(k weak.Pointer[types.StringBuffer]) { c.m.Delete(k) }, key)
	return frame
}

// appendFrame appends an unmasked, final server frame (RFC 6455 5.2).
func appendFrame(dst []byte, opcode byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n <= 125:
		dst = append(dst, 0x80|opcode, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|opcode, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|opcode, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}
