package bus

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/retry"
)

// Defaults of the Redis bus.
const (
	DefaultStream         = "gateway:events"
	DefaultStreamMaxLen   = 100_000
	DefaultStreamMaxAge   = 24 * time.Hour
	DefaultCanaryInterval = 2 * time.Second
	DefaultCanaryTimeout  = 10 * time.Second
	DefaultReplicaTimeout = 500 * time.Millisecond
	defaultReadBlock      = 5 * time.Second
	minBackoff            = 100 * time.Millisecond
	maxBackoff            = 5 * time.Second
)

// Stream entry fields: an event, or a canary of one node.
const (
	fieldEvent  = "e"
	fieldCanary = "c"
)

// publishScript stores the event only if its dedupe key was not seen, in one
// atomic step: SET NX PX, then XADD. It returns false for a duplicate.
//
// With ARGV[4] = '1' (min-replicas set), a duplicate rewrites its dedupe
// key unchanged (SET XX KEEPTTL): a write, so that the WAIT which follows
// on the same connection waits for the replication of everything up to
// it, the first publish of the key included. Redis's WAIT only covers the
// connection's own last write, and a refused SET NX writes nothing.
var publishScript = redis.NewScript(`
if ARGV[1] ~= '' then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
    if ARGV[4] == '1' then
      redis.call('SET', KEYS[2], '1', 'XX', 'KEEPTTL')
    end
    return false
  end
end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[3])
`)

// RedisOptions configures the Redis bus.
type RedisOptions struct {
	// URL is redis://, rediss:// (TLS) or unix://, with user, password and db
	// number as go-redis parses them; query parameters set go-redis options
	// (dial_timeout, read_timeout, write_timeout, pool_size, ...). A
	// master_name parameter selects Sentinel: the host is a sentinel, more
	// sentinels are given with addr=host:port parameters. Required.
	URL string
	// Stream is the stream key. Zero means DefaultStream.
	Stream string
	// MaxLen trims the stream to about this many entries. Zero means
	// DefaultStreamMaxLen.
	MaxLen int64
	// MaxAge trims entries older than this. Zero means DefaultStreamMaxAge;
	// negative disables age trimming.
	MaxAge time.Duration
	// DedupeWindow is how long a DedupeKey is remembered. Zero means
	// DefaultDedupeWindow.
	DedupeWindow time.Duration
	// CanaryInterval is how often a consuming node writes its canary. Zero
	// means DefaultCanaryInterval.
	CanaryInterval time.Duration
	// CanaryTimeout is how long a canary may take to come back before the
	// node reports itself not ready. Zero means DefaultCanaryTimeout.
	CanaryTimeout time.Duration
	// NodeID names this node in canaries and logs. Zero means
	// hostname-random.
	NodeID string
	// Consumer says this node consumes the stream (it serves Socket.IO):
	// until Consume runs and reads back its first canary, Health reports the
	// node not ready. False (a webhook-only node) means Health checks Redis
	// only.
	Consumer bool
	// MinReplicas is how many replicas must confirm a publish (Redis WAIT
	// after the XADD, on the same connection) before Publish returns nil.
	// Zero (the default) returns once the master has the event: an event
	// not yet replicated when the master dies is lost in a failover.
	MinReplicas int
	// ReplicaTimeout bounds that WAIT. Zero means DefaultReplicaTimeout.
	ReplicaTimeout time.Duration
	// OnReconnect, when set, is called each time the consumer gets Redis back
	// after losing it (for metrics).
	OnReconnect func()
	// OnReplicaTimeout, when set, is called each time fewer than MinReplicas
	// replicas confirmed a write within ReplicaTimeout (for metrics).
	OnReplicaTimeout func()
	// Logger is required.
	Logger *slog.Logger
}

// Redis is the Redis Streams bus (see the package doc for its guarantees).
type Redis struct {
	client redis.UniversalClient
	opts   RedisOptions
	log    *slog.Logger
	dedupe string // key prefix of dedupe keys

	consuming atomic.Bool
	closed    atomic.Bool
	stop      chan struct{} // closed by Close

	mu         sync.Mutex // guards the fields below
	down       error      // consumer's current error, nil when reading fine
	lastID     string     // last stream id the consumer delivered
	canarySeq  uint64     // last canary written
	canarySent time.Time  // when the oldest canary not yet read back was written
	canaryRead uint64     // last own canary read back
	pending    bool       // a canary is out and not yet read back
	newestID   string     // newest stream id seen by the canary loop
}

