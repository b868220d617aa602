package registry_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/registry"
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/test/redistest"
)

func id(v any) rooms.ID {
	i, err := rooms.ParseID(v, 0)
	if err != nil {
		panic(err)
	}
	return i
}

// impl is a Store with the bus its batch events go to.
type impl struct {
	name  string
	store func(t *testing.T, ttl time.Duration) (registry.Store, bus.Bus)
}

func impls() []impl {
	return []impl{
		{"memory", func(t *testing.T, ttl time.Duration) (registry.Store, bus.Bus) {
			b := bus.NewMemory(bus.MemoryOptions{})
			t.Cleanup(func() { _ = b.Close() })
			return registry.NewMemory(b, ttl), b
		}},
		{"redis", func(t *testing.T, ttl time.Duration) (registry.Store, bus.Bus) {
			srv := redistest.Start(t)
			b, err := bus.NewRedis(bus.RedisOptions{URL: srv.URL(), Stream: "t", CanaryInterval: 50 * time.Millisecond, CanaryTimeout: time.Second, Consumer: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return registry.NewRedis(b, ttl), b
		}},
	}
}

type sink struct {
	mu     sync.Mutex
	events []event.Event
}

func (s *sink) payloads(name string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, e := range s.events {
		if e.Name == name {
			var m map[string]any
			_ = json.Unmarshal(e.Payload, &m)
			out = append(out, m)
		}
	}
	return out
}

func consume(t *testing.T, b bus.Bus) *sink {
	s := &sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Consume(ctx, func(batch []event.Event) { s.mu.Lock(); s.events = append(s.events, batch...); s.mu.Unlock() })
	}()
	t.Cleanup(func() { cancel(); <-done })
	if hc, ok := b.(bus.HealthChecker); ok {
		deadline := time.Now().Add(5 * time.Second)
		for hc.Health(context.Background()) != nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return s
}

func waitCount(t *testing.T, s *sink, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.payloads(name)) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := len(s.payloads(name)); got != n {
		t.Fatalf("%d %s events, want %d", got, name, n)
	}
}

func TestRegisterResolve(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			store, _ := im.store(t, 200*time.Millisecond)
			ctx := context.Background()
			if err := store.Register(ctx, []registry.Job{{ID: id("j1"), Project: id(float64(42)), Batch: id("b1")}, {ID: id("j2"), Project: id("p2")}}); err != nil {
				t.Fatal(err)
			}
			o, found, err := store.Resolve(ctx, "j1")
			if err != nil || !found || o.Project.Key != "42" || o.Project.Raw != float64(42) || o.Batch.Key != "b1" {
				t.Fatalf("Resolve(j1) = %+v, %v, %v", o, found, err)
			}
			if o, found, err = store.Resolve(ctx, "j2"); err != nil || !found || o.Project.Raw != "p2" || o.Batch.Key != "" {
				t.Fatalf("Resolve(j2) = %+v, %v, %v", o, found, err)
			}
			if _, found, err := store.Resolve(ctx, "nope"); found || err != nil {
				t.Fatalf("unknown job: %v, %v", found, err)
			}
			time.Sleep(300 * time.Millisecond)
			if _, found, err := store.Resolve(ctx, "j1"); found || err != nil {
				t.Fatalf("after the TTL: %v, %v", found, err)
			}
		})
	}
}

func TestBatchProgress(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			store, b := im.store(t, time.Hour)
			s := consume(t, b)
			ctx := context.Background()
			batch := id("b-9")
			if err := store.RegisterBatch(ctx, batch, 3); err != nil {
				t.Fatal(err)
			}
			ends := []struct {
				job    string
				failed bool
				first  bool
			}{{"j1", false, true}, {"j1", false, false}, {"j2", true, true}, {"j2", true, false}, {"j3", false, true}}
			for _, e := range ends {
				first, err := store.JobEnded(ctx, event.JobEnd{Owner: event.Owner{Project: id("p"), Batch: batch}, Job: id(e.job), Failed: e.failed, Error: json.RawMessage(`"m-` + e.job + `"`)})
				if err != nil || first != e.first {
					t.Fatalf("JobEnded(%s) = %v, %v; want first=%v", e.job, first, err, e.first)
				}
			}
			waitCount(t, s, event.BatchStatus, 3)
			progress := s.payloads(event.JobProgress)
			if len(progress) != 3 || progress[1]["job_id"] != "j2" || progress[1]["status"] != "failed" || progress[1]["progress"] != float64(100) || progress[1]["batch_id"] != "b-9" || progress[1]["message"] != "m-j2" {
				t.Fatalf("job_progress = %v", progress)
			}
			statuses := s.payloads(event.BatchStatus)
			want := []map[string]any{
				{"batch_id": "b-9", "status": "processing", "completed_jobs": float64(1), "total_jobs": float64(3), "failed_jobs": float64(0)},
				{"batch_id": "b-9", "status": "processing", "completed_jobs": float64(1), "total_jobs": float64(3), "failed_jobs": float64(1)},
				{"batch_id": "b-9", "status": "failed", "completed_jobs": float64(2), "total_jobs": float64(3), "failed_jobs": float64(1)},
			}
			for i := range want {
				got, _ := json.Marshal(statuses[i])
				w, _ := json.Marshal(want[i])
				if string(got) != string(w) {
					t.Fatalf("batch_status %d = %s, want %s", i, got, w)
				}
			}
		})
	}
}

