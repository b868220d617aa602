package bus

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
)

// DefaultMemoryQueue is the default number of events the in-process bus holds
// for its consumer before Publish blocks.
const DefaultMemoryQueue = 4096

// Memory is the in-process bus: one node, no persistence.
type Memory struct {
	queue  chan Event
	seq    atomic.Uint64
	done   chan struct{}
	closed sync.Once
}

var _ Bus = (*Memory)(nil)

// NewMemory returns an in-process bus whose consumer queue holds size events;
// size <= 0 means DefaultMemoryQueue.
func NewMemory(size int) *Memory {
	if size <= 0 {
		size = DefaultMemoryQueue
	}
	return &Memory{queue: make(chan Event, size), done: make(chan struct{})}
}

// Publish queues e for the consumer. It blocks while the queue is full, until
// ctx is done or the bus is closed.
func (m *Memory) Publish(ctx context.Context, e Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	select {
	case <-m.done:
		return ErrClosed
	default:
	}
	e.ID = strconv.FormatUint(m.seq.Add(1), 10)
	select {
	case m.queue <- e:
		return nil
	case <-m.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("bus: publish %s: %w", e.Name, ctx.Err())
	}
}

// Consume delivers queued events to h until ctx is done or the bus closes.
func (m *Memory) Consume(ctx context.Context, h Handler) error {
	for {
		select {
		case e := <-m.queue:
			h(e)
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrClosed
		}
	}
}

// Close stops the bus. It is idempotent.
func (m *Memory) Close() error {
	m.closed.Do(func() { close(m.done) })
	return nil
}
