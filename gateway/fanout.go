package gateway

import (
	"runtime"
	"sync"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/meshgen/gateway/metrics"
)

// This file is the gateway's seam in the library's Socket.IO layer: a room
// adapter (the library's own extension point, socket.ServerOptions
// SetAdapter) that keeps the library's room bookkeeping and replaces
// Broadcast, the one method on the hot path (and wraps the join and leave
// methods, only to keep its own cache of each room's members current).
//
// The library's Broadcast encodes the event once and then, for every
// recipient, clones the encoded packet and walks the engine's per-packet
// path (options and packet allocation, four event-emitter calls, the
// engine's buffer and flush, a write-queue closure). Here the event is
// framed once, as the WebSocket frame every recipient receives, and
// queued on each recipient's WebSocket transport directly; the
// connections that were idle are then written in parallel chunks, one
// sendmsg each. Recipients the frame cannot reach that way (long-polling,
// an upgrade in progress, another transport) get the library's path,
// with the same encoded packet. A broadcast to one room (every bus event)
// walks a cached list of the room's sockets and their transports instead
// of copying the room's id set and looking every id up again.

// fanoutChunk is the fewest connections worth a goroutine of their own.
const fanoutChunk = 64

// fanoutAdapterBuilder installs fanoutAdapter on every namespace.
type fanoutAdapterBuilder struct {
	metrics *metrics.Metrics // counts deliveries; nil counts nothing
	// restore answers RestoreSession (recovery.go); nil with recovery off.
	restore func(pid, offset string) (*socket.Session, error)
}

