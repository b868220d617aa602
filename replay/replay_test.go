package replay_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meshgen/gateway/replay"
	"github.com/meshgen/gateway/test/redistest"
)

func stores(t *testing.T, ttl time.Duration) map[string]replay.Store {
	srv := redistest.Start(t)
	c := srv.Client()
	t.Cleanup(func() { _ = c.Close() })
	return map[string]replay.Store{
		"memory": replay.NewMemory(ttl, 0),
		"redis":  replay.NewRedis(c, "t", ttl),
	}
}

func TestLifecycle(t *testing.T) {
	for name, s := range stores(t, 300*time.Millisecond) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			step := func(id string, want replay.State) {
				t.Helper()
				got, err := s.Begin(ctx, id)
				if err != nil || got != want {
					t.Fatalf("Begin(%s) = %v, %v; want %v", id, got, err, want)
				}
			}
			step("a", replay.Fresh)
			step("a", replay.InProgress) // a concurrent duplicate
			if err := s.Finish(ctx, "a", true); err != nil {
				t.Fatal(err)
			}
			step("a", replay.Done) // a replay of a success
			step("b", replay.Fresh)
			if err := s.Finish(ctx, "b", false); err != nil {
				t.Fatal(err)
			}
			step("b", replay.Fresh) // a retry after a failure is handled anew
			time.Sleep(400 * time.Millisecond)
			step("a", replay.Fresh) // forgotten after the TTL
		})
	}
}

func TestMemoryRefusesWhenFullOfLiveIDs(t *testing.T) {
	m := replay.NewMemory(time.Hour, 3)
	ctx := context.Background()
	for i := range 3 {
		if _, err := m.Begin(ctx, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Begin(ctx, "one more"); !errors.Is(err, replay.ErrFull) {
		t.Fatalf("Begin on a full store = %v, want ErrFull", err)
	}
	short := replay.NewMemory(time.Millisecond, 3)
	for i := range 3 {
		_, _ = short.Begin(ctx, fmt.Sprint(i))
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := short.Begin(ctx, "after expiry"); err != nil {
		t.Fatalf("expired ids were not swept: %v", err)
	}
}