var (
	_ Bus           = (*Redis)(nil)
	_ HealthChecker = (*Redis)(nil)
)

// NewRedis returns a Redis bus. It does not connect: a Redis that is down at
// start-up makes the node not ready, and it retries.
func NewRedis(opts RedisOptions) (*Redis, error) {
	if opts.Logger == nil {
		return nil, errors.New("bus: RedisOptions needs a Logger")
	}
	client, err := NewRedisClient(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.MaxLen <= 0 {
		opts.MaxLen = DefaultStreamMaxLen
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultStreamMaxAge
	}
	if opts.DedupeWindow <= 0 {
		opts.DedupeWindow = DefaultDedupeWindow
	}
	if opts.CanaryInterval <= 0 {
		opts.CanaryInterval = DefaultCanaryInterval
	}
	if opts.CanaryTimeout <= 0 {
		opts.CanaryTimeout = DefaultCanaryTimeout
	}
	if opts.ReplicaTimeout <= 0 {
		opts.ReplicaTimeout = DefaultReplicaTimeout
	}
	if opts.NodeID == "" {
		opts.NodeID = NewNodeID()
	}
	return &Redis{
		client: client,
		opts:   opts,
		log:    opts.Logger.With(slog.String("component", "bus"), slog.String("node", opts.NodeID)),
		dedupe: opts.Stream + ":dedupe:",
		stop:   make(chan struct{}),
	}, nil
}

// NewRedisClient builds a go-redis client from a URL: a master_name query
// parameter selects Sentinel (go-redis ParseFailoverURL), anything else is
// ParseURL. Errors never contain the password.
func NewRedisClient(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("bus: redis URL does not parse")
	}
	if u.Query().Has("master_name") {
		fo, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("bus: redis sentinel URL %s: %w", u.Redacted(), err)
		}
		q := u.Query()
		fo.DialTimeout = defaultTimeout(q, "dial_timeout", fo.DialTimeout)
		fo.ReadTimeout = defaultTimeout(q, "read_timeout", fo.ReadTimeout)
		fo.WriteTimeout = defaultTimeout(q, "write_timeout", fo.WriteTimeout)
		if !q.Has("max_retries") {
			fo.MaxRetries = -1 // as below
		}
		return redis.NewFailoverClient(fo), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bus: redis URL %s: %w", u.Redacted(), err)
	}
	q := u.Query()
	o.DialTimeout = defaultTimeout(q, "dial_timeout", o.DialTimeout)
	o.ReadTimeout = defaultTimeout(q, "read_timeout", o.ReadTimeout)
	o.WriteTimeout = defaultTimeout(q, "write_timeout", o.WriteTimeout)
	if !q.Has("max_retries") {
		// A retried XADD whose first attempt reached Redis stores the event
		// twice; fail instead and let the producer's caller retry, where
		// dedupe keys make the retry safe.
		o.MaxRetries = -1
	}
	return redis.NewClient(o), nil
}

// defaultTimeout is the URL's value of key when it has one, else 2s.
func defaultTimeout(q url.Values, key string, parsed time.Duration) time.Duration {
	if q.Has(key) {
		return parsed
	}
	return 2 * time.Second
}

// Client returns the underlying client (shared by other Redis-backed parts).
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Prefix is the stream key, which also prefixes the keys of the other
// Redis-backed parts (registry, follows).
func (r *Redis) Prefix() string { return r.opts.Stream }

// entry is the stream form of an event, the value of the entry's "e" field.
// Only this file encodes and decodes it.
type entry struct {
	Name    string          `json:"n"`
	Rooms   []string        `json:"r"`
	Payload json.RawMessage `json:"p"`
	// Received is event.Event.ReceivedAt in Unix milliseconds (0 when
	// unknown).
	Received int64 `json:"t,omitempty"`
}

