package registry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/rooms"
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
	owner   event.Owner
	expires time.Time
}

type memBatch struct {
	total, completed, failed int64
	jobs, ended              map[string]struct{}
	projects                 map[string]rooms.ID // of the jobs registered with it
	expires                  time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an in-process Store publishing batch events to pub.
func NewMemory(pub bus.Publisher, ttl time.Duration) *Memory {
	return &Memory{pub: pub, ttl: ttl, now: time.Now, jobs: map[string]memJob{}, batches: map[string]*memBatch{}}
}

// Resolve implements Store.
func (m *Memory) Resolve(_ context.Context, job string) (event.Owner, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[job]
	if !ok || m.now().After(j.expires) {
		delete(m.jobs, job)
		return event.Owner{}, false, nil
	}
	return j.owner, true, nil
}

// JobProject implements Store.
func (m *Memory) JobProject(ctx context.Context, job string) (rooms.ID, bool, error) {
	o, found, err := m.Resolve(ctx, job)
	return o.Project, found, err
}

// BatchProjects implements Store.
func (m *Memory) BatchProjects(_ context.Context, batch string) ([]rooms.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.batches[batch]
	if !ok || m.now().After(b.expires) {
		return nil, nil
	}
	out := make([]rooms.ID, 0, len(b.projects))
	for _, p := range b.projects {
		out = append(out, p)
	}
	return out, nil
}

// Register implements Store.
func (m *Memory) Register(_ context.Context, jobs []Job) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	exp := m.now().Add(m.ttl)
	for _, j := range jobs {
		m.jobs[j.ID.Key] = memJob{owner: event.Owner{Project: j.Project, Batch: j.Batch}, expires: exp}
		if j.Batch.Key != "" {
			b := m.batch(j.Batch.Key)
			b.jobs[j.ID.Key] = struct{}{}
			b.projects[j.Project.Key] = j.Project
		}
	}
	return nil
}

// RegisterBatch implements Store.
func (m *Memory) RegisterBatch(_ context.Context, batch rooms.ID, total int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batch(batch.Key).total = int64(total)
	return nil
}

// JobEnded implements Store.
func (m *Memory) JobEnded(ctx context.Context, end event.JobEnd) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.batch(end.Owner.Batch.Key)
	if _, seen := b.ended[end.Job.Key]; seen {
		return false, nil
	}
	counts := event.BatchCounts{Completed: b.completed, Failed: b.failed, Total: max(b.total, int64(len(b.jobs)))}
	if end.Failed {
		counts.Failed++
	} else {
		counts.Completed++
	}
	events, err := end.BatchEvents(counts)
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
	b.completed, b.failed = counts.Completed, counts.Failed
	return true, nil
}

// BatchStatus implements Store. The position is the bus's (when it
// tells one, as the in-process bus does), read under the lock JobEnded
// publishes under.
func (m *Memory) BatchStatus(_ context.Context, batch string) (event.BatchCounts, string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.batches[batch]
	if !ok || m.now().After(b.expires) {
		return event.BatchCounts{}, "", false, nil
	}
	position := ""
	if p, ok := m.pub.(interface{ LastID() string }); ok {
		position = p.LastID()
	}
	return event.BatchCounts{Completed: b.completed, Failed: b.failed, Total: max(b.total, int64(len(b.jobs)))}, position, true, nil
}

// batch returns (creating) the batch and refreshes its expiry; m.mu held.
func (m *Memory) batch(key string) *memBatch {
	b := m.batches[key]
	if b == nil {
		b = &memBatch{jobs: map[string]struct{}{}, ended: map[string]struct{}{}, projects: map[string]rooms.ID{}}
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
