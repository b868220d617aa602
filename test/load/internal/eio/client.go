package eio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Emit is an event the client emits right after the Socket.IO CONNECT
// reply (as the React app does inside on('connect')), and the reply event
// it waits for before Dial returns.
type Emit struct {
	Name  string
	Arg   []byte // raw JSON
	Reply string // e.g. "subscribed_project"; "" waits for nothing
}

// Options configures one client.
type Options struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:5000.
	URL string
	// Polling selects HTTP long-polling instead of websocket.
	Polling bool
	// OnConnect are emitted right after the CONNECT reply.
	OnConnect []Emit
	// OnEvent receives every server event that is not an awaited reply, on
	// the client's read goroutine; recv is the receipt time (unix nanos).
	// name and arg are only valid during the call.
	OnEvent func(name, arg []byte, recv int64)
	// OnClose is called once when the session ends for any reason other
	// than Close (server close, network error, protocol error).
	OnClose func(err error)
	// Dialer is the websocket dialer (shared; its NetDialContext may pick
	// source addresses).
	Dialer *websocket.Dialer
	// HTTP is the polling transport's client (shared).
	HTTP *http.Client
	// Session, when set, makes the client take part in Socket.IO
	// connection state recovery as socket.io-client v4 does; it carries
	// the state from one connect to the next (see Session).
	Session *Session
}

// Session is what socket.io-client v4 keeps across its reconnects for
// connection state recovery (socket.js: _pid, _lastOffset, recovered):
//
//   - the CONNECT reply's pid (a server with recovery off sends none: the
//     client then has no pid);
//   - while it has a pid, the last argument of each event it receives,
//     when that argument is a string: its offset (kept across a connect
//     that is not recovered, as the real client does);
//   - its next CONNECT carries {pid, offset} while it has a pid; the
//     server recovered the session when its reply carries the same pid.
//
// A recovered client does not emit Options.OnConnect again (its rooms
// came back with the session) unless AlwaysRejoin is set, as an app that
// rejoins in on('connect') whatever socket.recovered says would. A
// Session is used by one client at a time: the next Dial must start after
// the previous client is Done.
type Session struct {
	PID       string
	Offset    string
	HasOffset bool
	// Recovered is socket.recovered after the last connect.
	Recovered bool
	// AlwaysRejoin emits OnConnect on a recovered connect too.
	AlwaysRejoin bool
}

// Client is one Engine.IO/Socket.IO session.
type Client struct {
	opts    Options
	ws      *websocket.Conn
	wmu     sync.Mutex
	sid     string
	ready   chan error
	pending int
	state   int
	closing atomic.Bool
	done    chan struct{}
	once    sync.Once

	early [][]byte // EVENTs received before the CONNECT reply

	pollCtx    context.Context
	pollCancel context.CancelFunc
	pollURL    string
}

// maxEarly bounds the EVENTs a client holds before the CONNECT reply
// (the missed events a recovering node socket.io server sends first).
const maxEarly = 10000

const (
	stOpen = iota
	stConnect
	stReplies
	stRunning
)

// Stats of all clients of the process.
var (
	PingsAnswered atomic.Int64
)