func TestBatchTotalFromRegisteredJobs(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			store, b := im.store(t, time.Hour)
			s := consume(t, b)
			ctx := context.Background()
			batch := id(float64(7))
			_ = store.Register(ctx, []registry.Job{{ID: id("a"), Project: id("p"), Batch: batch}, {ID: id("b"), Project: id("p"), Batch: batch}})
			_, _ = store.JobEnded(ctx, event.JobEnd{Owner: event.Owner{Project: id("p"), Batch: batch}, Job: id("a")})
			_, _ = store.JobEnded(ctx, event.JobEnd{Owner: event.Owner{Project: id("p"), Batch: batch}, Job: id("b")})
			waitCount(t, s, event.BatchStatus, 2)
			last := s.payloads(event.BatchStatus)[1]
			if last["status"] != "completed" || last["total_jobs"] != float64(2) || last["batch_id"] != float64(7) {
				t.Fatalf("last batch_status = %v", last)
			}
			// An unknown batch: total unknown, status stays processing.
			_, _ = store.JobEnded(ctx, event.JobEnd{Owner: event.Owner{Project: id("p"), Batch: id("unknown")}, Job: id("x")})
			waitCount(t, s, event.BatchStatus, 3)
			if u := s.payloads(event.BatchStatus)[2]; u["status"] != "processing" || u["total_jobs"] != nil {
				t.Fatalf("unknown batch status = %v", u)
			}
		})
	}
}

// Many nodes counting ends of one batch at once: every end is counted once
// and the batch_status events reach the stream in counting order
// (completed_jobs rising by one each time), whichever node counted.
func TestBatchProgressConcurrent(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			store, b := im.store(t, time.Hour)
			s := consume(t, b)
			ctx := context.Background()
			batch := id("concurrent")
			const jobs = 60
			if err := store.RegisterBatch(ctx, batch, jobs); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 2*jobs)
			for i := range jobs {
				for range 2 { // every end twice, as a retried webhook
					wg.Go(func() {
						end := event.JobEnd{Owner: event.Owner{Project: id("p"), Batch: batch}, Job: id(float64(i))}
						if _, err := store.JobEnded(ctx, end); err != nil {
							errs <- err
						}
					})
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			waitCount(t, s, event.BatchStatus, jobs)
			for i, st := range s.payloads(event.BatchStatus) {
				if st["completed_jobs"] != float64(i+1) {
					t.Fatalf("batch_status %d has completed_jobs %v: out of counting order", i, st["completed_jobs"])
				}
			}
			if last := s.payloads(event.BatchStatus)[jobs-1]; last["status"] != "completed" {
				t.Fatalf("last batch_status = %v", last)
			}
		})
	}
}

// The registry ties batches and jobs to their projects, for authorization.
func TestOwnersForAuthorization(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			store, _ := im.store(t, time.Hour)
			ctx := context.Background()
			if err := store.Register(ctx, []registry.Job{{ID: id("j1"), Project: id(float64(42)), Batch: id("b1")}, {ID: id("j2"), Project: id("p2"), Batch: id("b1")}, {ID: id("j3"), Project: id("p3")}}); err != nil {
				t.Fatal(err)
			}
			p, found, err := store.JobProject(ctx, "j1")
			if err != nil || !found || p.Key != "42" || p.Raw != float64(42) {
				t.Fatalf("JobProject(j1) = %+v, %v, %v", p, found, err)
			}
			if _, found, err := store.JobProject(ctx, "nope"); found || err != nil {
				t.Fatalf("JobProject(nope) = %v, %v", found, err)
			}
			projects, err := store.BatchProjects(ctx, "b1")
			var keys []string
			for _, p := range projects {
				keys = append(keys, p.Key)
			}
			slices.Sort(keys)
			if err != nil || !slices.Equal(keys, []string{"42", "p2"}) {
				t.Fatalf("BatchProjects(b1) = %v, %v", keys, err)
			}
			if none, err := store.BatchProjects(ctx, "unknown"); err != nil || len(none) != 0 {
				t.Fatalf("BatchProjects(unknown) = %v, %v", none, err)
			}
		})
	}
}

// BatchStatus gives the counts and a position at or after every batch
// event they count: once the consumer delivered the position, it delivered
// those events.
func TestBatchStatus(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			store, b := im.store(t, time.Hour)
			s := consume(t, b)
			ctx := context.Background()
			if _, _, found, err := store.BatchStatus(ctx, "unknown"); found || err != nil {
				t.Fatalf("an unknown batch: found %v, %v", found, err)
			}
			batch := id("bs")
			if err := store.Register(ctx, []registry.Job{{ID: id("a"), Project: id("p"), Batch: batch}, {ID: id("b"), Project: id("p"), Batch: batch}}); err != nil {
				t.Fatal(err)
			}
			counts, _, found, err := store.BatchStatus(ctx, "bs")
			if err != nil || !found || counts != (event.BatchCounts{Total: 2}) {
				t.Fatalf("registered: %+v %v %v", counts, found, err)
			}
			if _, err := store.JobEnded(ctx, event.JobEnd{Owner: event.Owner{Project: id("p"), Batch: batch}, Job: id("a")}); err != nil {
				t.Fatal(err)
			}
			counts, position, found, err := store.BatchStatus(ctx, "bs")
			if err != nil || !found || counts != (event.BatchCounts{Completed: 1, Total: 2}) {
				t.Fatalf("after an end: %+v %v %v", counts, found, err)
			}
			if !bus.ValidID(position) {
				t.Fatalf("position %q", position)
			}
			waitCount(t, s, event.BatchStatus, 1)
			deadline := time.Now().Add(5 * time.Second)
			for bus.CompareIDs(b.Delivered(), position) < 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, e := range s.events {
				if e.Name == event.BatchStatus && bus.CompareIDs(e.ID, position) > 0 {
					t.Fatalf("the batch_status counted (%s) is after the position %s", e.ID, position)
				}
			}
		})
	}
}
