package flaskbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshgen/gateway/flaskqueue"
	"github.com/meshgen/gateway/retry"
)

// DefaultChannel is Flask-SocketIO's default message-queue channel.
const DefaultChannel = "flask-socketio"

// Defaults of the optional Options fields.
const (
	// DefaultPingInterval: after this long with nothing from Redis the
	// subscription is pinged; after three times this long it is declared
	// dead, closed and redialled.
	DefaultPingInterval = 5 * time.Second
	// DefaultMaxMessageBytes caps the size of one queue message.
	DefaultMaxMessageBytes = 16 << 20
	// DefaultMaxRetryDelay caps the delay between two attempts to reach
	// Redis while the subscription is down.
	DefaultMaxRetryDelay = 5 * time.Second
)

const (
	minRetryDelay = 100 * time.Millisecond
	// deadAfter is how many ping intervals of silence kill a connection.
	deadAfter = 3
	// stuckAfter: a read blocked this long before the subscription is
	// confirmed is abandoned.
	stuckAfter = time.Minute
)

// Emitter is what the bridge drives: this node's Socket.IO server.
// *gateway.Server satisfies it. Every method acts on this node's clients
// only; the bridge calls them from one goroutine, in channel order.
type Emitter interface {
	// Emit sends event with args (each one JSON value) to the clients in
	// any of rooms, or to every client when broadcast is true, skipping
	// the clients in any of except (rooms or socket ids).
	Emit(event string, rooms []string, broadcast bool, except []string, args []json.RawMessage)
	// CloseRoom makes every client leave room.
	CloseRoom(room string)
	// JoinRoom puts socket sid in room; false when sid is not connected
	// to this node.
	JoinRoom(sid, room string) bool
	// LeaveRoom takes socket sid out of room; false when sid is not
	// connected to this node.
	LeaveRoom(sid, room string) bool
	// DisconnectSocket disconnects socket sid; false when sid is not
	// connected to this node.
	DisconnectSocket(sid string) bool
}

// Options configures a Bridge. Client and Emitter are required.
type Options struct {
	// Client makes the subscription (a dedicated connection, outside the
	// client's pool).
	Client redis.UniversalClient
	// Channel is the pub/sub channel; default DefaultChannel. It must be
	// the channel the Flask app's SocketIO(channel=...) uses
	// (Flask-SocketIO's default is "flask-socketio").
	Channel string
	// Emitter receives what the messages ask for.
	Emitter Emitter
	// Logger; default slog.Default().
	Logger *slog.Logger

	// PingInterval: after this long with nothing received the bridge
	// pings Redis on the subscription; with nothing received (not even
	// the pong) for three intervals the connection is treated as dead,
	// closed and redialled. Default DefaultPingInterval.
	PingInterval time.Duration
	// MaxMessageBytes: larger messages are dropped undecoded
	// (Dropped.TooLarge). Default DefaultMaxMessageBytes.
	MaxMessageBytes int
	// MaxRetryDelay caps the backoff between attempts to reach Redis
	// while the subscription is down. Default DefaultMaxRetryDelay.
	MaxRetryDelay time.Duration
	// Limits bounds the decoding of one message; zero fields take
	// flaskqueue's defaults.
	Limits flaskqueue.Limits
}

// Stats are counters since New. Every message read from the channel is
// counted in Received and in exactly one of Emitted, Applied, Ignored or
// a Dropped reason.
type Stats struct {
	// Received counts messages read from the channel.
	Received uint64
	// Emitted counts emit messages handed to the Emitter.
	Emitted uint64
	// Applied counts close_room messages, and enter_room, leave_room and
	// disconnect messages whose sid is connected to this node.
	Applied uint64
	// Ignored counts callback messages, and enter_room, leave_room and
	// disconnect messages whose sid is not connected to this node.
	Ignored uint64
	// Dropped counts refused messages, by reason.
	Dropped Dropped

	// Subscribed tells whether the subscription is confirmed right now.
	Subscribed bool
	// Subscriptions counts subscription confirmations: 1 after start-up,
	// one more after each outage.
	Subscriptions uint64
	// Outages counts the times the subscription was lost (or could not be
	// made).
	Outages uint64
}

// Dropped counts refused messages by reason.
type Dropped struct {
	// Unsafe: pickles that would import, construct or call something
	// (flaskqueue.ErrUnsafePickle): someone other than Flask-SocketIO
	// publishes on the channel.
	Unsafe uint64
	// Malformed: neither a JSON nor a pickle message, or one lacking a
	// required key or with a value of the wrong type.
	Malformed uint64
	// Unsupported: a well-formed message with an unknown method.
	Unsupported uint64
	// ForeignNamespace: messages for a namespace other than "/", which
	// the gateway does not serve.
	ForeignNamespace uint64
	// Binary: emits carrying bytes (Socket.IO binary attachments), which
	// the gateway does not forward.
	Binary uint64
	// NotJSON: emits carrying a value with no JSON form (NaN, ±Inf).
	NotJSON uint64
	// TooLarge: messages above MaxMessageBytes or beyond Limits.
	TooLarge uint64
	// Failed: messages whose handling made the Emitter panic.
	Failed uint64
}

