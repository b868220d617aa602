package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"
)

// rawConn is one attacker's TCP connection: it records when the server
// first answered (and with which status) and when it closed.
type rawConn struct {
	c       net.Conn
	start   time.Time
	mu      sync.Mutex
	status  int
	answer  time.Duration // -1 until an answer
	closed  time.Duration // -1 until the server closed
	got     bytes.Buffer  // first 4 KiB received
	done    chan struct{}
	sentLen int
}

// dialRaw connects to addr (from local, when set) and starts reading.
func dialRaw(ctx context.Context, addr string, local net.IP) (*rawConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &rawConn{c: c, start: time.Now(), answer: -1, closed: -1, done: make(chan struct{})}
	go r.read()
	return r, nil
}

func (r *rawConn) read() {
	defer close(r.done)
	buf := make([]byte, 4096)
	for {
		n, err := r.c.Read(buf)
		r.mu.Lock()
		if n > 0 {
			if r.answer < 0 {
				r.answer = time.Since(r.start)
			}
			if r.got.Len() < 4096 {
				r.got.Write(buf[:min(n, 4096-r.got.Len())])
				if r.status == 0 {
					r.status = statusOf(r.got.Bytes())
				}
			}
		}
		if err != nil {
			r.closed = time.Since(r.start)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// write sends b with a write deadline.
func (r *rawConn) write(b []byte, timeout time.Duration) error {
	_ = r.c.SetWriteDeadline(time.Now().Add(timeout))
	n, err := r.c.Write(b)
	r.mu.Lock()
	r.sentLen += n
	r.mu.Unlock()
	return err
}

func (r *rawConn) isClosed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// result is the connection's outcome: status, answered after, closed
// after (seconds; nil when still open).
func (r *rawConn) result() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]any{"status": r.status, "sent_bytes": r.sentLen}
	if r.answer >= 0 {
		m["answered_after_s"] = round(r.answer.Seconds(), 1)
	}
	if r.closed >= 0 {
		m["closed_after_s"] = round(r.closed.Seconds(), 1)
	} else {
		m["closed_after_s"] = nil
		m["open_after_s"] = round(time.Since(r.start).Seconds(), 1)
	}
	return m
}

func (r *rawConn) close() { _ = r.c.Close() }

// statusCounts counts the statuses of conns ("none" when there was no
// answer), and how many the server closed.
func statusCounts(conns []*rawConn) (map[string]int, int) {
	counts := map[string]int{}
	closed := 0
	for _, r := range conns {
		r.mu.Lock()
		if r.status == 0 {
			counts["none"]++
		} else {
			counts[strconv.Itoa(r.status)]++
		}
		if r.closed >= 0 {
			closed++
		}
		r.mu.Unlock()
	}
	return counts, closed
}

// closeTimes is the median and maximum of the times at which the server
// closed conns (seconds), over those it closed.
func closeTimes(conns []*rawConn) map[string]any {
	var ts []float64
	for _, r := range conns {
		r.mu.Lock()
		if r.closed >= 0 {
			ts = append(ts, r.closed.Seconds())
		}
		r.mu.Unlock()
	}
	if len(ts) == 0 {
		return nil
	}
	sort.Float64s(ts)
	return map[string]any{"median_s": round(ts[len(ts)/2], 1), "max_s": round(ts[len(ts)-1], 1)}
}

// loopbackAddrs returns n source addresses 127.0.<k>.<j>, k from 1, for
// attacks that come from many client addresses.
func loopbackAddrs(n int) []net.IP {
	out := make([]net.IP, 0, n)
	for i := range n {
		out = append(out, net.IPv4(127, byte(1+i/250), byte(i%250+1), 1))
	}
	return out
}

// webhookHead is the header block of a POST to path with content length n
// and the extra header lines.
func postHead(addr, path string, n int, extra ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, addr, n)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// wellFormedSignature is a body-only signature header of the right shape
// and the wrong value: it passes the check of the header's form, which
// comes before the body is read.
var wellFormedSignature = "X-Modal-Signature: sha256=" + string(bytes.Repeat([]byte("0"), 64))

// every calls f every interval until ctx ends or, when limit is
// positive, limit has passed.
func every(ctx context.Context, interval, limit time.Duration, f func()) {
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
