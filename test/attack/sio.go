package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// sioConn is a minimal Engine.IO v4 / Socket.IO v5 client over WebSocket,
// written here (not the project's sioclient) so that it can send what a
// well-behaved client never does.
type sioConn struct {
	ws  *websocket.Conn
	wmu sync.Mutex
	sid string

	// onEvent receives every server event (name, first argument); set
	// before start. Called on the read goroutine.
	onEvent func(name string, data json.RawMessage)

	// noPong stops answering the server's pings (a client that has sent
	// a close packet would not answer them).
	noPong atomic.Bool

	closed   chan struct{}
	closedAt time.Time
	closeErr error
}

// wsDialer: a generous read buffer, loopback only.
var wsDialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}

// dialWS opens the Engine.IO WebSocket and reads the OPEN packet.
func dialWS(ctx context.Context, g *gwProc, hdr http.Header, query string) (*sioConn, int, error) {
	return dialWSWith(ctx, wsDialer, g, hdr, query)
}

// dialWSWith is dialWS with its own dialer.
func dialWSWith(ctx context.Context, dialer *websocket.Dialer, g *gwProc, hdr http.Header, query string) (*sioConn, int, error) {
	url := "ws://" + g.addr + "/socket.io/?EIO=4&transport=websocket" + query
	ws, resp, err := dialer.DialContext(ctx, url, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			err = fmt.Errorf("%w (body %q)", err, trunc(b, 200))
		}
		return nil, status, err
	}
	ws.SetReadLimit(64 << 20)
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, 101, fmt.Errorf("engine.io open: %w", err)
	}
	if len(msg) == 0 || msg[0] != '0' {
		ws.Close()
		return nil, 101, fmt.Errorf("engine.io open: got %q", trunc(msg, 80))
	}
	var open struct{ Sid string }
	_ = json.Unmarshal(msg[1:], &open)
	_ = ws.SetReadDeadline(time.Time{})
	return &sioConn{ws: ws, sid: open.Sid, closed: make(chan struct{})}, 101, nil
}

// connect joins the namespace "/" with auth (nil: none). It returns the
// CONNECT_ERROR message when the server refuses.
func (c *sioConn) connect(auth any) (refused string, err error) {
	pkt := "40"
	if auth != nil {
		b, _ := json.Marshal(auth)
		pkt += string(b)
	}
	if err := c.send(pkt); err != nil {
		return "", err
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.ws.SetReadDeadline(time.Time{}) }()
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return "", fmt.Errorf("socket.io connect: %w", err)
		}
		switch {
		case bytes.HasPrefix(msg, []byte("40")):
			return "", nil
		case bytes.HasPrefix(msg, []byte("44")):
			var m struct{ Message string }
			_ = json.Unmarshal(msg[2:], &m)
			return m.Message, nil
		case bytes.Equal(msg, []byte("2")):
			_ = c.send("3")
		}
	}
}

// start runs the read loop: pings answered, events to onEvent, until the
// connection closes.
func (c *sioConn) start() {
	go func() {
		defer close(c.closed)
		for {
			_, msg, err := c.ws.ReadMessage()
			if err != nil {
				c.closedAt = time.Now()
				c.closeErr = err
				return
			}
			switch {
			case bytes.Equal(msg, []byte("2")):
				if !c.noPong.Load() {
					_ = c.send("3")
				}
			case bytes.HasPrefix(msg, []byte("42")) || bytes.HasPrefix(msg, []byte("43")):
				if name, data, ok := parseEvent(msg); ok && c.onEvent != nil {
					c.onEvent(name, data)
				}
			}
		}
	}()
}

// parseEvent reads a Socket.IO EVENT (or ACK: name "ack") packet.
func parseEvent(msg []byte) (string, json.RawMessage, bool) {
	ack := msg[1] == '3'
	rest := msg[2:]
	for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
		rest = rest[1:]
	}
	var args []json.RawMessage
	if json.Unmarshal(rest, &args) != nil || len(args) == 0 {
		return "", nil, false
	}
	if ack {
		return "ack", args[0], true
	}
	var name string
	if json.Unmarshal(args[0], &name) != nil {
		return "", nil, false
	}
	data := json.RawMessage("null")
	if len(args) > 1 {
		data = args[1]
	}
	return name, data, true
}