// encode returns the stream entry of e.
func encode(e event.Event) (string, error) {
	e.Payload = event.ValidUTF8(e.Payload)
	if err := e.Validate(); err != nil {
		return "", err
	}
	var received int64
	if !e.ReceivedAt.IsZero() {
		received = e.ReceivedAt.UnixMilli()
	}
	b, err := json.Marshal(entry{e.Name, e.Rooms, e.Payload, received})
	if err != nil {
		return "", fmt.Errorf("bus: encode %s: %w", e.Name, err)
	}
	return string(b), nil
}

// AddArgs returns the XADD that appends e to the stream (trimmed like every
// publish), for a part that must append events in one MULTI transaction
// with its own state, as the registry does with batch progress. Such
// events bypass the dedupe key.
func (r *Redis) AddArgs(e event.Event) (*redis.XAddArgs, error) {
	value, err := encode(e)
	if err != nil {
		return nil, err
	}
	return &redis.XAddArgs{Stream: r.opts.Stream, MaxLen: r.opts.MaxLen, Approx: true, Values: []string{fieldEvent, value}}, nil
}

// Publish stores e in the stream. It returns nil only once Redis has the
// event (and, with MinReplicas, once that many replicas confirmed it),
// ErrDuplicate for a dedupe key already seen, and an *UnavailableError when
// Redis cannot be reached (nothing stored) or the replicas did not confirm
// in time (wrapping a *ReplicaError: the event is on the master and may
// still be delivered).
//
// A retry after a *ReplicaError: an event with a DedupeKey is idempotent.
// Its dedupe key and its XADD were one script, so they replicate, or are
// lost in a failover, together: the retry either finds the key and answers
// ErrDuplicate once the replicas confirm the first publish (which they did
// not yet, else it is one more *ReplicaError), or finds neither and
// publishes the event anew. An event without a DedupeKey is stored again by
// a retry: when the first one survived, it is delivered twice.
func (r *Redis) Publish(ctx context.Context, e event.Event) error {
	entry, err := encode(e)
	if err != nil {
		return err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	ttl := ""
	dedupeKey := r.dedupe
	if e.DedupeKey != "" {
		ttl = strconv.FormatInt(r.opts.DedupeWindow.Milliseconds(), 10)
		dedupeKey += e.DedupeKey
	}
	keys := []string{r.opts.Stream, dedupeKey}
	if r.opts.MinReplicas <= 0 {
		err = publishScript.Run(ctx, r.client, keys, ttl, r.opts.MaxLen, entry, "0").Err()
		return publishResult(e, err)
	}
	// WAIT counts the replicas that acknowledged the connection's last
	// write: it must run on the connection that ran the script, not on
	// whichever one the pool hands out next.
	conn, err := r.conn(ctx)
	if err != nil {
		return &UnavailableError{Err: fmt.Errorf("publish %s: %w", e.Name, err)}
	}
	defer conn.Close()
	err = publishScript.Run(ctx, conn, keys, ttl, r.opts.MaxLen, entry, "1").Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return publishResult(e, err)
	}
	// A duplicate waits too: the script rewrote its key, so the WAIT
	// confirms the first publish of the key as well. A retry after a
	// replica timeout thus answers "duplicate" only once the event it
	// repeats is on the replicas.
	if werr := r.WaitReplicas(ctx, conn); werr != nil {
		return werr
	}
	return publishResult(e, err)
}

// publishResult maps the publish script's error.
func publishResult(e event.Event, err error) error {
	switch {
	case errors.Is(err, redis.Nil):
		return ErrDuplicate
	case err != nil:
		return &UnavailableError{Err: fmt.Errorf("publish %s: %w", e.Name, err)}
	}
	return nil
}

// conn returns a connection of its own from the client's pool; the caller
// closes it (which returns it to the pool).
func (r *Redis) conn(ctx context.Context) (*redis.Conn, error) {
	c, ok := r.client.(*redis.Client)
	if !ok {
		return nil, fmt.Errorf("bus: client %T has no single connections", r.client)
	}
	return c.Conn(), ctx.Err()
}

