package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/test/redistest"
	"github.com/redis/go-redis/v9"
)

func newRedisBus(t *testing.T, url string, opts ...func(*bus.RedisOptions)) *bus.Redis {
	t.Helper()
	o := bus.RedisOptions{
		URL:            url,
		Stream:         "test:" + t.Name(),
		CanaryInterval: 100 * time.Millisecond,
		CanaryTimeout:  time.Second,
		Consumer:       true,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range opts {
		f(&o)
	}
	b, err := bus.NewRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// collector consumes a bus in the background and records what arrives.
type collector struct {
	mu     sync.Mutex
	events []event.Event
	stop   context.CancelFunc
	done   chan struct{}
}

func consume(t *testing.T, b bus.Bus) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_ = b.Consume(ctx, func(batch []event.Event) {
			c.mu.Lock()
			c.events = append(c.events, batch...)
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func (c *collector) payloads() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.events))
	for i, e := range c.events {
		out[i] = string(e.Payload)
	}
	return out
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func waitReady(t *testing.T, b *bus.Redis) {
	t.Helper()
	waitFor(t, 10*time.Second, "bus ready", func() bool { return b.Health(context.Background()) == nil })
}

func numbered(i int) event.Event {
	return event.Event{Name: "log_line", Rooms: []string{"project_" + strconv.Itoa(i%3)}, Payload: json.RawMessage(strconv.Itoa(i))}
}

// assertExactlyOnceInOrder checks that got holds want exactly once each, in
// order (extra canaries never reach consumers).
func assertExactlyOnceInOrder(t *testing.T, got []string, want []int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("delivered %d events, want %d\n got %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != strconv.Itoa(want[i]) {
			t.Fatalf("event %d = %s, want %d (order or duplicates broken)\n got %v", i, got[i], want[i], got)
		}
	}
}

func TestRedisEveryNodeGetsEveryEventInOrder(t *testing.T) {
	srv := redistest.Start(t)
	pub := newRedisBus(t, srv.URL())
	nodes := []*bus.Redis{newRedisBus(t, srv.URL()), newRedisBus(t, srv.URL()), newRedisBus(t, srv.URL())}
	var cols []*collector
	for _, n := range nodes {
		cols = append(cols, consume(t, n))
		waitReady(t, n)
	}
	var want []int
	for i := range 500 {
		if err := pub.Publish(context.Background(), numbered(i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, i)
	}
	for i, c := range cols {
		waitFor(t, 10*time.Second, "node "+strconv.Itoa(i)+" caught up", func() bool { return len(c.payloads()) >= len(want) })
		time.Sleep(100 * time.Millisecond) // a duplicate would show up now
		assertExactlyOnceInOrder(t, c.payloads(), want)
	}
}

func TestRedisDedupeAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisBus(t, srv.URL()), newRedisBus(t, srv.URL())
	col := consume(t, a)
	waitReady(t, a)
	ev := numbered(1)
	ev.DedupeKey = "modal:j1:completed"
	if err := a.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), ev); !errors.Is(err, bus.ErrDuplicate) {
		t.Fatalf("same key on another node = %v, want ErrDuplicate", err)
	}
	ev2 := numbered(2)
	ev2.DedupeKey = "modal:j1:failed"
	if err := b.Publish(context.Background(), ev2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "two events", func() bool { return len(col.payloads()) >= 2 })
	time.Sleep(200 * time.Millisecond)
	assertExactlyOnceInOrder(t, col.payloads(), []int{1, 2})
}