// New builds the adapter of nsp.
func (b fanoutAdapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &fanoutAdapter{Adapter: socket.MakeAdapter(), metrics: b.metrics, restore: b.restore, members: make(map[socket.Room]*roomMembers),
		named: make(map[socket.Room]*types.Set[socket.SocketId])}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

// fanoutAdapter is the library's in-memory adapter with a faster
// Broadcast.
type fanoutAdapter struct {
	socket.Adapter
	metrics *metrics.Metrics
	restore func(pid, offset string) (*socket.Session, error)

	// members caches, per room, the sockets a one-room broadcast reaches
	// (and their WebSocket transports once direct), so the hot path does
	// not copy the room's id set and look every id up again. An entry is
	// dropped by every join and leave of its room (AddAll, Del, DelAll).
	mu      sync.Mutex
	members map[socket.Room]*roomMembers
	// named holds the rooms with members other than sockets' own rooms
	// (a socket's room has its id as name and member), with their member
	// sets: the room count and the biggest rooms are read from it, not
	// from a walk over every socket's room. Kept by invalidate.
	named map[socket.Room]*types.Set[socket.SocketId]
}

// roomMembers is one room's cache entry. gen changes on every join or
// leave, so a list built from an older view of the room is not stored.
type roomMembers struct {
	gen   uint64
	valid bool
	list  []recipient // never modified once stored
}

// recipient is one member of a room: its socket and, when it was already
// direct when the list was built, its WebSocket transport.
type recipient struct {
	sock *socket.Socket
	ws   *frameWriter
}

// Broadcast sends packet to the sockets opts selects (rooms, minus except),
// as the library's adapter does.
func (a *fanoutAdapter) Broadcast(p *parser.Packet, opts *socket.BroadcastOptions) {
	if opts != nil && opts.Flags != nil && opts.Flags.Volatile {
		a.Adapter.Broadcast(p, opts) // volatile needs the engine's writable check
		return
	}
	var w writeBatch
	a.broadcast(p, opts, &w)
	w.flush()
}

// broadcast queues packet on the sockets opts selects; the connections
// whose write side it took are added to w, which the caller flushes.
func (a *fanoutAdapter) broadcast(p *parser.Packet, opts *socket.BroadcastOptions, w *writeBatch) {
	o := outgoing{a: a, p: p, w: w}
	if opts != nil && opts.Flags != nil {
		o.compress = opts.Flags.Compress
	}
	if room, ok := singleRoom(opts); ok {
		a.toRoom(&o, room)
	} else {
		a.each(opts, func(sock *socket.Socket) { o.send(sock, directTransport(sock)) })
	}
	if !o.reply {
		a.metrics.Delivered(o.delivered)
	}
}

// broadcastRoom is broadcast to one room, nobody excepted, without
// BroadcastOptions (a set, a map, per event): the path of every bus event
// to one room.
func (a *fanoutAdapter) broadcastRoom(p *parser.Packet, room socket.Room, w *writeBatch) {
	o := outgoing{a: a, p: p, w: w}
	a.toRoom(&o, room)
	if !o.reply {
		a.metrics.Delivered(o.delivered)
	}
}

// toRoom sends o to room's members.
func (a *fanoutAdapter) toRoom(o *outgoing, room socket.Room) {
	if sock, ok := a.Nsp().Sockets().Load(socket.SocketId(room)); ok {
		// One socket's own room: a direct reply, which the library
		// routes here with recovery on. No member list is cached, and
		// it is not a delivery (gateway_socket_deliveries_total).
		o.reply = true
		if sock.Connected() {
			o.send(sock, directTransport(sock))
		}
		return
	}
	// The hot path: the cached members.
	stale := false
	for _, r := range a.roomList(room) {
		if !r.sock.Connected() {
			continue
		}
		t := r.ws
		if t == nil {
			if t = directTransport(r.sock); t != nil {
				stale = true // it went direct since the list was built
			}
		}
		o.send(r.sock, t)
	}
	if stale {
		a.invalidate(room)
	}
}

// outgoing is one broadcast on its way to its recipients. The packet is
// encoded when the first recipient is found: every node consumes every
// event, and most go to rooms with no member here.
type outgoing struct {
	a         *fanoutAdapter
	p         *parser.Packet
	compress  *bool       // the broadcast's compress flag
	w         *writeBatch // collects the connections whose write side send took
	delivered int
	reply     bool                    // a reply to one socket: not counted as a delivery
	frame     []byte                  // the WebSocket frame of every direct recipient
	encoded   []types.BufferInterface // the library's encoding, for the others
	writeOpts *socket.WriteOptions
}

// send queues the packet on sock: its frame on t, sock's WebSocket write
// side when the frame can go there directly, else through the engine.
// The library's Broadcast also calls each socket's outgoing listeners
// (Socket.OnAnyOutgoing); the gateway registers none, so that per-socket
// call (a closure and a copy of an empty list) is left out.
func (o *outgoing) send(sock *socket.Socket, t *frameWriter) {
	if o.delivered == 0 {
		o.encode()
	}
	o.delivered++
	if o.frame != nil && t != nil {
		if t.queueFrames(o.frame) {
			o.w.idle = append(o.w.idle, t)
		}
		return
	}
	o.engineWrite(sock)
}

// encode makes the frame: eventFrame's for a bus event (the library's
// encoding then only if a recipient needs it), else from the library's
// encoding when it is one text packet.
func (o *outgoing) encode() {
	o.p.Nsp = o.a.Nsp().Name()
	if f, ok := eventFrame(o.p); ok {
		o.frame = f
		return
	}
	o.encoded = o.a.Nsp().Server().Encoder().Encode(o.p)
	if len(o.encoded) == 1 {
		if sb, ok := o.encoded[0].(*types.StringBuffer); ok {
			frame := make([]byte, 0, len(sb.Bytes())+11)
			frame = appendFrameHeader(frame, ws.TextMessage, len(sb.Bytes())+1)
			frame = append(frame, '4') // Engine.IO MESSAGE
			o.frame = append(frame, sb.Bytes()...)
		}
	}
}

// engineWrite hands the packet to a recipient the frame cannot reach
// directly (long-polling, an upgrade in progress): the library's path.
func (o *outgoing) engineWrite(sock *socket.Socket) {
	if o.encoded == nil {
		o.encoded = o.a.Nsp().Server().Encoder().Encode(o.p)
	}
	if o.writeOpts == nil {
		o.writeOpts = &socket.WriteOptions{}
		o.writeOpts.PreEncoded = true
		o.writeOpts.Compress = o.compress
	}
	sock.Client().WriteToEngine(o.encoded, o.writeOpts)
}

// RestoreSession implements the library's recovery hook (recovery.go).
func (a *fanoutAdapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	if a.restore == nil {
		return nil, nil
	}
	return a.restore(string(pid), offset)
}

// PersistSession implements the library's recovery hook: nothing to do,
// sessions are stored from the moment they change (recovery.go).
func (a *fanoutAdapter) PersistSession(*socket.SessionToPersist) {}

// singleRoom returns the room of a broadcast to exactly one room with no
// exceptions.
func singleRoom(opts *socket.BroadcastOptions) (socket.Room, bool) {
	if opts == nil || opts.Rooms == nil || opts.Rooms.Len() != 1 || (opts.Except != nil && opts.Except.Len() > 0) {
		return "", false
	}
	return opts.Rooms.Keys()[0], true
}

// roomList returns room's members, from the cache or built from the
// library's room (and cached when no join or leave happened meanwhile).
// A room without members gets no entry: events to rooms nobody is in must
// not grow the cache.
func (a *fanoutAdapter) roomList(room socket.Room) []recipient {
	a.mu.Lock()
	e := a.members[room]
	if e == nil {
		e = &roomMembers{}
		a.members[room] = e
	}
	if e.valid {
		list := e.list
		a.mu.Unlock()
		return list
	}
	gen := e.gen
	a.mu.Unlock()

	ids, ok := a.Rooms().Load(room)
	if !ok {
		a.mu.Lock()
		if a.members[room] == e && !e.valid {
			delete(a.members, room)
		}
		a.mu.Unlock()
		return nil
	}
	sockets := a.Nsp().Sockets()
	keys := ids.Keys()
	list := make([]recipient, 0, len(keys))
	complete := true
	for _, id := range keys {
		sock, ok := sockets.Load(id)
		if !ok {
			complete = false // joined before the namespace listed it
			continue
		}
		list = append(list, recipient{sock: sock, ws: directTransport(sock)})
	}
	a.mu.Lock()
	if complete && e.gen == gen && a.members[room] == e {
		e.list, e.valid = list, true
	}
	a.mu.Unlock()
	return list
}

// invalidate drops room's cached members (the entry goes when the room is
// gone) and records whether it is a named room with members. Every join
// and leave calls it after the library's change, and it reads the
// library's state under a.mu: the last call for a room leaves named
// matching what the room is.
func (a *fanoutAdapter) invalidate(rooms ...socket.Room) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, room := range rooms {
		ids, exists := a.Rooms().Load(room)
		if exists && !ids.Has(socket.SocketId(room)) {
			a.named[room] = ids
		} else {
			delete(a.named, room)
		}
		e := a.members[room]
		if e == nil {
			continue
		}
		e.gen++
		e.valid, e.list = false, nil
		if !exists {
			delete(a.members, room)
		}
	}
}