func (c *sioConn) send(text string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, []byte(text))
}

func (c *sioConn) sendBinary(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.BinaryMessage, b)
}

// emit sends a Socket.IO EVENT.
func (c *sioConn) emit(event string, payload any) error {
	b, err := json.Marshal([]any{event, payload})
	if err != nil {
		return err
	}
	return c.send("42" + string(b))
}

// isClosed reports whether the server closed the connection.
func (c *sioConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *sioConn) close() { _ = c.ws.Close() }

// eventCounter counts a client's events by name and error message.
type eventCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func newEventCounter() *eventCounter { return &eventCounter{counts: map[string]int{}} }

func (e *eventCounter) add(name string, data json.RawMessage) {
	key := name
	if name == "error" || name == "ack" {
		var m struct{ Message string }
		if json.Unmarshal(data, &m) == nil && m.Message != "" {
			key = name + ": " + m.Message
		}
	}
	e.mu.Lock()
	e.counts[key]++
	e.mu.Unlock()
}

func (e *eventCounter) snapshot() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.counts))
	for k, v := range e.counts {
		out[k] = v
	}
	return out
}

func (e *eventCounter) get(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[key]
}

// polling is a long-polling Engine.IO client on its own keep-alive
// connection.
type polling struct {
	g   *gwProc
	c   *http.Client
	sid string
}

func newPolling(g *gwProc, timeout time.Duration) *polling {
	return &polling{g: g, c: &http.Client{Timeout: timeout, Transport: &http.Transport{MaxConnsPerHost: 1}}}
}

func (p *polling) url() string {
	u := p.g.base + "/socket.io/?EIO=4&transport=polling"
	if p.sid != "" {
		u += "&sid=" + p.sid
	}
	return u
}

// handshake opens a session; it returns the HTTP status.
func (p *polling) handshake() (int, error) {
	resp, err := p.c.Get(p.url())
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	if len(b) == 0 || b[0] != '0' {
		return resp.StatusCode, fmt.Errorf("polling open: %q", trunc(b, 80))
	}
	var open struct{ Sid string }
	if err := json.Unmarshal(b[1:], &open); err != nil {
		return resp.StatusCode, err
	}
	p.sid = open.Sid
	return 200, nil
}

// post sends packets (joined with the record separator).
func (p *polling) post(packets ...string) (int, error) {
	resp, err := p.c.Post(p.url(), "text/plain;charset=UTF-8", strings.NewReader(strings.Join(packets, "\x1e")))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// get polls once; it returns the status and the number of bytes received.
func (p *polling) get() (int, []byte, error) {
	resp, err := p.c.Get(p.url())
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	return resp.StatusCode, b, err
}

// rawExchange sends req on a new connection and returns the status line's
// code, the whole response (at most 1 MiB) and how long it took.
func rawExchange(addr string, req []byte, timeout time.Duration) (int, []byte, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		return 0, nil, err
	}
	resp, err := io.ReadAll(io.LimitReader(c, 1<<20))
	if len(resp) == 0 && err != nil {
		return 0, nil, err
	}
	return statusOf(resp), resp, nil
}

// statusOf reads the code of an HTTP/1.1 status line; 0 when there is none.
func statusOf(resp []byte) int {
	rest, ok := bytes.CutPrefix(resp, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(string(rest[:3]))
	return n
}

// bodyOf is what follows the header block of a raw response.
func bodyOf(resp []byte) []byte {
	if _, b, ok := bytes.Cut(resp, []byte("\r\n\r\n")); ok {
		return b
	}
	return nil
}

func trunc(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

var errTimeout = errors.New("timed out")

// closeReason names how a WebSocket ended: its close code, or the error.
func closeReason(err error) string {
	var ce *websocket.CloseError
	switch {
	case err == nil:
		return "open"
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d %s", ce.Code, ce.Text)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "EOF"
	default:
		return err.Error()
	}
}