// MinReplicas is RedisOptions.MinReplicas: zero when writes are not
// confirmed by replicas.
func (r *Redis) MinReplicas() int { return r.opts.MinReplicas }

// WaitReplicas runs WAIT on c, the connection (or transaction) that made
// the writes to confirm, when MinReplicas is set: nil once MinReplicas
// replicas acknowledged every write c made, an *UnavailableError wrapping a
// *ReplicaError when fewer did within ReplicaTimeout (the writes stay on
// the master and may still replicate, or be lost in a failover), an
// *UnavailableError when Redis cannot be reached.
func (r *Redis) WaitReplicas(ctx context.Context, c Waiter) error {
	if r.opts.MinReplicas <= 0 {
		return nil
	}
	got, err := c.Wait(ctx, r.opts.MinReplicas, r.opts.ReplicaTimeout).Result()
	if err != nil {
		return &UnavailableError{Err: fmt.Errorf("wait for replicas: %w", err)}
	}
	if got < int64(r.opts.MinReplicas) {
		if r.opts.OnReplicaTimeout != nil {
			r.opts.OnReplicaTimeout()
		}
		return &UnavailableError{Err: &ReplicaError{Want: r.opts.MinReplicas, Got: int(got), Timeout: r.opts.ReplicaTimeout}}
	}
	return nil
}

// Waiter runs Redis WAIT: a *redis.Conn or a *redis.Tx.
type Waiter interface {
	Wait(ctx context.Context, numReplicas int, timeout time.Duration) *redis.IntCmd
}

// ReplicaError says a write was not confirmed by enough replicas in time.
// The write stayed on the master: it may still reach the replicas and be
// delivered, or be lost if the master fails first. See Publish for what a
// retry does.
type ReplicaError struct {
	Want, Got int
	Timeout   time.Duration
}

func (e *ReplicaError) Error() string {
	return fmt.Sprintf("%d of %d replicas confirmed within %s", e.Got, e.Want, e.Timeout)
}

// Consume reads the stream from its current end and delivers every event to
// h, in order, until ctx is done or the bus closes. Connection losses are
// retried with backoff and reading resumes after the last delivered id.
func (r *Redis) Consume(ctx context.Context, h Handler) error {
	if !r.consuming.CompareAndSwap(false, true) {
		return errors.New("bus: Consume already running")
	}
	defer r.consuming.Store(false)

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The consumer has a client of its own: its blocking XREAD never holds a
	// connection publishers need, and closing it interrupts the read at once
	// when ctx ends.
	reader, err := NewRedisClient(r.opts.URL)
	if err != nil {
		return err
	}
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-r.stop:
			cancel()
		}
		_ = reader.Close()
	})

	start, err := r.tail(ctx, reader)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.lastID = start
	r.mu.Unlock()
	wg.Go(func() { r.canaries(ctx) })

	backoff := retry.Backoff{Min: minBackoff, Max: maxBackoff}
	batch := make([]event.Event, 0, MaxBatch)
	for {
		if ctx.Err() != nil || r.closed.Load() {
			return r.stopErr(ctx)
		}
		r.mu.Lock()
		last := r.lastID
		r.mu.Unlock()
		streams, err := reader.XRead(ctx, &redis.XReadArgs{
			Streams: []string{r.opts.Stream, last},
			Count:   MaxBatch,
			Block:   defaultReadBlock,
		}).Result()
		if errors.Is(err, redis.Nil) {
			r.recovered(ctx, last)
			backoff.Reset()
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return r.stopErr(ctx)
			}
			r.failed(err, last)
			if !retry.Sleep(ctx, backoff.Next()) {
				return r.stopErr(ctx)
			}
			continue
		}
		r.recovered(ctx, last)
		backoff.Reset()
		for _, s := range streams {
			batch = r.deliver(s.Messages, h, batch)
		}
	}
}