// namedRooms calls fn for every named room with members (no socket's own
// room), in no order, until fn returns false.
func (a *fanoutAdapter) namedRooms(fn func(socket.Room, *types.Set[socket.SocketId]) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for room, ids := range a.named {
		if !fn(room, ids) {
			return
		}
	}
}

// AddAll joins id to rooms (the library's adapter), then drops the cached
// members of those rooms.
func (a *fanoutAdapter) AddAll(id socket.SocketId, rooms *types.Set[socket.Room]) {
	a.Adapter.AddAll(id, rooms)
	a.invalidate(rooms.Keys()...)
}

// Del removes id from room, then drops room's cached members.
func (a *fanoutAdapter) Del(id socket.SocketId, room socket.Room) {
	a.Adapter.Del(id, room)
	a.invalidate(room)
}

// DelAll removes id from all its rooms, then drops their cached members.
func (a *fanoutAdapter) DelAll(id socket.SocketId) {
	var rooms []socket.Room
	if set := a.SocketRooms(id); set != nil {
		rooms = set.Keys()
	}
	a.Adapter.DelAll(id)
	a.invalidate(rooms...)
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

// directTransport is the write side of sock's WebSocket connection when a
// broadcast may be queued on it directly, else nil.
func directTransport(sock *socket.Socket) *frameWriter {
	conn := sock.Client().Conn()
	if conn.ReadyState() != "open" {
		return nil
	}
	switch t := conn.Transport().(type) {
	case *leanTransport:
		return &t.s.fw
	case *wsTransport:
		if t.direct.Load() {
			return &t.fw
		}
	}
	return nil
}

// writeBatch gathers the connections whose write side broadcasts took,
// so that several broadcasts in a row (the events of one bus read) reach
// each connection in one write: a connection already in the batch only
// appends the next frame to its pending list.
type writeBatch struct {
	idle []*frameWriter
}

// flush writes every connection of the batch (flushAll) and empties it.
func (w *writeBatch) flush() {
	flushAll(w.idle)
	w.idle = nil // flushAll's goroutines still read the old array
}

// pending reports whether connections wait for flush.
func (w *writeBatch) pending() bool { return len(w.idle) > 0 }

// flushAll writes the connections whose write side the caller owns, in up
// to GOMAXPROCS parallel chunks; the caller's goroutine takes the first.
// It does not wait for the other chunks: each connection's order is kept
// by its own pending list.
func flushAll(idle []*frameWriter) {
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

func flushEach(ts []*frameWriter) {
	for _, t := range ts {
		t.flush()
	}
}