// Total is the sum of every reason.
func (d Dropped) Total() uint64 {
	return d.Unsafe + d.Malformed + d.Unsupported + d.ForeignNamespace + d.Binary + d.NotJSON + d.TooLarge + d.Failed
}

// phase of the subscription.
type phase uint8

const (
	phaseIdle       phase = iota // Run not called yet
	phaseConnecting              // Run started, no confirmation yet
	phaseUp                      // subscription confirmed
	phaseDown                    // lost, being re-established
	phaseStopped                 // Run returned
)

type state struct {
	phase phase
	since time.Time
	err   error // why not up (phaseConnecting, phaseDown)
}

// Bridge consumes the Flask-SocketIO channel for one node. See the package
// documentation.
type Bridge struct {
	client   redis.UniversalClient
	channel  string
	em       Emitter
	log      *slog.Logger
	ping     time.Duration
	maxBytes int
	maxDelay time.Duration
	limits   flaskqueue.Limits

	running atomic.Bool

	mu    sync.Mutex // guards st
	st    state
	cnt   counters
	lastT atomic.Int64 // unix nanoseconds of the last thing read from Redis
}

type counters struct {
	received, emitted, applied, ignored     atomic.Uint64
	unsafe, malformed, unsupported, foreign atomic.Uint64
	binary, notJSON, tooLarge, failed       atomic.Uint64
	subscriptions, outages                  atomic.Uint64
}

// New checks opts and returns a Bridge; nothing happens until Run.
func New(opts Options) (*Bridge, error) {
	if opts.Client == nil {
		return nil, errors.New("flaskbridge: Options.Client is required")
	}
	if opts.Emitter == nil {
		return nil, errors.New("flaskbridge: Options.Emitter is required")
	}
	b := &Bridge{
		client:   opts.Client,
		channel:  opts.Channel,
		em:       opts.Emitter,
		log:      opts.Logger,
		ping:     opts.PingInterval,
		maxBytes: opts.MaxMessageBytes,
		maxDelay: opts.MaxRetryDelay,
		limits:   opts.Limits,
	}
	if b.channel == "" {
		b.channel = DefaultChannel
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With(slog.String("component", "flaskbridge"), slog.String("channel", b.channel))
	if b.ping <= 0 {
		b.ping = DefaultPingInterval
	}
	if b.maxBytes <= 0 {
		b.maxBytes = DefaultMaxMessageBytes
	}
	if b.maxDelay <= 0 {
		b.maxDelay = DefaultMaxRetryDelay
	}
	if b.maxDelay < minRetryDelay {
		b.maxDelay = minRetryDelay
	}
	b.st = state{phase: phaseIdle, since: time.Now()}
	return b, nil
}

// Stats returns a snapshot of the counters.
func (b *Bridge) Stats() Stats {
	c := &b.cnt
	up := b.isUp()
	return Stats{
		Received: c.received.Load(),
		Emitted:  c.emitted.Load(),
		Applied:  c.applied.Load(),
		Ignored:  c.ignored.Load(),
		Dropped: Dropped{
			Unsafe:           c.unsafe.Load(),
			Malformed:        c.malformed.Load(),
			Unsupported:      c.unsupported.Load(),
			ForeignNamespace: c.foreign.Load(),
			Binary:           c.binary.Load(),
			NotJSON:          c.notJSON.Load(),
			TooLarge:         c.tooLarge.Load(),
			Failed:           c.failed.Load(),
		},
		Subscribed:    up,
		Subscriptions: c.subscriptions.Load(),
		Outages:       c.outages.Load(),
	}
}

// Health is nil while the subscription is confirmed, and otherwise an
// error saying why not: Run not started, not subscribed yet (and the last
// error), subscription lost (since when, and why), or stopped.
func (b *Bridge) Health(context.Context) error {
	b.mu.Lock()
	st := b.st
	b.mu.Unlock()
	switch st.phase {
	case phaseUp:
		return nil
	case phaseIdle:
		return fmt.Errorf("flask queue: not started")
	case phaseStopped:
		return fmt.Errorf("flask queue: stopped")
	case phaseConnecting:
		if st.err != nil {
			return fmt.Errorf("flask queue: not subscribed to %q yet: %v", b.channel, st.err)
		}
		return fmt.Errorf("flask queue: not subscribed to %q yet", b.channel)
	default:
		return fmt.Errorf("flask queue: subscription to %q lost %s ago: %v", b.channel, time.Since(st.since).Round(time.Millisecond), st.err)
	}
}

// errSilent is why a connection that stopped answering is abandoned.
var errSilent = errors.New("no answer from redis on the subscription (ping unanswered)")

// Run subscribes and serves the channel until ctx is done, then returns
// nil. It re-establishes the subscription by itself whenever it is lost:
// a connection error makes it redial and resubscribe with a capped
// exponential backoff; a connection that stays silent through pings is
// closed and redialled. It returns an error only when called while
// another Run of the same Bridge is running. Close the Client only after
// Run has returned.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("flaskbridge: Run is already running")
	}
	defer b.running.Store(false)
	b.setState(state{phase: phaseConnecting, since: time.Now()})
	defer func() { b.setState(state{phase: phaseStopped, since: time.Now()}) }()

	delay := minRetryDelay
	for {
		err := b.session(ctx, &delay)
		if ctx.Err() != nil {
			return nil
		}
		b.down(err)
		if !retry.Sleep(ctx, delay) {
			return nil
		}
		delay = min(delay*2, b.maxDelay)
	}
}

