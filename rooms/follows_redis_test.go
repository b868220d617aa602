package rooms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/test/redistest"
)

// A disconnect releases all of a client's follows at once and every job it
// was the last follower of gets its "last": true.
func TestRedisFollowsDropReleasesEveryFollow(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	sub := client.Subscribe(ctx, "logs")
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	f := rooms.NewRedisFollows(client, "t", "logs", "node-1", 0, slog.New(slog.DiscardHandler))
	id := func(s string) rooms.ID { i, _ := rooms.ParseID(s, 0); return i }
	const jobs = 20
	for i := range jobs {
		if _, err := f.Follow(ctx, rooms.Follow{Job: id(fmt.Sprint("job-", i)), Type: rooms.TypeModal, Member: "leaver"}); err != nil {
			t.Fatal(err)
		}
	}
	// Another client shares job-0: its release is not the last.
	if _, err := f.Follow(ctx, rooms.Follow{Job: id("job-0"), Type: rooms.TypeModal, Member: "stayer"}); err != nil {
		t.Fatal(err)
	}
	if n := f.Count("leaver"); n != jobs {
		t.Fatalf("Count = %d, want %d", n, jobs)
	}
	// Drain the subscribe events.
	for range jobs + 1 {
		if _, err := sub.ReceiveMessage(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.Drop(ctx, "leaver")
	last := map[string]bool{}
	for range jobs {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := sub.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			t.Fatalf("control events after a disconnect: %d of %d (%v)", len(last), jobs, err)
		}
		var ev rooms.ControlEvent
		if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil || ev.Action != rooms.ActionUnsubscribe || ev.Reason != "disconnect" {
			t.Fatalf("event %s: %v", msg.Payload, err)
		}
		last[ev.JobID.(string)] = ev.Last
	}
	for i := range jobs {
		job := fmt.Sprint("job-", i)
		if want := i != 0; last[job] != want {
			t.Fatalf("%s last = %v, want %v", job, last[job], want)
		}
	}
	if f.Count("leaver") != 0 {
		t.Fatal("follows left after Drop")
	}
}

// The follows of a node that stops refreshing them (killed) expire after
// the configured TTL: the key carries a TTL no longer than it and is gone
// after it; a live node's Run keeps its own.
func TestRedisFollowsOfADeadNodeExpire(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	const ttl = time.Second
	id := func(s string) rooms.ID { i, _ := rooms.ParseID(s, 0); return i }
	dead := rooms.NewRedisFollows(client, "t", "logs", "dead", ttl, slog.New(slog.DiscardHandler))
	live := rooms.NewRedisFollows(client, "t", "logs", "live", ttl, slog.New(slog.DiscardHandler))
	runCtx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	go live.Run(runCtx)
	if _, err := dead.Follow(ctx, rooms.Follow{Job: id("dead-job"), Type: rooms.TypeModal, Member: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Follow(ctx, rooms.Follow{Job: id("live-job"), Type: rooms.TypeModal, Member: "b"}); err != nil {
		t.Fatal(err)
	}
	pttl, err := client.PTTL(ctx, "t:follows:dead-job").Result()
	if err != nil || pttl <= 0 || pttl > ttl {
		t.Fatalf("PTTL = %v, %v; want within (0, %v]", pttl, err, ttl)
	}
	deadline := time.Now().Add(10 * ttl)
	for client.Exists(ctx, "t:follows:dead-job").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("the dead node's follow is still there")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := client.ZCard(ctx, "t:follows:live-job").Val(); n != 1 {
		t.Fatalf("the live node's follow: %d members, want 1 (refreshed by Run)", n)
	}
}
