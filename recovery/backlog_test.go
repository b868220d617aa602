package recovery

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/meshgen/gateway/event"
)

// ev is an event of the in-process bus: id n, to rooms.
func ev(n int, name string, rooms ...string) event.Event {
	return event.Event{ID: strconv.Itoa(n), Name: name, Rooms: rooms, Payload: json.RawMessage(`{"n":` + strconv.Itoa(n) + `}`)}
}

func ids(b *Backlog, after string) []string {
	var out []string
	b.Since(after, func(e event.Event) bool { out = append(out, e.ID); return true })
	return out
}

func TestBacklogKeepsOrderAndLocates(t *testing.T) {
	b := NewBacklog(1<<20, 0)
	for _, n := range []int{3, 5, 8} {
		b.Append(ev(n, event.LogLine, "project_1"))
	}
	for id, want := range map[string]Position{"3": Kept, "5": Kept, "8": Kept, "4": Missing, "2": Older, "9": Newer} {
		if got := b.Locate(id); got != want {
			t.Errorf("Locate(%s) = %v, want %v", id, got, want)
		}
	}
	if got := ids(b, "3"); len(got) != 2 || got[0] != "5" || got[1] != "8" {
		t.Fatalf("Since(3) = %v", got)
	}
	if got := ids(b, "4"); len(got) != 2 || got[0] != "5" {
		t.Fatalf("Since(4) = %v", got)
	}
	if got := ids(b, ""); len(got) != 3 {
		t.Fatalf("Since(\"\") = %v", got)
	}
	if b.Oldest() != "3" || b.Newest() != "8" || !b.Has("5") || b.Has("4") {
		t.Fatalf("oldest %s newest %s", b.Oldest(), b.Newest())
	}
}

// Past its byte bound the oldest events go, and the backlog says what it
// can no longer answer for.
func TestBacklogEvictsByBytesAndAge(t *testing.T) {
	one := int64(len("1")+len(event.LogLine)+len(`{"n":1}`)) + entryOverhead + int64(len("project_1")) + 16
	b := NewBacklog(3*one, 0)
	for n := 1; n <= 5; n++ {
		b.Append(ev(n, event.LogLine, "project_1"))
	}
	if n, bytes := b.Len(); n != 3 || bytes > 3*one {
		t.Fatalf("kept %d events (%d bytes), want 3 within %d", n, bytes, 3*one)
	}
	if b.Oldest() != "3" || !b.Evicted("2") || b.Evicted("3") {
		t.Fatalf("oldest %s; evicted(2) %v evicted(3) %v", b.Oldest(), b.Evicted("2"), b.Evicted("3"))
	}
	if b.Complete("1") || !b.Complete("2") || !b.Complete("4") {
		t.Fatal("Complete must hold from the newest evicted event on")
	}

	now := time.Unix(1000, 0)
	aged := NewBacklog(1<<20, time.Minute)
	aged.now = func() time.Time { return now }
	aged.Append(ev(1, event.LogLine, "r"))
	now = now.Add(2 * time.Minute)
	aged.Append(ev(2, event.LogLine, "r"))
	if aged.Oldest() != "2" {
		t.Fatalf("an event older than the age bound was kept: oldest %s", aged.Oldest())
	}
	now = now.Add(time.Hour)
	aged.Append(ev(3, event.LogLine, "r"))
	if n, _ := aged.Len(); n != 1 {
		t.Fatalf("kept %d, want only the newest", n)
	}
}

// Thousands of appends past the bound keep the slice's memory bounded.
func TestBacklogCompacts(t *testing.T) {
	b := NewBacklog(1<<20, 0)
	for n := 1; n <= 100_000; n++ {
		b.Append(ev(n, event.LogLine, "r"))
	}
	if n, bytes := b.Len(); bytes > 1<<20 || n == 0 {
		t.Fatalf("kept %d events, %d bytes", n, bytes)
	}
	if cap(b.events) > 4*(len(b.events)-b.start)+2048 {
		t.Fatalf("slice capacity %d for %d events kept", cap(b.events), len(b.events)-b.start)
	}
}

func TestBacklogLastStatus(t *testing.T) {
	b := NewBacklog(1<<20, 0)
	b.Append(ev(1, event.BatchStatus, "batch_a"))
	b.Append(ev(2, event.LogLine, "batch_a"))
	b.Append(ev(3, event.BatchStatus, "batch_a", "project_1"))
	b.Append(ev(4, event.BatchStatus, "batch_b"))
	if e, ok := b.LastStatus("batch_a"); !ok || e.ID != "3" {
		t.Fatalf("LastStatus(batch_a) = %v %v", e.ID, ok)
	}
	if _, ok := b.LastStatus("batch_c"); ok {
		t.Fatal("a status for a room without one")
	}
	small := NewBacklog(1, 0) // keeps only the newest event
	small.Append(ev(1, event.BatchStatus, "batch_a"))
	small.Append(ev(2, event.LogLine, "batch_a"))
	if _, ok := small.LastStatus("batch_a"); ok {
		t.Fatal("an evicted status is still answered")
	}
}

// QuietFor tells how far a set of rooms had no event: from their newest
// event (or, for a room without one, the newest evicted event or the
// position before the first one delivered) to the newest event kept.
func TestBacklogQuiet(t *testing.T) {
	b := NewBacklog(1<<20, 0)
	if _, ok := b.QuietFor([]string{"r"}); ok {
		t.Fatal("quiet stretch of an empty backlog")
	}
	b.Append(ev(10, event.LogLine, "a"))
	b.Append(ev(11, event.LogLine, "b"))
	b.Append(ev(12, event.LogLine, "c"))
	for _, tc := range []struct {
		rooms    []string
		from, to string
	}{
		{[]string{"a"}, "10", "12"},
		{[]string{"a", "b"}, "11", "12"},
		{[]string{"z"}, "9", "12"},
		{nil, "9", "12"},
		{[]string{"c"}, "12", "12"},
	} {
		q, ok := b.QuietFor(tc.rooms)
		if !ok || q.From != tc.from || q.To != tc.to {
			t.Errorf("QuietFor(%v) = %+v, want %s..%s", tc.rooms, q, tc.from, tc.to)
		}
	}
	q := Quiet{From: "10", To: "12"}
	for offset, want := range map[string]bool{"9": false, "10": true, "11": true, "12": false, "13": false} {
		if q.Applies(offset) != want {
			t.Errorf("Applies(%s) = %v", offset, !want)
		}
	}
	if (Quiet{}).Applies("5") {
		t.Fatal("an empty stretch applies")
	}
}

func TestBefore(t *testing.T) {
	for in, want := range map[string]string{"5": "4", "0": "0", "7-3": "7-2", "7-0": "6-18446744073709551615", "0-0": "0-0"} {
		if got := before(in); got != want {
			t.Errorf("before(%s) = %s, want %s", in, got, want)
		}
	}
}