// Dial opens a session, joins the default namespace, emits opts.OnConnect
// and waits for their replies. Events then flow to opts.OnEvent until Close.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	c := &Client{opts: opts, ready: make(chan error, 1), done: make(chan struct{})}
	for _, e := range opts.OnConnect {
		if e.Reply != "" {
			c.pending++
		}
	}
	var err error
	if opts.Polling {
		err = c.startPolling(ctx)
	} else {
		err = c.startWebsocket(ctx)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	select {
	case err = <-c.ready:
	case <-ctx.Done():
		err = fmt.Errorf("eio: handshake: %w", ctx.Err())
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// SID is the Engine.IO session id.
func (c *Client) SID() string { return c.sid }

// Done is closed when the session has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close ends the session; OnClose is not called.
func (c *Client) Close() {
	c.closing.Store(true)
	if c.ws != nil {
		_ = c.ws.Close()
	}
	if c.pollCancel != nil {
		c.pollCancel()
	}
}

func (c *Client) finish(err error) {
	c.once.Do(func() {
		if c.state != stRunning {
			if err == nil {
				err = ErrServerClosed
			}
			select {
			case c.ready <- err:
			default:
			}
		} else if !c.closing.Load() && c.opts.OnClose != nil {
			c.opts.OnClose(err)
		}
		close(c.done)
	})
}

// handle processes one Engine.IO packet.
func (c *Client) handle(p []byte, now int64) error {
	if len(p) == 0 {
		return fmt.Errorf("%w: empty packet", ErrProtocol)
	}
	switch p[0] {
	case eioOpen:
		if c.state != stOpen {
			return fmt.Errorf("%w: unexpected OPEN", ErrProtocol)
		}
		c.sid = findString(p, `"sid":"`)
		c.state = stConnect
		return c.send(c.connectPacket())
	case eioPing:
		PingsAnswered.Add(1)
		return c.send([]byte("3"))
	case eioPong, eioNoop:
		return nil
	case eioClose:
		return ErrServerClosed
	case eioMessage:
		if len(p) < 2 {
			return fmt.Errorf("%w: short message %q", ErrProtocol, p)
		}
		switch p[1] {
		case sioConnect:
			if c.state != stConnect {
				return fmt.Errorf("%w: unexpected CONNECT reply", ErrProtocol)
			}
			c.state = stReplies
			rejoin := true
			if ss := c.opts.Session; ss != nil {
				pid := findString(p, `"pid":"`)
				ss.Recovered = pid != "" && pid == ss.PID
				ss.PID = pid
				rejoin = !ss.Recovered || ss.AlwaysRejoin
			}
			// Events that came before the CONNECT reply (a recovering
			// server sends the missed ones first) are handled now, as
			// socket.io-client's receiveBuffer does, before on('connect').
			early := c.early
			c.early = nil
			for _, ep := range early {
				if err := c.event(ep, now); err != nil {
					return err
				}
			}
			if !rejoin {
				c.pending = 0
				c.maybeReady()
				return nil
			}
			for _, e := range c.opts.OnConnect {
				if err := c.send(EncodeEvent(e.Name, e.Arg)); err != nil {
					return err
				}
			}
			c.maybeReady()
			return nil
		case sioEvent:
			if c.state < stReplies {
				if c.state != stConnect || len(c.early) >= maxEarly {
					return fmt.Errorf("%w: EVENT before CONNECT", ErrProtocol)
				}
				c.early = append(c.early, bytes.Clone(p))
				return nil
			}
			return c.event(p, now)
		case sioAck:
			return nil
		case sioDisconnect:
			return ErrServerDisconn
		case sioConnectError:
			return fmt.Errorf("%w: %s", ErrConnectError, p[2:])
		default:
			return fmt.Errorf("%w: unknown Socket.IO packet %.40q", ErrProtocol, p)
		}
	case eioUpgrade:
		return fmt.Errorf("%w: unexpected UPGRADE", ErrProtocol)
	default:
		return fmt.Errorf("%w: unknown Engine.IO packet %.40q", ErrProtocol, p)
	}
}

// event handles one EVENT packet (p is the whole Engine.IO message) once
// the namespace is connected.
func (c *Client) event(p []byte, now int64) error {
	name, arg, ok := SplitEvent(p[2:])
	if !ok {
		return fmt.Errorf("%w: bad EVENT %.80q", ErrProtocol, p)
	}
	if ss := c.opts.Session; ss != nil && ss.PID != "" {
		if off, ok := LastStringArg(p[2:]); ok {
			ss.Offset, ss.HasOffset = off, true
		}
	}
	if c.state == stReplies {
		if string(name) == "error" {
			return fmt.Errorf("%w: server answered error %s", ErrProtocol, arg)
		}
		for _, e := range c.opts.OnConnect {
			if e.Reply == string(name) {
				c.pending--
				c.maybeReady()
				return nil
			}
		}
	}
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(name, arg, now)
	}
	return nil
}

// connectPacket is the CONNECT this client sends: with its session's pid
// and offset when it has them.
func (c *Client) connectPacket() []byte {
	if ss := c.opts.Session; ss != nil {
		return ConnectPacket(ss.PID, ss.Offset, ss.HasOffset)
	}
	return []byte("40")
}

func (c *Client) maybeReady() {
	if c.state == stReplies && c.pending <= 0 {
		c.state = stRunning
		c.ready <- nil
	}
}

func (c *Client) send(p []byte) error {
	if c.opts.Polling {
		return c.pollSend(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, p)
}

// ---- websocket ----

func (c *Client) startWebsocket(ctx context.Context) error {
	u := strings.Replace(c.opts.URL, "http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
	ws, resp, err := c.opts.Dialer.DialContext(ctx, u, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return fmt.Errorf("eio: websocket dial: %w", err)
	}
	c.ws = ws
	go c.wsLoop()
	return nil
}

func (c *Client) wsLoop() {
	buf := make([]byte, 0, 256)
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			c.finish(fmt.Errorf("eio: read: %w", err))
			return
		}
		buf, err = readAll(r, buf[:0])
		if err != nil {
			c.finish(fmt.Errorf("eio: read: %w", err))
			return
		}
		if err := c.handle(buf, time.Now().UnixNano()); err != nil {
			c.finish(err)
			_ = c.ws.Close()
			return
		}
		if cap(buf) > 64<<10 {
			buf = make([]byte, 0, 256)
		}
	}
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// NewDialer returns a websocket dialer with small buffers; localIP, when
// set, is the source address of its connections (to spread many clients
// over 127.0.0.x source addresses).
func NewDialer(localIP string) *websocket.Dialer {
	nd := &net.Dialer{Timeout: 30 * time.Second}
	if localIP != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  512,
		WriteBufferPool:  &sync.Pool{},
	}
}

// ---- polling ----

// NewHTTPClient returns the shared HTTP client of the polling clients.
func NewHTTPClient(maxConns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			MaxIdleConns:        maxConns,
			MaxIdleConnsPerHost: maxConns,
			IdleConnTimeout:     3 * time.Second, // below node's 5 s keep-alive: a POST on a closing connection is not retried
		},
		Timeout: 90 * time.Second,
	}
}

