package recovery_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/recovery"
	"github.com/meshgen/gateway/test/redistest"
)

func logLine(id string, room string) event.Event {
	return event.Event{ID: id, Name: event.LogLine, Rooms: []string{room}, Payload: json.RawMessage(`{"job_id":"j","message":"` + id + `"}`)}
}

func inRooms(rooms ...string) func([]string) bool {
	return func(names []string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return slices.Contains(rooms, n) })
	}
}

// With the in-process bus the backlog is the only history: offsets it
// holds are recovered, others are not, and the bounds hold.
func TestPlanFromTheBacklog(t *testing.T) {
	ctx := context.Background()
	b := recovery.NewBacklog(1<<20, 0)
	for n := 1; n <= 10; n++ {
		room := "project_a"
		if n%2 == 0 {
			room = "project_b"
		}
		b.Append(logLine(strconv.Itoa(n), room))
	}
	p := &recovery.Planner{Backlog: b, MaxEvents: 3}
	for _, tc := range []struct {
		offset  string
		rooms   []string
		outcome recovery.Outcome
	}{
		{"4", []string{"project_a"}, recovery.Recovered}, // 5, 7, 9
		{"3", []string{"project_a"}, recovery.Recovered}, // 5, 7, 9: the cap
		{"2", []string{"project_a"}, recovery.TooMany},   // 3, 5, 7, 9
		{"10", []string{"project_a", "project_b"}, recovery.Recovered},
		{"11", nil, recovery.Unknown},                   // never issued
		{"not-an-id", nil, recovery.Unknown},            // not an id at all
		{"1-2", nil, recovery.Unknown},                  // another bus's form, absent
		{"18446744073709551616", nil, recovery.Unknown}, // past 64 bits
	} {
		_, outcome, err := p.Plan(ctx, tc.offset, recovery.Quiet{}, inRooms(tc.rooms...))
		if err != nil || outcome != tc.outcome {
			t.Errorf("Plan(%s, %v) = %s %v, want %s", tc.offset, tc.rooms, outcome, err, tc.outcome)
		}
	}
	r, _, _ := p.Plan(ctx, "4", recovery.Quiet{}, inRooms("project_a"))
	if r.Through != "4" || len(r.Events) != 0 {
		t.Fatalf("replay from the backlog = %+v, want none read and through 4", r)
	}

	byBytes := &recovery.Planner{Backlog: b, MaxBytes: 100}
	if _, outcome, _ := byBytes.Plan(ctx, "1", recovery.Quiet{}, inRooms("project_a", "project_b")); outcome != recovery.TooMany {
		t.Fatalf("over the byte bound: %s", outcome)
	}

	small := recovery.NewBacklog(1, 0)
	small.Append(logLine("1", "r"))
	small.Append(logLine("2", "r"))
	if _, outcome, _ := (&recovery.Planner{Backlog: small}).Plan(ctx, "1", recovery.Quiet{}, inRooms("r")); outcome != recovery.Expired {
		t.Fatalf("an evicted offset: %s, want expired", outcome)
	}
}

// A quiet stretch lets a client whose rooms were idle skip to its end,
// which must itself still be held.
func TestPlanSkipsAQuietStretch(t *testing.T) {
	ctx := context.Background()
	b := recovery.NewBacklog(1<<20, 0)
	for n := 1; n <= 20; n++ {
		b.Append(logLine(strconv.Itoa(n), "other"))
	}
	p := &recovery.Planner{Backlog: b, MaxEvents: 5}
	quiet := recovery.Quiet{From: "2", To: "18"}
	r, outcome, err := p.Plan(ctx, "3", quiet, inRooms("mine"))
	if err != nil || outcome != recovery.Recovered || r.Through != "18" {
		t.Fatalf("Plan = %+v %s %v, want through 18", r, outcome, err)
	}
	// An offset before the stretch does not skip.
	if r, _, _ := p.Plan(ctx, "1", quiet, inRooms("mine")); r.Through != "1" {
		t.Fatalf("through %s, want 1", r.Through)
	}
}

