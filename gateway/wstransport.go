package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
	"weak"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/queue"
	"github.com/zishang520/socket.io/v3/pkg/slices"
	"github.com/zishang520/socket.io/v3/pkg/types"
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
//   - Every packet of one flush goes out in a single writev, with no
//     per-packet writer or buffer copy.
//
// Frames are written straight to the hijacked connection. That is safe
// because every data write of a connection goes through this transport's
// write queue (one at a time), per-message compression is off (the library
// turns it off for this transport too), and gorilla writes nothing else on
// its own but the close frame, after the queue is closed.

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
	bufs        net.Buffers // reused by send, which runs on writeQueue only
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

// Send writes packets, asynchronously and in order.
func (w *wsTransport) Send(packets []*packet.Packet) {
	w.SetWritable(false)
	w.writeQueue.Enqueue(func() { w.send(packets) })
}

// send runs on writeQueue only.
func (w *wsTransport) send(packets []*packet.Packet) {
	defer func() {
		w.Emit("drain")
		w.SetWritable(true)
		w.Emit("ready")
	}()
	bufs := w.bufs[:0]
	for _, p := range packets {
		if p.Options != nil && p.Options.WsPreEncodedFrame != nil {
			if sb, ok := p.Options.WsPreEncodedFrame.(*types.StringBuffer); ok {
				bufs = append(bufs, w.frames.text(sb))
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
		bufs = append(bufs, appendFrame(nil, opcode, data.Bytes()))
	}
	w.bufs = bufs // the backing array is reused by the next send
	out := bufs   // WriteTo consumes its own copy of the slice header
	if _, err := out.WriteTo(w.socket.NetConn()); err != nil {
		w.fail(err)
	}
	clear(bufs) // drop the frames so a finished broadcast can be freed
}

// OnClose releases the write queue and the connection on every close path.
func (w *wsTransport) OnClose() {
	w.writeQueue.TryClose()
	w.Transport.OnClose()
	_ = w.socket.Close()
}

// DoClose closes the transport.
func (w *wsTransport) DoClose(fn types.Callable) {
	w.writeQueue.TryClose()
	defer func() { _ = w.socket.Close() }()
	if fn != nil {
		fn()
	}
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