func (c *Client) startPolling(ctx context.Context) error {
	base := c.opts.URL + "/socket.io/?EIO=4&transport=polling"
	body, err := c.pollGet(ctx, base)
	if err != nil {
		return err
	}
	pkts := bytes.Split(body, []byte{0x1e})
	if len(pkts) == 0 || len(pkts[0]) == 0 || pkts[0][0] != eioOpen {
		return fmt.Errorf("%w: polling open answered %.80q", ErrProtocol, body)
	}
	c.sid = findString(pkts[0], `"sid":"`)
	if c.sid == "" {
		return fmt.Errorf("%w: no sid in %.80q", ErrProtocol, body)
	}
	c.pollURL = base + "&sid=" + c.sid
	c.pollCtx, c.pollCancel = context.WithCancel(context.Background())
	c.state = stConnect
	if err := c.pollSend(c.connectPacket()); err != nil {
		return err
	}
	for _, p := range pkts[1:] {
		if err := c.handle(p, time.Now().UnixNano()); err != nil {
			return err
		}
	}
	go c.pollLoop()
	return nil
}

func (c *Client) pollLoop() {
	for {
		body, err := c.pollGet(c.pollCtx, c.pollURL)
		if err != nil {
			c.finish(err)
			return
		}
		now := time.Now().UnixNano()
		for len(body) > 0 {
			var p []byte
			if i := bytes.IndexByte(body, 0x1e); i >= 0 {
				p, body = body[:i], body[i+1:]
			} else {
				p, body = body, nil
			}
			if err := c.handle(p, now); err != nil {
				c.finish(err)
				c.pollCancel()
				return
			}
		}
	}
}

func (c *Client) pollGet(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.opts.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("eio: poll: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("eio: poll body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: poll answered %d %.80q", ErrProtocol, resp.StatusCode, body)
	}
	return body, nil
}

func (c *Client) pollSend(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := context.WithTimeout(c.pollCtx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.pollURL, bytes.NewReader(p))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := c.opts.HTTP.Do(req)
	if err != nil {
		if c.closing.Load() {
			return nil
		}
		return fmt.Errorf("eio: poll send: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: poll send answered %d %.80q", ErrProtocol, resp.StatusCode, body)
	}
	return nil
}

func findString(b []byte, key string) string {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return ""
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return ""
	}
	return string(b[:j])
}

// IsClosedByUs reports whether err is the error of a connection the caller
// closed.
func IsClosedByUs(err error) bool { return errors.Is(err, net.ErrClosed) }
