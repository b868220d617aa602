package app

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/meshgen/gateway/clientaddr"
)

// connLimiter bounds the TCP connections of a listener. At 90% of max it
// closes the idle keep-alive connections (the server tells it which are
// idle through ConnState), so that an attacker's parked connections go
// before anyone is refused; at max a new connection is closed as soon as
// it is accepted. One address may hold at most perAddr of them (trusted
// proxies, which carry many clients, excepted), so that one attacker that
// reconnects as fast as it is closed cannot hold them all. Probes and
// clients that come back find room again.
type connLimiter struct {
	net.Listener
	max     int64
	perAddr int64
	exempt  func(netip.Addr) bool // addresses not counted per address (trusted proxies); nil: none
	onLimit func(limit string)

	open   atomic.Int64
	mu     sync.Mutex
	idle   map[net.Conn]struct{}
	byAddr map[string]int64 // open connections by client key (clientaddr.KeyOf; exempt ones not counted)
}

// Limit names counted by connLimiter.
const (
	limitMaxConnections      = "max_connections"
	limitMaxConnectionsPerIP = "max_connections_per_ip"
	limitIdleReaped          = "idle_connections_closed"
)

// maxAutoPerAddr caps the automatic share of one address.
const maxAutoPerAddr = 1024

// reserveFiles is what the automatic max-connections leaves of the
// process's open-file limit (Redis connections, files, the listener).
const reserveFiles = 128

// newConnLimiter bounds ln to limit connections (0: the open-file limit
// minus reserveFiles), perAddr of them from one address (0: a quarter of
// limit, at most maxAutoPerAddr); addresses exempt reports are not counted
// per address. An IPv6 client is counted by its /64.
func newConnLimiter(ln net.Listener, limit, perAddr int, exempt func(netip.Addr) bool, onLimit func(string)) *connLimiter {
	if limit <= 0 {
		limit = openFileLimit() - reserveFiles
	}
	limit = max(limit, 1)
	if perAddr <= 0 {
		perAddr = min(maxAutoPerAddr, max(limit/4, 1))
	}
	return &connLimiter{Listener: ln, max: int64(limit), perAddr: int64(perAddr), exempt: exempt, onLimit: onLimit,
		idle: make(map[net.Conn]struct{}), byAddr: make(map[string]int64)}
}

// openFileLimit is the soft RLIMIT_NOFILE (1024 when it cannot be read).
func openFileLimit() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 1024
	}
	return int(lim.Cur)
}

// Accept implements net.Listener.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		n := l.open.Add(1)
		if n > l.max {
			l.open.Add(-1)
			_ = c.Close()
			l.onLimit(limitMaxConnections)
			continue
		}
		addr := l.addrOf(c)
		if addr != "" && !l.take(addr) {
			l.open.Add(-1)
			_ = c.Close()
			l.onLimit(limitMaxConnectionsPerIP)
			continue
		}
		if n > l.max*9/10 {
			l.closeIdle()
		}
		return &countedConn{Conn: c, l: l, addr: addr}, nil
	}
}

// addrOf is the key c is counted under; "" for an exempt one.
func (l *connLimiter) addrOf(c net.Conn) string {
	tcp, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	addr := tcp.AddrPort().Addr().Unmap()
	if l.exempt != nil && l.exempt(addr) {
		return ""
	}
	return clientaddr.KeyOf(addr)
}

// take counts one more connection of addr; false when addr has its share.
func (l *connLimiter) take(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[addr] >= l.perAddr {
		return false
	}
	l.byAddr[addr]++
	return true
}

// release gives back one connection of addr.
func (l *connLimiter) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[addr] <= 1 {
		delete(l.byAddr, addr)
	} else {
		l.byAddr[addr]--
	}
}

// closeIdle closes the idle keep-alive connections.
func (l *connLimiter) closeIdle() {
	l.mu.Lock()
	idle := make([]net.Conn, 0, len(l.idle))
	for c := range l.idle {
		idle = append(idle, c)
	}
	clear(l.idle)
	l.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
		l.onLimit(limitIdleReaped)
	}
}

// connState is the http.Server's ConnState hook: it tracks which
// connections are idle.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateIdle {
		l.idle[c] = struct{}{}
	} else {
		delete(l.idle, c)
	}
}

// countedConn gives its slot back once when closed.
type countedConn struct {
	net.Conn
	l      *connLimiter
	addr   string // counted under this address; "" when exempt
	closed atomic.Bool
}

// Close implements net.Conn.
func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
		if c.addr != "" {
			c.l.release(c.addr)
		}
	}
	return c.Conn.Close()
}

// CloseWrite shuts the write side of the connection it wraps, when it
// has one (a TCP connection): the WebSocket session sends its close frame
// and closes its input a moment later.
func (c *countedConn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return errors.New("app: connection cannot close its write side only")
	}
	return cw.CloseWrite()
}

// SyscallConn exposes the socket's descriptor, as the connection it wraps
// does: the WebSocket transport writes with writev on it.
func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("app: connection has no file descriptor")
	}
	return sc.SyscallConn()
}
