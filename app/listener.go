package app

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// connLimiter bounds the TCP connections of a listener. At 90% of max it
// closes the idle keep-alive connections (the server tells it which are
// idle through ConnState), so that an attacker's parked connections go
// before anyone is refused; at max a new connection is closed as soon as
// it is accepted. Probes and clients that come back find room again.
type connLimiter struct {
	net.Listener
	max     int64
	onLimit func(limit string)

	open atomic.Int64
	mu   sync.Mutex
	idle map[net.Conn]struct{}
}

// Limit names counted by connLimiter.
const (
	limitMaxConnections = "max_connections"
	limitIdleReaped     = "idle_connections_closed"
)

// reserveFiles is what the automatic max-connections leaves of the
// process's open-file limit (Redis connections, files, the listener).
const reserveFiles = 128

func newConnLimiter(ln net.Listener, limit int, onLimit func(string)) *connLimiter {
	if limit <= 0 {
		limit = openFileLimit() - reserveFiles
	}
	return &connLimiter{Listener: ln, max: int64(max(limit, 1)), onLimit: onLimit, idle: make(map[net.Conn]struct{})}
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
		if n > l.max*9/10 {
			l.closeIdle()
		}
		return &countedConn{Conn: c, l: l}, nil
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
	closed atomic.Bool
}

// Close implements net.Conn.
func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
	}
	return c.Conn.Close()
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
