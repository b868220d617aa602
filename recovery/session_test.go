package recovery

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/test/redistest"
)

func access(t *testing.T, kind string, id, project any) rooms.Access {
	t.Helper()
	a := rooms.Access{Kind: kind}
	var err error
	if a.ID, err = rooms.ParseID(id, 64); err != nil {
		t.Fatal(err)
	}
	if project != nil {
		if a.Project, err = rooms.ParseID(project, 64); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// storeContract is what every Store does: owner-conditional writes, a
// claim that hands the session over, touches and deletes by the owner
// only.
func storeContract(t *testing.T, s Store) {
	ctx := context.Background()
	seen := time.UnixMilli(time.Now().UnixMilli())
	held := []rooms.Access{access(t, rooms.AccessProject, 42.0, nil), access(t, rooms.AccessBatch, "b-1", nil), access(t, rooms.AccessJob, "j", "p")}
	sess := Session{PID: "pid-1", Owner: "sid-a", User: "ana", Held: held, Seen: seen, Quiet: Quiet{From: "1-0", To: "5-0"}}
	if ok, err := s.Save(ctx, sess); !ok || err != nil {
		t.Fatalf("Save = %v %v", ok, err)
	}
	if _, found, err := s.Claim(ctx, "pid-none", "x"); found || err != nil {
		t.Fatalf("Claim of no session = %v %v", found, err)
	}
	got, found, err := s.Claim(ctx, "pid-1", "sid-b")
	if !found || err != nil {
		t.Fatalf("Claim = %v %v", found, err)
	}
	if got.Owner != "sid-a" || got.User != "ana" || !got.Seen.Equal(seen) || got.Quiet != sess.Quiet || len(got.Held) != 3 {
		t.Fatalf("claimed %+v", got)
	}
	for i, a := range got.Held {
		if a.Kind != held[i].Kind || a.ID.Key != held[i].ID.Key || a.ID.Raw != held[i].ID.Raw || a.Project.Key != held[i].Project.Key {
			t.Fatalf("held[%d] = %+v, want %+v", i, a, held[i])
		}
	}
	// The old socket (sid-a) no longer writes; the new owner does.
	if ok, _ := s.Save(ctx, Session{PID: "pid-1", Owner: "sid-a", Seen: seen}); ok {
		t.Fatal("a former owner's Save was accepted")
	}
	later := seen.Add(time.Minute)
	if missing, err := s.Touch(ctx, []Ref{{PID: "pid-1", Owner: "sid-a"}}, later); err != nil || len(missing) != 0 {
		t.Fatal(missing, err)
	}
	if err := s.Delete(ctx, "pid-1", "sid-a"); err != nil {
		t.Fatal(err)
	}
	got, found, _ = s.Claim(ctx, "pid-1", "sid-b")
	if !found || !got.Seen.Equal(seen) {
		t.Fatalf("a former owner's touch or delete changed the session: %+v %v", got, found)
	}
	missing, err := s.Touch(ctx, []Ref{{PID: "pid-1", Owner: "sid-b", Quiet: Quiet{From: "6-0", To: "9-0"}}, {PID: "gone", Owner: "x"}}, later)
	if err != nil || len(missing) != 1 || missing[0].PID != "gone" {
		t.Fatalf("Touch: missing %v, %v; want the one session that is gone", missing, err)
	}
	got, _, _ = s.Claim(ctx, "pid-1", "sid-b")
	if !got.Seen.Equal(later) || got.Quiet.To != "9-0" {
		t.Fatalf("touched session = %+v", got)
	}
	if err := s.Delete(ctx, "pid-1", "sid-b"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Claim(ctx, "pid-1", "sid-c"); found {
		t.Fatal("deleted session still found")
	}
}

func TestMemoryStore(t *testing.T) {
	storeContract(t, NewMemoryStore(time.Minute))

	now := time.Unix(1000, 0)
	m := NewMemoryStore(time.Minute)
	m.now = func() time.Time { return now }
	ctx := context.Background()
	for _, pid := range []string{"a", "b"} {
		if ok, _ := m.Save(ctx, Session{PID: pid, Owner: "s-" + pid}); !ok {
			t.Fatal("save")
		}
	}
	now = now.Add(2 * time.Minute)
	if _, found, _ := m.Claim(ctx, "a", "x"); found || m.Len() != 0 {
		t.Fatalf("sessions past their ttl kept: %d", m.Len())
	}
}

func TestRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	s := NewRedisStore(client, "test", 2*time.Second)
	storeContract(t, s)

	ctx := context.Background()
	if ok, err := s.Save(ctx, Session{PID: "ttl", Owner: "o", Seen: time.Now()}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ttl := client.PTTL(ctx, "test:session:ttl").Val(); ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("session key ttl %s, want up to 2s", ttl)
	}
	// Scripts flushed (a Redis restarted without them): Touch loads its own.
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Touch(ctx, []Ref{{PID: "ttl", Owner: "o"}}, time.Now()); err != nil {
		t.Fatalf("Touch after SCRIPT FLUSH: %v", err)
	}
	// A stored list that does not decode is an error; entries that do not
	// check are dropped.
	client.HSet(ctx, "test:session:bad", "owner", "o", "held", "{", "seen", "1")
	if _, _, err := s.Claim(ctx, "bad", "n"); err == nil {
		t.Fatal("a session that does not decode was claimed")
	}
	client.HSet(ctx, "test:session:odd", "owner", "o", "held", `[{"k":"project","id":1},{"k":"root","id":2},{"k":"batch","id":{"x":1}},{"k":"job","id":"j","p":[1]}]`, "seen", "1")
	got, found, err := s.Claim(ctx, "odd", "n")
	if err != nil || !found || len(got.Held) != 1 || got.Held[0].ID.Key != "1" {
		t.Fatalf("odd session = %+v %v %v", got, found, err)
	}
	srv.Stop()
	if _, err := s.Save(ctx, Session{PID: "x", Owner: "o"}); err == nil {
		t.Fatal("Save with Redis down returned no error")
	}
}
