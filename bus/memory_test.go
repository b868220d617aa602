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
	wg.Go(func() { _ = m.Consume(ctx, func(e event.Event) { got <- e }) })
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
