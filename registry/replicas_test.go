package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/registry"
	"github.com/meshgen/gateway/test/redistest"
)

// TestJobEndedMinReplicas: with min-replicas 1, a batch end the replica
// does not confirm answers a *bus.ReplicaError; its retry answers the same
// until the replica confirms the first end, then counts nothing again: the
// batch's events are delivered once. A registration is refused the same way.
func TestJobEndedMinReplicas(t *testing.T) {
	master := redistest.Start(t, "--repl-diskless-sync-delay", "0")
	replica := redistest.StartReplica(t, master)
	newBus := func(timeout time.Duration, consumer bool) *bus.Redis {
		b, err := bus.NewRedis(bus.RedisOptions{
			URL: master.URL(), Stream: "t", CanaryInterval: 50 * time.Millisecond, CanaryTimeout: time.Second, Consumer: consumer,
			MinReplicas: 1, ReplicaTimeout: timeout,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	// b waits briefly, for the paused replica; patient waits long, so that
	// a busy host does not fail the writes that must succeed.
	b := newBus(100*time.Millisecond, true)
	store := registry.NewRedis(b, time.Hour)
	patient := registry.NewRedis(newBus(10*time.Second, false), time.Hour)
	s := consume(t, b)
	ctx := context.Background()
	batch := id("b-r")
	if err := patient.RegisterBatch(ctx, batch, 2); err != nil {
		t.Fatal(err)
	}
	endOn := func(st registry.Store, job string) (bool, error) {
		return st.JobEnded(ctx, event.JobEnd{Owner: event.Owner{Project: id("p"), Batch: batch}, Job: id(job), Error: json.RawMessage(`null`)})
	}
	end := func(job string) (bool, error) { return endOn(store, job) }
	if first, err := endOn(patient, "j1"); err != nil || !first {
		t.Fatalf("end with a live replica = %v, %v", first, err)
	}

	replica.Pause()
	paused := true
	defer func() {
		if paused {
			replica.Resume()
		}
	}()
	var re *bus.ReplicaError
	if _, err := end("j2"); !errors.As(err, &re) {
		t.Fatalf("end with the replica paused = %v, want a *bus.ReplicaError", err)
	}
	if err := store.Register(ctx, []registry.Job{{ID: id("j3"), Project: id("p")}}); !errors.As(err, &re) {
		t.Fatalf("registration with the replica paused = %v, want a *bus.ReplicaError", err)
	}
	if _, err := end("j2"); !errors.As(err, &re) {
		t.Fatalf("repeated end with the replica paused = %v, want a *bus.ReplicaError", err)
	}
	replica.Resume()
	paused = false
	if first, err := endOn(patient, "j2"); err != nil || first {
		t.Fatalf("repeated end once the replica is back = %v, %v; want not first, nil", first, err)
	}
	waitCount(t, s, event.BatchStatus, 2)
	waitCount(t, s, event.JobProgress, 2)
}