// tail returns the id of the stream's newest entry ("0-0" when empty),
// retrying with backoff while Redis is unreachable.
func (r *Redis) tail(ctx context.Context, reader redis.UniversalClient) (string, error) {
	backoff := retry.Backoff{Min: minBackoff, Max: maxBackoff}
	for {
		msgs, err := reader.XRevRangeN(ctx, r.opts.Stream, "+", "-", 1).Result()
		if err == nil {
			if r.setDown(nil) {
				r.log.Info("redis reachable: consumer starting")
			}
			if len(msgs) == 0 {
				return "0-0", nil
			}
			return msgs[0].ID, nil
		}
		if ctx.Err() != nil {
			return "", r.stopErr(ctx)
		}
		if r.setDown(err) {
			r.log.Error("redis unreachable at start-up: node not ready, retrying with backoff", slog.String("error", err.Error()))
		}
		if !retry.Sleep(ctx, backoff.Next()) {
			return "", r.stopErr(ctx)
		}
	}
}

// deliver hands the events of one read to h in one batch, in order, and
// records this node's canaries among them; the consumer's position moves
// past each entry once h has returned for it. It returns batch for reuse.
func (r *Redis) deliver(msgs []redis.XMessage, h Handler, batch []event.Event) []event.Event {
	batch = batch[:0]
	// handOver gives h the events gathered so far, then moves the
	// consumer's position to id.
	handOver := func(id string) {
		if len(batch) > 0 {
			h(batch)
			clear(batch) // let delivered payloads go
			batch = batch[:0]
		}
		r.mu.Lock()
		r.lastID = id
		r.mu.Unlock()
	}
	for i, msg := range msgs {
		if c, ok := msg.Values[fieldCanary].(string); ok {
			// A canary says every event before it was delivered: the
			// events gathered so far go first.
			handOver(msg.ID)
			r.canaryBack(c)
			continue
		}
		if ev, ok := r.decode(msg); ok {
			batch = append(batch, ev)
		}
		if i == len(msgs)-1 {
			handOver(msg.ID)
		}
	}
	return batch
}

// decode returns the event of a stream entry; false for a canary, or for an
// entry that is not an event (logged: only this package writes entries).
func (r *Redis) decode(msg redis.XMessage) (event.Event, bool) {
	if _, ok := msg.Values[fieldCanary]; ok {
		return event.Event{}, false
	}
	raw, ok := msg.Values[fieldEvent].(string)
	if !ok {
		r.log.Error("stream entry without an event: skipped", slog.String("id", msg.ID))
		return event.Event{}, false
	}
	var se entry
	if err := json.Unmarshal([]byte(raw), &se); err != nil {
		r.log.Error("stream entry does not decode: skipped", slog.String("id", msg.ID), slog.String("error", err.Error()))
		return event.Event{}, false
	}
	ev := event.Event{ID: msg.ID, Name: se.Name, Rooms: se.Rooms, Payload: event.ValidUTF8(se.Payload)} // an entry written by another hand
	if ms, _ := splitID(msg.ID); ms > 0 {
		ev.PublishedAt = time.UnixMilli(int64(ms))
	}
	if se.Received > 0 {
		ev.ReceivedAt = time.UnixMilli(se.Received)
	}
	return ev, true
}

// failed records a consumer error, logging only the first of a run.
func (r *Redis) failed(err error, last string) {
	if r.setDown(err) {
		r.log.Error("redis lost while consuming: node not ready; will resume after the last delivered id when back",
			slog.String("last_id", last), slog.String("error", err.Error()))
	}
}

// recovered clears the error state; after an outage it logs the resume and
// checks whether the stream trimmed entries this node never read.
func (r *Redis) recovered(ctx context.Context, last string) {
	if !r.setDown(nil) {
		return
	}
	r.log.Info("redis back: consumer resumed", slog.String("from_id", last))
	if r.opts.OnReconnect != nil {
		r.opts.OnReconnect()
	}
	info, err := r.client.XInfoStream(ctx, r.opts.Stream).Result()
	if err == nil && info.MaxDeletedEntryID != "" && compareIDs(info.MaxDeletedEntryID, last) > 0 {
		r.log.Error("events were trimmed from the stream before this node read them: they are lost for its clients",
			slog.String("last_read_id", last), slog.String("max_deleted_id", info.MaxDeletedEntryID))
	}
}

// setDown stores the consumer's state and reports whether it changed
// between failing and working.
func (r *Redis) setDown(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := (r.down == nil) != (err == nil)
	r.down = err
	return changed
}

