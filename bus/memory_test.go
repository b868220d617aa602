package bus

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meshgen/gateway/event"
)

func TestMemoryOrderAndIDs(t *testing.T) {
	m := NewMemory(MemoryOptions{Queue: 8})
	t.Cleanup(func() { _ = m.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 1000
	got := make(chan event.Event, n)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = m.Consume(ctx, func(batch []event.Event) {
			for _, e := range batch {
				got <- e
			}
		})
	})
	for i := range n {
		if err := m.Publish(ctx, event.Event{Name: "log_line", Rooms: []string{"project_1"}, Payload: json.RawMessage(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case e := <-got:
			if string(e.Payload) != strconv.Itoa(i) || e.ID != strconv.Itoa(i+1) {
				t.Fatalf("event %d = id %s payload %s", i, e.ID, e.Payload)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not delivered", i)
		}
	}
	cancel()
	wg.Wait()
}

func TestMemoryBackpressure(t *testing.T) {
	m := NewMemory(MemoryOptions{Queue: 1})
	t.Cleanup(func() { _ = m.Close() })
	ev := event.Event{Name: "x", Rooms: []string{"r"}, Payload: json.RawMessage(`{}`)}
	if err := m.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := m.Publish(ctx, ev); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("full queue: err = %v, want deadline exceeded", err)
	}
	_ = m.Close()
	if err := m.Publish(context.Background(), ev); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: err = %v", err)
	}
}

func TestEventValidate(t *testing.T) {
	tests := []struct {
		name string
		ev   event.Event
		ok   bool
	}{
		{"ok", event.Event{Name: "a", Rooms: []string{"r"}, Payload: json.RawMessage(`{"a":1}`)}, true},
		{"no name", event.Event{Rooms: []string{"r"}, Payload: json.RawMessage(`1`)}, false},
		{"no room", event.Event{Name: "a", Payload: json.RawMessage(`1`)}, false},
		{"bad payload", event.Event{Name: "a", Rooms: []string{"r"}, Payload: json.RawMessage(`{`)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ev.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, event.ErrInvalid)) {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func TestMemoryDedupe(t *testing.T) {
	m := NewMemory(MemoryOptions{Queue: 16, DedupeWindow: 50 * time.Millisecond})
	t.Cleanup(func() { _ = m.Close() })
	ev := event.Event{Name: "job_completed", Rooms: []string{"project_1"}, Payload: json.RawMessage(`{}`), DedupeKey: "modal:j1:completed"}
	if err := m.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if err := m.Publish(context.Background(), ev); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second publish = %v, want ErrDuplicate", err)
	}
	other := ev
	other.DedupeKey = "modal:j1:failed"
	if err := m.Publish(context.Background(), other); err != nil {
		t.Fatalf("other key = %v", err)
	}
	time.Sleep(60 * time.Millisecond)
	if err := m.Publish(context.Background(), ev); err != nil {
		t.Fatalf("after the window = %v", err)
	}
	if got := len(m.queue); got != 3 {
		t.Fatalf("queued %d events, want 3", got)
	}
}

func TestMemoryFailedPublishDoesNotClaimKey(t *testing.T) {
	m := NewMemory(MemoryOptions{Queue: 1})
	t.Cleanup(func() { _ = m.Close() })
	fill := event.Event{Name: "x", Rooms: []string{"r"}, Payload: json.RawMessage(`1`)}
	_ = m.Publish(context.Background(), fill)
	ev := fill
	ev.DedupeKey = "k"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := m.Publish(ctx, ev); err == nil || errors.Is(err, ErrDuplicate) {
		t.Fatalf("publish into a full queue = %v", err)
	}
	<-m.queue
	if err := m.Publish(context.Background(), ev); err != nil {
		t.Fatalf("retry after a failed publish = %v, want success", err)
	}
}

// TestMemoryBatchesWhatQueuedMeanwhile: events queued while the handler
// is busy come in one call, in order, and Delivered follows the calls.
func TestMemoryBatchesWhatQueuedMeanwhile(t *testing.T) {
	m := NewMemory(MemoryOptions{Queue: 64})
	t.Cleanup(func() { _ = m.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	calls := make(chan []event.Event, 10)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		first := true
		_ = m.Consume(ctx, func(batch []event.Event) {
			calls <- append([]event.Event(nil), batch...)
			if first {
				first = false
				<-release
			}
		})
	})
	publish := func(i int) {
		if err := m.Publish(ctx, event.Event{Name: "log_line", Rooms: []string{"project_1"}, Payload: json.RawMessage(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	publish(0)
	first := <-calls
	const n = 50
	for i := 1; i <= n; i++ {
		publish(i)
	}
	close(release)
	var second []event.Event
	select {
	case second = <-calls:
	case <-time.After(5 * time.Second):
		t.Fatal("no second call")
	}
	if len(first) != 1 || len(second) != n {
		t.Fatalf("calls of %d and %d events, want 1 and %d", len(first), len(second), n)
	}
	for i, e := range append(first, second...) {
		if string(e.Payload) != strconv.Itoa(i) || e.ID != strconv.Itoa(i+1) {
			t.Fatalf("event %d = id %s payload %s", i, e.ID, e.Payload)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.Delivered() != strconv.Itoa(n+1) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := m.Delivered(); got != strconv.Itoa(n+1) {
		t.Fatalf("Delivered = %s, want %d", got, n+1)
	}
}
