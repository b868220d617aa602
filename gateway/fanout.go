package gateway

import (
	"runtime"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// This file is the gateway's seam in the library's Socket.IO layer: a room
// adapter (the library's own extension point, socket.ServerOptions
// SetAdapter) that keeps the library's room bookkeeping and replaces only
// Broadcast, the one method on the hot path.
//
// The library's Broadcast encodes the event once and then, for every
// recipient, clones the encoded packet and walks the engine's per-packet
// path (options and packet allocation, four event-emitter calls, the
// engine's buffer and flush, a write-queue closure). Here the event is
// framed once, as the WebSocket frame every recipient receives, and
// queued on each recipient's WebSocket transport directly; the
// connections that were idle are then written in parallel chunks, one
// writev each. Recipients the frame cannot reach that way (long-polling,
// an upgrade in progress, another transport) get the library's path,
// with the same encoded packet.

// fanoutChunk is the fewest connections worth a goroutine of their own.
const fanoutChunk = 64

// fanoutAdapterBuilder installs fanoutAdapter on every namespace.
type fanoutAdapterBuilder struct{}

// New builds the adapter of nsp.
func (fanoutAdapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &fanoutAdapter{Adapter: socket.MakeAdapter()}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

// fanoutAdapter is the library's in-memory adapter with a faster
// Broadcast.
type fanoutAdapter struct {
	socket.Adapter
}

// Broadcast sends packet to the sockets opts selects (rooms, minus except),
// as the library's adapter does.
func (a *fanoutAdapter) Broadcast(p *parser.Packet, opts *socket.BroadcastOptions) {
	if opts != nil && opts.Flags != nil && opts.Flags.Volatile {
		a.Adapter.Broadcast(p, opts) // volatile needs the engine's writable check
		return
	}
	p.Nsp = a.Nsp().Name()
	encoded := a.Nsp().Server().Encoder().Encode(p)
	var frame []byte
	if len(encoded) == 1 {
		if sb, ok := encoded[0].(*types.StringBuffer); ok {
			frame = make([]byte, 0, len(sb.Bytes())+11)
			frame = appendFrameHeader(frame, ws.TextMessage, len(sb.Bytes())+1)
			frame = append(frame, '4') // Engine.IO MESSAGE
			frame = append(frame, sb.Bytes()...)
		}
	}
	writeOpts := &socket.WriteOptions{}
	writeOpts.PreEncoded = true
	if opts != nil && opts.Flags != nil {
		writeOpts.Compress = opts.Flags.Compress
	}

	var idle []*wsTransport
	// The library's Broadcast also calls each socket's outgoing listeners
	// (Socket.OnAnyOutgoing); the gateway registers none, so that per-socket
	// call (a closure and a copy of an empty list) is left out.
	a.each(opts, func(sock *socket.Socket) {
		if frame != nil {
			if t := directTransport(sock); t != nil {
				if t.queueFrames(frame) {
					idle = append(idle, t)
				}
				return
			}
		}
		sock.Client().WriteToEngine(encoded, writeOpts)
	})
	flushAll(idle)
}

// each calls fn for every connected socket opts selects, once each: the
// library adapter's selection (rooms, except, or everyone).
func (a *fanoutAdapter) each(opts *socket.BroadcastOptions, fn func(*socket.Socket)) {
	var rooms, except *types.Set[socket.Room]
	if opts != nil {
		rooms, except = opts.Rooms, opts.Except
	}
	var skip map[socket.SocketId]struct{}
	if except != nil && except.Len() > 0 {
		skip = make(map[socket.SocketId]struct{})
		for _, room := range except.Keys() {
			if ids, ok := a.Rooms().Load(room); ok {
				for _, id := range ids.Keys() {
					skip[id] = struct{}{}
				}
			}
		}
	}
	sockets := a.Nsp().Sockets()
	visit := func(id socket.SocketId) {
		if _, ok := skip[id]; ok {
			return
		}
		if sock, ok := sockets.Load(id); ok && sock.Connected() {
			fn(sock)
		}
	}
	if rooms == nil || rooms.Len() == 0 {
		a.Sids().Range(func(id socket.SocketId, _ *types.Set[socket.Room]) bool {
			visit(id)
			return true
		})
		return
	}
	if rooms.Len() == 1 {
		if ids, ok := a.Rooms().Load(rooms.Keys()[0]); ok {
			for _, id := range ids.Keys() {
				visit(id)
			}
		}
		return
	}
	seen := make(map[socket.SocketId]struct{})
	for _, room := range rooms.Keys() {
		if ids, ok := a.Rooms().Load(room); ok {
			for _, id := range ids.Keys() {
				if _, dup := seen[id]; !dup {
					seen[id] = struct{}{}
					visit(id)
				}
			}
		}
	}
}

// directTransport is sock's WebSocket transport when a broadcast may be
// queued on it directly, else nil.
func directTransport(sock *socket.Socket) *wsTransport {
	conn := sock.Client().Conn()
	if conn.ReadyState() != "open" {
		return nil
	}
	t, ok := conn.Transport().(*wsTransport)
	if !ok || !t.direct.Load() {
		return nil
	}
	return t
}

// flushAll writes the connections whose write side the caller owns, in up
// to GOMAXPROCS parallel chunks; the caller's goroutine takes the first.
// It does not wait for the other chunks: each connection's order is kept
// by its own pending list.
func flushAll(idle []*wsTransport) {
	if len(idle) == 0 {
		return
	}
	workers := min(runtime.GOMAXPROCS(0), (len(idle)+fanoutChunk-1)/fanoutChunk)
	size := (len(idle) + workers - 1) / workers
	for start := size; start < len(idle); start += size {
		chunk := idle[start:min(start+size, len(idle))]
		go flushEach(chunk)
	}
	flushEach(idle[:min(size, len(idle))])
}

func flushEach(ts []*wsTransport) {
	for _, t := range ts {
		t.flush()
	}
}