// canaries writes a canary every interval and trims the stream by age.
func (r *Redis) canaries(ctx context.Context) {
	tick := time.NewTicker(r.opts.CanaryInterval)
	defer tick.Stop()
	lastTrim := time.Time{}
	for {
		r.writeCanary(ctx)
		if r.opts.MaxAge > 0 && time.Since(lastTrim) > time.Minute {
			lastTrim = time.Now()
			minID := strconv.FormatInt(time.Now().Add(-r.opts.MaxAge).UnixMilli(), 10) + "-0"
			if err := r.client.XTrimMinIDApprox(ctx, r.opts.Stream, minID, 0).Err(); err != nil && ctx.Err() == nil {
				r.log.Debug("stream trim by age failed", slog.String("error", err.Error()))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Delivered is the id of the last stream entry the consumer is done with
// (the handler returned for an event; a canary read): every event up to it
// was delivered. Before the consumer starts it is "".
func (r *Redis) Delivered() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastID
}

// Lag is how far this node's consumer is behind the stream: the time
// between the newest entry (as of the last canary round) and the last entry
// delivered here. Zero when caught up or unknown.
func (r *Redis) Lag() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.newestID == "" || r.lastID == "" || compareIDs(r.newestID, r.lastID) <= 0 {
		return 0
	}
	newest, _ := splitID(r.newestID)
	last, _ := splitID(r.lastID)
	return time.Duration(newest-last) * time.Millisecond
}

func (r *Redis) writeCanary(ctx context.Context) {
	r.mu.Lock()
	r.canarySeq++
	seq := r.canarySeq
	if !r.pending {
		r.pending = true
		r.canarySent = time.Now()
	}
	r.mu.Unlock()
	// The canary's own id is the stream's newest entry now: what the
	// consumer must reach to be caught up (Lag).
	id, err := r.client.XAdd(ctx, &redis.XAddArgs{
		Stream: r.opts.Stream,
		MaxLen: r.opts.MaxLen,
		Approx: true,
		Values: []string{fieldCanary, r.opts.NodeID + "/" + strconv.FormatUint(seq, 10)},
	}).Result()
	if err == nil {
		r.mu.Lock()
		r.newestID = id
		r.mu.Unlock()
	}
	if err != nil && ctx.Err() == nil {
		r.log.Debug("canary not written", slog.String("error", err.Error()))
	}
}

// canaryBack records a canary read from the stream if it is this node's.
func (r *Redis) canaryBack(value string) {
	node, seqText, ok := strings.Cut(value, "/")
	if !ok || node != r.opts.NodeID {
		return
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq > r.canaryRead {
		r.canaryRead = seq
	}
	if r.canaryRead >= r.canarySeq {
		r.pending = false
	} else {
		// Newer canaries are out; the clock restarts at the one just read.
		r.canarySent = time.Now()
	}
}

// Health implements HealthChecker: Redis answers, and on a consuming node
// the consumer is reading and its canary came back in time.
func (r *Redis) Health(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	if !r.consuming.Load() {
		if r.opts.Consumer {
			return errors.New("consumer not running")
		}
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down != nil {
		return fmt.Errorf("consumer failing: %w", r.down)
	}
	if r.canaryRead == 0 {
		return errors.New("consumer has not read its first canary yet")
	}
	if r.pending {
		if late := time.Since(r.canarySent); late > r.opts.CanaryTimeout {
			return fmt.Errorf("consumer stalled: canary written %s ago not read back (timeout %s)", late.Round(time.Millisecond), r.opts.CanaryTimeout)
		}
	}
	return nil
}

// Close stops Consume and closes the client. It is idempotent.
func (r *Redis) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(r.stop)
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("bus: close redis: %w", err)
	}
	return nil
}

func (r *Redis) stopErr(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// compareIDs orders two stream ids "ms-seq".
func compareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return cmp.Or(cmp.Compare(am, bm), cmp.Compare(as, bs))
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}

// NewNodeID names a process in the cluster: its host name and a random
// suffix (pods restarted under one name stay distinct).
func NewNodeID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "node"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
