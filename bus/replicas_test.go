package bus_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/test/redistest"
)

func replicaError(err error) bool {
	var re *bus.ReplicaError
	var ue *bus.UnavailableError
	return errors.As(err, &re) && errors.As(err, &ue)
}

// TestRedisMinReplicas: with min-replicas 1 a publish is acknowledged once
// the replica has it; a replica that stops acknowledging makes publishes
// fail with a *ReplicaError (counted), and a retry of an event with a
// dedupe key is refused again rather than answered as a duplicate until the
// replica confirms the first publish; then it is a duplicate, and each
// event is delivered once.
func TestRedisMinReplicas(t *testing.T) {
	// No 5 s wait before the first (diskless) sync to the replica.
	master := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	replica := redistest.StartReplica(t, master)
	var timeouts atomic.Int64
	// b waits briefly, for the paused replica; patient waits long, so that
	// a busy host does not fail the publishes that must succeed.
	b := newRedisBus(t, master.URL(), func(o *bus.RedisOptions) {
		o.MinReplicas = 1
		o.ReplicaTimeout = 200 * time.Millisecond
		o.OnReplicaTimeout = func() { timeouts.Add(1) }
	})
	patient := newRedisBus(t, master.URL(), func(o *bus.RedisOptions) {
		o.MinReplicas = 1
		o.ReplicaTimeout = 10 * time.Second
		o.Consumer = false
	})
	col := consume(t, b)
	waitReady(t, b)
	ctx := context.Background()

	ev1 := numbered(1)
	ev1.DedupeKey = "k1"
	if err := patient.Publish(ctx, ev1); err != nil {
		t.Fatalf("publish with a live replica: %v", err)
	}

	replica.Pause()
	paused := true
	defer func() {
		if paused {
			replica.Resume()
		}
	}()
	ev2 := numbered(2)
	ev2.DedupeKey = "k2"
	if err := b.Publish(ctx, ev2); !replicaError(err) {
		t.Fatalf("publish with the replica paused = %v, want a *ReplicaError in an *UnavailableError", err)
	}
	// The retry must not look like a delivered duplicate: the first publish
	// of k2 is not confirmed yet.
	if err := b.Publish(ctx, ev2); !replicaError(err) {
		t.Fatalf("retry with the replica still paused = %v, want a *ReplicaError (not ErrDuplicate)", err)
	}
	// A repeated key of a confirmed event is a duplicate at once.
	if err := b.Publish(ctx, ev1); !replicaError(err) && !errors.Is(err, bus.ErrDuplicate) {
		t.Fatalf("repeat of a confirmed event = %v", err)
	}
	if got := timeouts.Load(); got < 2 {
		t.Fatalf("replica timeouts counted = %d, want at least 2", got)
	}

	replica.Resume()
	paused = false
	if err := patient.Publish(ctx, ev2); !errors.Is(err, bus.ErrDuplicate) {
		t.Fatalf("retry once the replica is back = %v, want ErrDuplicate", err)
	}
	ev3 := numbered(3)
	if err := patient.Publish(ctx, ev3); err != nil {
		t.Fatalf("publish after the replica came back: %v", err)
	}
	waitFor(t, 5*time.Second, "three events", func() bool { return len(col.payloads()) >= 3 })
	time.Sleep(200 * time.Millisecond)
	assertExactlyOnceInOrder(t, col.payloads(), []int{1, 2, 3})

	// The replica has every acknowledged event.
	rc := replica.Client()
	defer rc.Close()
	n, err := rc.XLen(ctx, "test:"+t.Name()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("replica stream holds %d entries, want at least 3", n)
	}
}

// TestRedisMinReplicasWithoutReplica: a master with no replica refuses
// every publish after the timeout; min-replicas 0 does not wait.
func TestRedisMinReplicasWithoutReplica(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedisBus(t, srv.URL(), func(o *bus.RedisOptions) {
		o.MinReplicas = 1
		o.ReplicaTimeout = 50 * time.Millisecond
	})
	if err := b.Publish(context.Background(), numbered(1)); !replicaError(err) {
		t.Fatalf("publish without replica = %v, want a *ReplicaError", err)
	}
	b0 := newRedisBus(t, srv.URL())
	if err := b0.Publish(context.Background(), numbered(2)); err != nil {
		t.Fatalf("min-replicas 0: %v", err)
	}
}

// BenchmarkRedisPublishReplicas measures one Publish (sequential, loopback)
// against a master with one replica: min-replicas 0 (XADD script) and 1
// (the script, then WAIT on the same connection). docs/reliability.md
// quotes it:
//
//	go test -run '^$' -bench RedisPublishReplicas -benchtime 3000x -count 5 ./bus
func BenchmarkRedisPublishReplicas(b *testing.B) {
	master := redistest.Start(b, "--repl-diskless-sync-delay", "0")
	redistest.StartReplica(b, master)
	for _, n := range []int{0, 1} {
		b.Run("min-replicas="+strconv.Itoa(n), func(b *testing.B) {
			bb, err := bus.NewRedis(bus.RedisOptions{
				URL: master.URL(), Stream: "bench", MinReplicas: n, ReplicaTimeout: 10 * time.Second,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				b.Fatal(err)
			}
			defer bb.Close()
			ctx := context.Background()
			ev := numbered(1)
			for b.Loop() {
				if err := bb.Publish(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
