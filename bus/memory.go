package bus

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgen/gateway/event"
)

// Defaults of the in-process bus.
const (
	DefaultMemoryQueue  = 4096
	DefaultDedupeWindow = 24 * time.Hour
	// maxMemoryDedupeKeys bounds the in-process dedupe set; past it the
	// oldest keys are forgotten first.
	maxMemoryDedupeKeys = 1 << 20
)

// MemoryOptions configures the in-process bus.
type MemoryOptions struct {
	// Queue is how many events wait for the consumer before Publish blocks.
	// Zero means DefaultMemoryQueue.
	Queue int
	// DedupeWindow is how long a DedupeKey is remembered. Zero means
	// DefaultDedupeWindow.
	DedupeWindow time.Duration
}

// Memory is the in-process bus: one node, no persistence. Its event ids
// are sequence numbers ("1", "2", ...) given in delivery order.
type Memory struct {
	queue     chan event.Event
	seq       atomic.Uint64 // ids given by Consume
	published atomic.Uint64 // events queued by Publish
	delivered atomic.Uint64 // id of the last event the handler returned from
	done      chan struct{}
	closed    sync.Once
	window    time.Duration

	mu    sync.Mutex // guards seen and order
	seen  map[string]time.Time
	order []claimed // claims oldest first, for expiry
}

// claimed is one dedupe claim: a key and when it was claimed.
type claimed struct {
	key string
	at  time.Time
}

var (
	_ Bus           = (*Memory)(nil)
	_ HealthChecker = (*Memory)(nil)
)

// NewMemory returns an in-process bus.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.Queue <= 0 {
		opts.Queue = DefaultMemoryQueue
	}
	if opts.DedupeWindow <= 0 {
		opts.DedupeWindow = DefaultDedupeWindow
	}
	return &Memory{
		queue:  make(chan event.Event, opts.Queue),
		done:   make(chan struct{}),
		window: opts.DedupeWindow,
		seen:   make(map[string]time.Time),
	}
}

// Publish queues e for the consumer. It blocks while the queue is full, until
// ctx is done or the bus is closed.
func (m *Memory) Publish(ctx context.Context, e event.Event) error {
	e.Payload = event.ValidUTF8(e.Payload)
	if err := e.Validate(); err != nil {
		return err
	}
	select {
	case <-m.done:
		return ErrClosed
	default:
	}
	if e.DedupeKey != "" && !m.claim(e.DedupeKey) {
		return ErrDuplicate
	}
	e.PublishedAt = time.Now()
	select {
	case m.queue <- e:
		m.published.Add(1)
		return nil
	case <-m.done:
		m.release(e.DedupeKey)
		return ErrClosed
	case <-ctx.Done():
		m.release(e.DedupeKey)
		return fmt.Errorf("bus: publish %s: %w", e.Name, ctx.Err())
	}
}

// claim records key as seen; false when it was seen within the window.
func (m *Memory) claim(key string) bool {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(now)
	if at, ok := m.seen[key]; ok && now.Sub(at) < m.window {
		return false
	}
	m.seen[key] = now
	m.order = append(m.order, claimed{key, now})
	return true
}

// release forgets key after a publish that did not happen.
func (m *Memory) release(key string) {
	if key == "" {
		return
	}
	m.mu.Lock()
	delete(m.seen, key)
	m.mu.Unlock()
}

// expire forgets claims older than the window, and the oldest ones while
// there are more than maxMemoryDedupeKeys; m.mu must be held. A key claimed
// again later has a newer entry, so an old entry only deletes its own claim.
func (m *Memory) expire(now time.Time) {
	for len(m.order) > 0 {
		oldest := m.order[0]
		if now.Sub(oldest.at) < m.window && len(m.seen) <= maxMemoryDedupeKeys {
			return
		}
		if m.seen[oldest.key] == oldest.at {
			delete(m.seen, oldest.key)
		}
		m.order = m.order[1:]
	}
}

// Consume delivers queued events to h until ctx is done or the bus closes:
// each call gets the events already queued, up to MaxBatch.
func (m *Memory) Consume(ctx context.Context, h Handler) error {
	batch := make([]event.Event, 0, MaxBatch)
	for {
		select {
		case e := <-m.queue:
			batch = append(batch[:0], m.number(e))
		drain:
			for len(batch) < MaxBatch {
				select {
				case e := <-m.queue:
					batch = append(batch, m.number(e))
				default:
					break drain
				}
			}
			h(batch)
			m.delivered.Store(m.seq.Load())
			clear(batch) // let delivered payloads go
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrClosed
		}
	}
}

// number gives e its id. It is given here, not in Publish: concurrent
// publishers may queue in another order than they would have numbered.
func (m *Memory) number(e event.Event) event.Event {
	e.ID = strconv.FormatUint(m.seq.Add(1), 10)
	return e
}

// LastID is a position every event queued so far is at or before: once
// the consumer has delivered the event with this id, it has delivered
// every event whose Publish returned before LastID was called.
func (m *Memory) LastID() string { return strconv.FormatUint(m.published.Load(), 10) }

// Delivered is the id of the last event the consumer's handler returned
// from ("0" before the first).
func (m *Memory) Delivered() string { return strconv.FormatUint(m.delivered.Load(), 10) }

// Health implements HealthChecker: the in-process bus works while open.
func (m *Memory) Health(context.Context) error {
	select {
	case <-m.done:
		return ErrClosed
	default:
		return nil
	}
}

// Close stops the bus. It is idempotent.
func (m *Memory) Close() error {
	m.closed.Do(func() { close(m.done) })
	return nil
}