func TestRedisDedupeWindowExpires(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedisBus(t, srv.URL(), func(o *bus.RedisOptions) { o.DedupeWindow = 100 * time.Millisecond })
	ev := numbered(1)
	ev.DedupeKey = "k"
	if err := b.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if err := b.Publish(context.Background(), ev); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestRedisClientKill drops every connection of the nodes while a producer
// publishes: every publish that returned nil is delivered exactly once, in
// order, and the ones that failed were not stored.
func TestRedisClientKill(t *testing.T) {
	srv := redistest.Start(t)
	pub := newRedisBus(t, srv.URL())
	node := newRedisBus(t, srv.URL())
	col := consume(t, node)
	waitReady(t, node)

	var accepted []int
	failed := 0
	for i := range 400 {
		if i%100 == 50 {
			srv.KillNormalClients()
		}
		err := pub.Publish(context.Background(), numbered(i))
		var ue *bus.UnavailableError
		switch {
		case err == nil:
			accepted = append(accepted, i)
		case errors.As(err, &ue):
			failed++
		default:
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitFor(t, 15*time.Second, "all accepted events", func() bool { return len(col.payloads()) >= len(accepted) })
	time.Sleep(200 * time.Millisecond)
	assertExactlyOnceInOrder(t, col.payloads(), accepted)
	t.Logf("accepted %d, refused %d (retryable)", len(accepted), failed)
	waitReady(t, node)
}

// TestRedisRestartWithAOF restarts Redis (append-only file on) while a
// producer publishes and retries refused events: everything is delivered
// exactly once and in order, and readiness fails while Redis is gone.
func TestRedisRestartWithAOF(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	pub := newRedisBus(t, srv.URL())
	node := newRedisBus(t, srv.URL())
	col := consume(t, node)
	waitReady(t, node)

	publish := func(i int) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := pub.Publish(context.Background(), numbered(i))
			if err == nil {
				return
			}
			var ue *bus.UnavailableError
			if !errors.As(err, &ue) || time.Now().After(deadline) {
				t.Fatalf("publish %d: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond) // the producer's retry
		}
	}
	var want []int
	for i := range 100 {
		publish(i)
		want = append(want, i)
	}
	srv.Stop()
	waitFor(t, 5*time.Second, "not ready while Redis is down", func() bool { return node.Health(context.Background()) != nil })
	errDown := pub.Publish(context.Background(), numbered(-1))
	var ue *bus.UnavailableError
	if !errors.As(errDown, &ue) {
		t.Fatalf("publish with Redis down = %v, want UnavailableError", errDown)
	}
	srv.Restart()
	for i := 100; i < 200; i++ {
		publish(i)
		want = append(want, i)
	}
	waitFor(t, 15*time.Second, "all events after the restart", func() bool { return len(col.payloads()) >= len(want) })
	time.Sleep(200 * time.Millisecond)
	assertExactlyOnceInOrder(t, col.payloads(), want)
	waitReady(t, node)
}

// TestRedisDownAtStartup: the node starts, is not ready, and becomes ready
// by itself once Redis comes up.
func TestRedisDownAtStartup(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	node := newRedisBus(t, srv.URL())
	col := consume(t, node)
	time.Sleep(300 * time.Millisecond)
	if err := node.Health(context.Background()); err == nil {
		t.Fatal("ready while Redis is down")
	}
	if err := node.Publish(context.Background(), numbered(0)); err == nil {
		t.Fatal("publish accepted while Redis is down")
	}
	srv.Restart()
	waitReady(t, node)
	if err := node.Publish(context.Background(), numbered(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(col.payloads()) == 1 })
	assertExactlyOnceInOrder(t, col.payloads(), []int{1})
}

// TestRedisStalledConsumer: a consumer whose handler blocks stops reading
// its canaries, and readiness says so.
func TestRedisStalledConsumer(t *testing.T) {
	srv := redistest.Start(t)
	node := newRedisBus(t, srv.URL(), func(o *bus.RedisOptions) { o.CanaryTimeout = 300 * time.Millisecond })
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = node.Consume(ctx, func([]event.Event) { <-release })
	}()
	t.Cleanup(func() { cancel(); close(release); <-done })
	waitReady(t, node)
	if err := node.Publish(context.Background(), numbered(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "stall detected", func() bool {
		err := node.Health(context.Background())
		return err != nil && strings.Contains(err.Error(), "consumer stalled")
	})
}

// TestRedisConsumerNotReadyBeforeConsume: a consuming node is not ready
// until its consumer runs, so nothing published before it is missed by a
// node that said it was ready.
func TestRedisConsumerNotReadyBeforeConsume(t *testing.T) {
	srv := redistest.Start(t)
	node := newRedisBus(t, srv.URL())
	if err := node.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "consumer not running") {
		t.Fatalf("Health before Consume = %v, want consumer not running", err)
	}
	receiver := newRedisBus(t, srv.URL(), func(o *bus.RedisOptions) { o.Consumer = false })
	if err := receiver.Health(context.Background()); err != nil {
		t.Fatalf("a webhook-only node is ready with Redis up: %v", err)
	}
	consume(t, node)
	waitReady(t, node)
}

func TestRedisURLForms(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"redis://localhost:6379/0", true},
		{"redis://user:pass@localhost:6379/2?dial_timeout=1s&pool_size=20", true},
		{"rediss://localhost:6380/0", true},
		{"unix:///var/run/redis.sock?db=1", true},
		{"redis://sentinel-1:26379/0?master_name=mymaster&addr=sentinel-2:26379", true},
		{"redis://localhost:6379/notanumber", false},
		{"redis://localhost:6379/0?no_such_option=1", false},
		{"http://localhost", false},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			c, err := bus.NewRedisClient(tc.url)
			if (err == nil) != tc.ok {
				t.Fatalf("NewRedisClient(%q) err = %v, want ok=%v", tc.url, err, tc.ok)
			}
			if c != nil {
				_ = c.Close()
			}
		})
	}
}

