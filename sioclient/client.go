package sioclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults of Options.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	// handshakeTimeout bounds the dial and the two handshake packets.
	handshakeTimeout = 10 * time.Second
	// maxMessageBytes bounds one message from the server.
	maxMessageBytes = 16 << 20
)

// ErrServerDisconnect ends a session the server closed at the Socket.IO
// level (a DISCONNECT packet).
var ErrServerDisconnect = errors.New("sioclient: disconnected by the server")

// Emitter sends an event to the server.
type Emitter func(event string, payload any) error

// Options configures Run.
type Options struct {
	// URL is the server's base URL: http(s)://host:port (the path
	// /socket.io/ is added). Required.
	URL string
	// OnConnect is called after every CONNECT, with an Emitter valid for
	// that session; an error it returns ends the session.
	OnConnect func(emit Emitter) error
	// OnEvent receives every server event: its name and its first argument
	// as raw JSON ("null" when none). Required.
	OnEvent func(name string, data json.RawMessage)
	// OnDisconnect, when set, is called when a session ends, with why, and
	// the delay before the next attempt.
	OnDisconnect func(err error, retryIn time.Duration)
	// MinBackoff and MaxBackoff bound the delay between attempts, doubled
	// after each failed one. Zero means DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Dialer dials the WebSocket. Nil means websocket.DefaultDialer.
	Dialer *websocket.Dialer
}

// Run connects and reconnects until ctx ends; it returns ctx's error, or
// an error when the URL is unusable.
func Run(ctx context.Context, opts Options) error {
	if opts.OnEvent == nil {
		return errors.New("sioclient: Options.OnEvent is required")
	}
	endpoint, err := Endpoint(opts.URL)
	if err != nil {
		return err
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.Dialer == nil {
		opts.Dialer = websocket.DefaultDialer
	}
	backoff := opts.MinBackoff
	for {
		connected, err := session(ctx, endpoint, opts)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if connected {
			backoff = opts.MinBackoff
		}
		if opts.OnDisconnect != nil {
			opts.OnDisconnect(err, backoff)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, opts.MaxBackoff)
	}
}

// Endpoint turns a base URL (http, https, ws or wss) into the WebSocket
// endpoint of Engine.IO v4.
func Endpoint(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("sioclient: URL %q: %w", base, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("sioclient: URL %q: scheme must be http, https, ws or wss", base)
	}
	if u.Host == "" {
		return "", fmt.Errorf("sioclient: URL %q has no host", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"
	return u.String(), nil
}

// open is Engine.IO's OPEN packet payload.
type open struct {
	PingInterval int `json:"pingInterval"`
	PingTimeout  int `json:"pingTimeout"`
}

// session runs one connection; connected reports whether it got as far as
// the CONNECT reply.
func session(ctx context.Context, endpoint string, opts Options) (connected bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	conn, _, err := opts.Dialer.DialContext(dctx, endpoint, nil)
	cancel()
	if err != nil {
		return false, fmt.Errorf("sioclient: dial: %w", err)
	}
	conn.SetReadLimit(maxMessageBytes)
	done := make(chan struct{})
	defer close(done)
	go func() { // closes the connection when ctx ends, ending the read below
		select {
		case <-ctx.Done():
			_ = conn.Close()
		case <-done:
			_ = conn.Close()
		}
	}()

	_ = conn.SetReadDeadline(time.Now().Add(handshakeTimeout))
	msg, err := read(conn)
	if err != nil {
		return false, err
	}
	if !strings.HasPrefix(msg, "0") {
		return false, fmt.Errorf("sioclient: expected OPEN, got %.40q", msg)
	}
	var o open
	if err := json.Unmarshal([]byte(msg[1:]), &o); err != nil || o.PingInterval <= 0 {
		return false, fmt.Errorf("sioclient: bad OPEN %.80q", msg)
	}
	idle := time.Duration(o.PingInterval+o.PingTimeout) * time.Millisecond
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		return false, fmt.Errorf("sioclient: write CONNECT: %w", err)
	}
	emit := func(event string, payload any) error {
		b, err := json.Marshal([]any{event, payload})
		if err != nil {
			return fmt.Errorf("sioclient: encode %s: %w", event, err)
		}
		if err := conn.WriteMessage(websocket.TextMessage, append([]byte("42"), b...)); err != nil {
			return fmt.Errorf("sioclient: emit %s: %w", event, err)
		}
		return nil
	}
	for {
		msg, err := read(conn)
		if err != nil {
			return connected, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(idle))
		switch {
		case msg == "2": // ping
			if err := conn.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return connected, fmt.Errorf("sioclient: pong: %w", err)
			}
		case msg == "1":
			return connected, errors.New("sioclient: the server closed the transport")
		case strings.HasPrefix(msg, "40") && !connected:
			connected = true
			if opts.OnConnect != nil {
				if err := opts.OnConnect(emit); err != nil {
					return connected, err
				}
			}
		case strings.HasPrefix(msg, "44"):
			return connected, fmt.Errorf("sioclient: connect refused: %s", msg[2:])
		case msg == "41":
			return connected, ErrServerDisconnect
		case strings.HasPrefix(msg, "42"):
			name, data, err := ParseEvent(msg[2:])
			if err != nil {
				return connected, err
			}
			opts.OnEvent(name, data)
		}
	}
}

// read returns the next text message.
func read(conn *websocket.Conn) (string, error) {
	for {
		kind, b, err := conn.ReadMessage()
		if err != nil {
			return "", fmt.Errorf("sioclient: read: %w", err)
		}
		if kind == websocket.TextMessage {
			return string(b), nil
		}
	}
}

// ParseEvent reads an EVENT packet's data (what follows "42", with no
// acknowledgement id): a JSON array of the event name and its arguments.
// It returns the name and the first argument as sent ("null" when none).
func ParseEvent(s string) (string, json.RawMessage, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal([]byte(s), &parts); err != nil || len(parts) == 0 {
		return "", nil, fmt.Errorf("sioclient: bad EVENT %.80q", s)
	}
	var name string
	if err := json.Unmarshal(parts[0], &name); err != nil {
		return "", nil, fmt.Errorf("sioclient: EVENT name is not a string: %.80q", s)
	}
	if len(parts) < 2 {
		return name, json.RawMessage("null"), nil
	}
	return name, parts[1], nil
}
