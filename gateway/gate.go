package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
)

// connectPacket is the first byte of a Socket.IO CONNECT packet.
const connectPacket = '0'

// handshakeGate holds a connection's non-CONNECT packets until the
// namespace is registered (see the package doc).
type handshakeGate struct {
	timeout time.Duration

	mu    sync.Mutex
	conns map[string]*connGate
}

// connGate is the gate of one Engine.IO connection.
type connGate struct {
	ready    chan struct{}
	closed   chan struct{}
	isReady  atomic.Bool
	openOnce sync.Once
	shutOnce sync.Once
}

func newHandshakeGate(timeout time.Duration) *handshakeGate {
	return &handshakeGate{timeout: timeout, conns: make(map[string]*connGate)}
}

// attach is the Engine.IO "connection" listener; it must be registered
// before the Socket.IO server binds the engine.
func (g *handshakeGate) attach(args ...any) {
	conn, ok := args[0].(engine.Socket)
	if !ok {
		return
	}
	if ls, ok := conn.(*leanSession); ok {
		// A lean session holds the packets itself, with no allocation
		// unless one must wait (leanSession.waitGate).
		ls.gateTimeout = g.timeout
		ls.gated = true
		return
	}
	cg := &connGate{ready: make(chan struct{}), closed: make(chan struct{})}
	id := conn.Id()
	g.mu.Lock()
	g.conns[id] = cg
	g.mu.Unlock()

	_ = conn.On("packet", func(args ...any) {
		p, _ := args[0].(*packet.Packet)
		if p == nil || p.Type != packet.MESSAGE || cg.isReady.Load() || isConnect(p) {
			return
		}
		cg.wait(g.timeout)
	})
	_ = conn.Once("close", func(...any) {
		cg.shutOnce.Do(func() { close(cg.closed) })
		g.mu.Lock()
		delete(g.conns, id)
		g.mu.Unlock()
	})
}

// open releases the held packets of connection id; called from the
// Socket.IO connection handler, after the namespace is registered.
func (g *handshakeGate) open(id string) {
	g.mu.Lock()
	cg := g.conns[id]
	g.mu.Unlock()
	if cg != nil {
		cg.open()
	}
}

func (cg *connGate) open() {
	cg.openOnce.Do(func() {
		cg.isReady.Store(true)
		close(cg.ready)
	})
}

// wait blocks until the gate opens, the connection closes or timeout passes.
func (cg *connGate) wait(timeout time.Duration) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-cg.ready:
	case <-cg.closed:
	case <-timer.C:
	}
}

// isConnect reports whether an Engine.IO message carries a Socket.IO
// CONNECT packet (those must pass: they open the namespace).
func isConnect(p *packet.Packet) bool {
	b, ok := p.Data.(interface{ Bytes() []byte })
	if !ok {
		return false
	}
	data := b.Bytes()
	return len(data) > 0 && data[0] == connectPacket
}
