package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/eventname"
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/webhook"
)

// Memory is the single-node Store: entries expire after the TTL and are
// lost on restart.
type Memory struct {
	pub bus.Publisher
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex // guards jobs and batches; held across JobEnded's publishes to keep their order
	jobs    map[string]memJob
	batches map[string]*memBatch
}

type memJob struct {
	owner   webhook.Owner
	expires time.Time
}

type memBatch struct {
	total, completed, failed int
	jobs, ended              map[string]struct{}
	expires                  time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an in-process Store publishing batch events to pub.
func NewMemory(pub bus.Publisher, ttl time.Duration) *Memory {
	return &Memory{pub: pub, ttl: ttl, now: time.Now, jobs: map[string]memJob{}, batches: map[string]*memBatch{}}
}

// Resolve implements webhook.Resolver.
func (m *Memory) Resolve(_ context.Context, job string) (webhook.Owner, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[job]
	if !ok || m.now().After(j.expires) {
		delete(m.jobs, job)
		return webhook.Owner{}, webhook.ErrJobNotFound
	}
	return j.owner, nil
}

// Register implements Store.
func (m *Memory) Register(_ context.Context, jobs []Job) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	exp := m.now().Add(m.ttl)
	for _, j := range jobs {
		m.jobs[j.ID.Key] = memJob{owner: webhook.Owner{Project: j.Project, Batch: j.Batch}, expires: exp}
		if j.Batch.Key != "" {
			b := m.batch(j.Batch.Key)
			b.jobs[j.ID.Key] = struct{}{}
		}
	}
	return nil
}

// RegisterBatch implements Store.
func (m *Memory) RegisterBatch(_ context.Context, batch rooms.ID, total int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batch(batch.Key).total = total
	return nil
}

// JobEnded implements Store.
func (m *Memory) JobEnded(ctx context.Context, end JobEnd) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.batch(end.Batch.Key)
	if _, seen := b.ended[end.Job.Key]; seen {
		return false, nil
	}
	completed, failed := b.completed, b.failed
	if end.Failed {
		failed++
	} else {
		completed++
	}
	total := max(b.total, len(b.jobs))
	status, totalJobs := batchState(completed, failed, total)
	events, err := batchEvents(end, completed, failed, status, totalJobs)
	if err != nil {
		return false, err
	}
	for _, e := range events {
		if err := m.pub.Publish(ctx, e); err != nil {
			return false, fmt.Errorf("registry: publish %s: %w", e.Name, err)
		}
	}
	// Counted only once both events are on the bus: a failure above leaves
	// the job uncounted and the sender's retry counts it.
	b.ended[end.Job.Key] = struct{}{}
	b.completed, b.failed = completed, failed
	return true, nil
}

// batch returns (creating) the batch and refreshes its expiry; m.mu held.
func (m *Memory) batch(key string) *memBatch {
	b := m.batches[key]
	if b == nil {
		b = &memBatch{jobs: map[string]struct{}{}, ended: map[string]struct{}{}}
		m.batches[key] = b
	}
	b.expires = m.now().Add(m.ttl)
	return b
}

// sweep drops expired entries; m.mu held.
func (m *Memory) sweep() {
	now := m.now()
	for k, j := range m.jobs {
		if now.After(j.expires) {
			delete(m.jobs, k)
		}
	}
	for k, b := range m.batches {
		if now.After(b.expires) {
			delete(m.batches, k)
		}
	}
}

// batchEvents builds job_progress and batch_status for one job end.
func batchEvents(end JobEnd, completed, failed int, status string, total *int) ([]bus.Event, error) {
	room := []string{rooms.BatchRoom(end.Batch)}
	progress, err := json.Marshal(progressPayload{end.Batch.Raw, end.Job.Raw, 100, jobStatus(end.Failed), end.Message})
	if err != nil {
		return nil, fmt.Errorf("registry: encode job_progress: %w", err)
	}
	st, err := json.Marshal(statusPayload{end.Batch.Raw, status, completed, total, failed})
	if err != nil {
		return nil, fmt.Errorf("registry: encode batch_status: %w", err)
	}
	return []bus.Event{
		{Name: eventname.JobProgress, Rooms: room, Payload: progress},
		{Name: eventname.BatchStatus, Rooms: room, Payload: st},
	}, nil
}