func newStreamBus(t *testing.T) *bus.Redis {
	t.Helper()
	srv := redistest.Start(t)
	b, err := bus.NewRedis(bus.RedisOptions{URL: srv.URL(), Stream: "test:plan", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// publishAll publishes n log lines to room and returns them with their
// stream ids.
func publishAll(t *testing.T, b *bus.Redis, room string, n int) []event.Event {
	t.Helper()
	ctx := context.Background()
	before, err := b.LastID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := logLine("x", room)
		e.Payload = json.RawMessage(`{"job_id":"j","message":"` + strconv.Itoa(i) + `"}`)
		if err := b.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	events, _, err := b.After(ctx, before, int64(n))
	if err != nil || len(events) != n {
		t.Fatalf("read back %d events: %v", len(events), err)
	}
	return events
}

// With Redis, an offset older than the node's backlog is read from the
// stream, up to where the backlog takes over; a trimmed offset is
// expired, one never issued unknown, one not yet delivered here waited
// for.
func TestPlanFromTheStream(t *testing.T) {
	ctx := context.Background()
	rb := newStreamBus(t)
	events := publishAll(t, rb, "project_a", 30)
	other := publishAll(t, rb, "project_b", 5)
	// This node delivered only from the 21st event of project_a on.
	b := recovery.NewBacklog(1<<20, 0)
	for _, e := range append(slices.Clone(events[20:]), other...) {
		b.Append(e)
	}
	p := &recovery.Planner{Backlog: b, History: rb, MaxEvents: 100}
	r, outcome, err := p.Plan(ctx, events[4].ID, recovery.Quiet{}, inRooms("project_a"))
	if err != nil || outcome != recovery.Recovered {
		t.Fatalf("Plan = %s %v", outcome, err)
	}
	var got []string
	for _, e := range r.Events {
		got = append(got, e.ID)
	}
	var want []string
	for _, e := range events[5:20] {
		want = append(want, e.ID)
	}
	if !slices.Equal(got, want) || r.Through != events[19].ID {
		t.Fatalf("read from the stream %v through %s, want %v through %s", got, r.Through, want, events[19].ID)
	}

	// Over the cap counting both the stream's and the backlog's events.
	capped := &recovery.Planner{Backlog: b, History: rb, MaxEvents: 20}
	if _, outcome, _ := capped.Plan(ctx, events[4].ID, recovery.Quiet{}, inRooms("project_a")); outcome != recovery.TooMany {
		t.Fatalf("25 missed with a cap of 20: %s", outcome)
	}
	// The scan bound.
	scanned := &recovery.Planner{Backlog: recovery.NewBacklog(1<<20, 0), History: rb, MaxScan: 1}
	if _, outcome, _ := scanned.Plan(ctx, events[0].ID, recovery.Quiet{}, inRooms("nobody")); outcome != recovery.TooMany {
		t.Fatalf("past the scan bound: %s", outcome)
	}

	// Not yet delivered here (the backlog ends before it): recovered,
	// continuing from the offset once the node gets there.
	behind := recovery.NewBacklog(1<<20, 0)
	behind.Append(events[0])
	r, outcome, _ = (&recovery.Planner{Backlog: behind, History: rb}).Plan(ctx, events[10].ID, recovery.Quiet{}, inRooms("project_a"))
	if outcome != recovery.Recovered || r.Through != events[10].ID || len(r.Events) != 0 {
		t.Fatalf("ahead of the node: %+v %s", r, outcome)
	}

	ms, _ := strconv.ParseUint(events[0].ID[:len(events[0].ID)-2], 10, 64)
	never := strconv.FormatUint(ms+1, 10) + "-999"
	for offset, want := range map[string]recovery.Outcome{never: recovery.Unknown, "1-0": recovery.Expired} {
		if _, outcome, _ := (&recovery.Planner{Backlog: recovery.NewBacklog(1<<20, 0), History: rb}).Plan(ctx, offset, recovery.Quiet{}, inRooms("project_a")); outcome != want {
			t.Errorf("Plan(%s) = %s, want %s", offset, outcome, want)
		}
	}
	if err := rb.Client().XTrimMinID(ctx, "test:plan", events[10].ID).Err(); err != nil {
		t.Fatal(err)
	}
	if _, outcome, _ := (&recovery.Planner{Backlog: recovery.NewBacklog(1<<20, 0), History: rb}).Plan(ctx, events[4].ID, recovery.Quiet{}, inRooms("project_a")); outcome != recovery.Expired {
		t.Fatalf("a trimmed offset: %s", outcome)
	}
}

// A Redis that does not answer is Unavailable, with the error.
func TestPlanRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	rb, err := bus.NewRedis(bus.RedisOptions{URL: srv.URL() + "?dial_timeout=200ms", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, outcome, err := (&recovery.Planner{Backlog: recovery.NewBacklog(1<<20, 0), History: rb}).Plan(ctx, "5-0", recovery.Quiet{}, inRooms("r"))
	if outcome != recovery.Unavailable || err == nil {
		t.Fatalf("Plan with Redis down = %s %v", outcome, err)
	}
}