// session serves one go-redis PubSub until ctx is done (nil) or the
// watchdog abandons it (the reason). go-redis redials and resubscribes
// within one PubSub after connection errors; a fresh PubSub is only needed
// when the watchdog had to close a silent one.
func (b *Bridge) session(ctx context.Context, delay *time.Duration) error {
	ps := b.client.Subscribe(ctx, b.channel) // on error the channel is kept and subscribed on the next dial
	defer ps.Close()
	b.touch()

	var abandoned atomic.Pointer[error]
	done := make(chan struct{})
	defer close(done)
	go b.watchdog(ctx, ps, done, &abandoned)

	for {
		msg, err := ps.Receive(ctx)
		b.touch()
		if ctx.Err() != nil {
			return nil
		}
		if p := abandoned.Load(); p != nil {
			return *p
		}
		if err != nil {
			if errors.Is(err, redis.ErrClosed) {
				return err
			}
			// go-redis has already dropped the connection; the next
			// Receive dials again and resubscribes.
			b.down(err)
			if !retry.Sleep(ctx, *delay) {
				return nil
			}
			*delay = min(*delay*2, b.maxDelay)
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			b.handle([]byte(m.Payload))
			b.touch() // the watchdog measures time spent waiting, not handling
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == b.channel {
				*delay = minRetryDelay
				b.up()
			}
		case *redis.Pong:
			// liveness only
		}
	}
}

// watchdog pings a quiet subscription and abandons one that stays silent
// (a half-open TCP connection never reports an error by itself); it also
// closes the PubSub when ctx is done, which unblocks Receive.
//
// While the subscription is not confirmed the read loop is dialling (go-redis
// retries a failed dial itself, and pinging would dial too), so only a read
// blocked for stuckAfter is abandoned then: a server that accepts the
// connection but never confirms the subscription.
func (b *Bridge) watchdog(ctx context.Context, ps *redis.PubSub, done <-chan struct{}, abandoned *atomic.Pointer[error]) {
	t := time.NewTicker(b.ping)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			_ = ps.Close()
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, b.lastT.Load()))
		up := b.isUp()
		switch {
		case up && idle >= deadAfter*b.ping, !up && idle >= max(deadAfter*b.ping, stuckAfter):
			err := errSilent
			abandoned.Store(&err)
			_ = ps.Close()
			return
		case up && idle >= b.ping:
			pctx, cancel := context.WithTimeout(ctx, b.ping)
			_ = ps.Ping(pctx) // the pong, if any, comes back through Receive
			cancel()
		}
	}
}

func (b *Bridge) isUp() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.phase == phaseUp
}

func (b *Bridge) touch() { b.lastT.Store(time.Now().UnixNano()) }

func (b *Bridge) setState(s state) {
	b.mu.Lock()
	b.st = s
	b.mu.Unlock()
}

// down records that the subscription is not established, logging once
// per outage.
func (b *Bridge) down(err error) {
	b.mu.Lock()
	prev := b.st
	if prev.phase == phaseUp {
		b.st = state{phase: phaseDown, since: time.Now(), err: err}
	} else {
		b.st.err = err
	}
	b.mu.Unlock()
	switch prev.phase {
	case phaseUp:
		b.cnt.outages.Add(1)
		b.log.Warn("flask queue subscription lost; messages published until it is back are not delivered by this node", slog.Any("error", err))
	case phaseConnecting:
		if prev.err == nil {
			b.cnt.outages.Add(1)
			b.log.Warn("flask queue: cannot subscribe yet; retrying", slog.Any("error", err))
		} else {
			b.log.Debug("flask queue: still cannot subscribe", slog.Any("error", err))
		}
	default:
		b.log.Debug("flask queue: still down", slog.Any("error", err))
	}
}

// up records a subscription confirmation.
func (b *Bridge) up() {
	b.mu.Lock()
	prev := b.st
	b.st = state{phase: phaseUp, since: time.Now()}
	b.mu.Unlock()
	b.cnt.subscriptions.Add(1)
	switch prev.phase {
	case phaseDown:
		b.log.Info("flask queue subscription back", slog.Duration("outage", time.Since(prev.since).Round(time.Millisecond)))
	case phaseConnecting:
		b.log.Info("flask queue subscribed")
	}
}