// TestRedisBatchesWhatArrivedMeanwhile: events published while the
// handler is busy come in few calls (one per read, split only by a
// canary), exactly once and in order, and Delivered reaches the last.
func TestRedisBatchesWhatArrivedMeanwhile(t *testing.T) {
	srv := redistest.Start(t)
	node := newRedisBus(t, srv.URL())
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	var got []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		first := true
		_ = node.Consume(ctx, func(batch []event.Event) {
			mu.Lock()
			sizes = append(sizes, len(batch))
			for _, e := range batch {
				got = append(got, string(e.Payload))
			}
			mu.Unlock()
			if first {
				first = false
				<-release
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitReady(t, node)
	if err := node.Publish(context.Background(), numbered(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "first call", func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 })
	const n = 200
	for i := 1; i <= n; i++ {
		if err := node.Publish(context.Background(), numbered(i)); err != nil {
			t.Fatal(err)
		}
	}
	last, err := node.LastID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	waitFor(t, 5*time.Second, "every event", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n+1 })
	mu.Lock()
	want := make([]int, n+1)
	for i := range want {
		want[i] = i
	}
	assertExactlyOnceInOrder(t, got, want)
	calls := len(sizes)
	mu.Unlock()
	t.Logf("%d events in %d handler calls: %v", n+1, calls, sizes)
	if calls > 10 {
		t.Errorf("%d events that waited took %d handler calls, want a few (one per read)", n, calls-1)
	}
	waitFor(t, 5*time.Second, "Delivered at the last event", func() bool { return !streamIDBefore(node.Delivered(), last) })
}

// streamIDBefore reports whether stream id a ("ms-seq") is before b.
func streamIDBefore(a, b string) bool {
	parse := func(id string) (ms, seq uint64) {
		m, s, _ := strings.Cut(id, "-")
		ms, _ = strconv.ParseUint(m, 10, 64)
		seq, _ = strconv.ParseUint(s, 10, 64)
		return ms, seq
	}
	am, as := parse(a)
	bm, bs := parse(b)
	return am < bm || am == bm && as < bs
}

// TestRedisInvalidUTF8NeverDelivered: invalid UTF-8 in a payload, from a
// producer or from an entry written to the stream by another hand, is
// consumed as U+FFFD (a client's WebSocket would fail on it).
func TestRedisInvalidUTF8NeverDelivered(t *testing.T) {
	srv := redistest.Start(t)
	node := newRedisBus(t, srv.URL())
	c := consume(t, node)
	waitReady(t, node)
	e := event.Event{Name: "log_line", Rooms: []string{"project_1"}, Payload: json.RawMessage("{\"line\":\"a\xffb\"}")}
	if err := node.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	client := srv.Client()
	defer client.Close()
	entry := "{\"n\":\"log_line\",\"r\":[\"project_1\"],\"p\":{\"line\":\"c\xfe\xfdd\"}}"
	if err := client.XAdd(context.Background(), &redis.XAddArgs{Stream: "test:" + t.Name(), Values: []string{"e", entry}}).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both events", func() bool { return len(c.payloads()) == 2 })
	got := c.payloads()
	want := []string{`{"line":"a` + "\uFFFD" + `b"}`, `{"line":"c` + "\uFFFD\uFFFD" + `d"}`}
	if got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("consumed %q, want %q", got, want)
	}
}
