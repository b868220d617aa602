package scenario

import (
	"context"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"
)

// fixedBatches: every batch full but the last, the events covered once
// and in order, one batch per size/rate seconds, none due after the step.
func TestFixedBatches(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		rate float64
		size int
	}{
		{5000, 1000, 100},  // rooms100's first stage: 50 batches, one per 100 ms
		{25000, 5000, 100}, // its last: 250 batches, one per 20 ms
		{250, 1000, 100},   // a short last batch
		{3, 10, 1000},      // fewer events than one batch
		{7, 100, 1},        // one event per request
	} {
		slots := fixedBatches(tc.n, tc.rate, tc.size)
		want := int((tc.n + int64(tc.size) - 1) / int64(tc.size))
		if len(slots) != want {
			t.Fatalf("%+v: %d batches, want %d", tc, len(slots), want)
		}
		stepEnd := time.Duration(float64(tc.n) / tc.rate * float64(time.Second))
		period := time.Duration(float64(tc.size) / tc.rate * float64(time.Second))
		var next int64
		for i, s := range slots {
			if s.First != next || s.End <= s.First {
				t.Fatalf("%+v: batch %d covers [%d,%d), want it to start at %d", tc, i, s.First, s.End, next)
			}
			if size := s.End - s.First; i < len(slots)-1 && size != int64(tc.size) {
				t.Errorf("%+v: batch %d carries %d events, want %d", tc, i, size, tc.size)
			}
			if s.Due <= 0 || s.Due > stepEnd+time.Microsecond {
				t.Errorf("%+v: batch %d due at %v, outside (0, %v]", tc, i, s.Due, stepEnd)
			}
			if i > 0 && i < len(slots)-1 {
				if gap := s.Due - slots[i-1].Due; (gap - period).Abs() > time.Microsecond {
					t.Errorf("%+v: batch %d due %v after the previous, want %v", tc, i, gap, period)
				}
			}
			next = s.End
		}
		if next != tc.n {
			t.Errorf("%+v: batches cover %d events, want %d", tc, next, tc.n)
		}
		if last := slots[len(slots)-1].Due; (last - stepEnd).Abs() > time.Microsecond {
			t.Errorf("%+v: last batch due at %v, want the step's end %v", tc, last, stepEnd)
		}
	}
	for _, bad := range [][3]float64{{0, 10, 10}, {10, 0, 10}, {10, 10, 0}} {
		if s := fixedBatches(int64(bad[0]), bad[1], int(bad[2])); s != nil {
			t.Errorf("fixedBatches%v = %v, want nil", bad, s)
		}
	}
}

func fakeEmitter(t *testing.T, clients, rooms int) (*fakeServer, *Harness, context.Context) {
	t.Helper()
	f := &fakeServer{rooms: map[string][]*fakeConn{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	h, err := New(Config{Label: "fake", URLs: []string{srv.URL}, PIDs: []int{os.Getpid()}, Source: "emitter",
		Clients: clients, Rooms: rooms, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if cr := h.Connect(ctx, clients); cr.Connected != clients {
		t.Fatalf("connected %d/%d: %+v", cr.Connected, clients, h.errSamples)
	}
	return f, h, ctx
}

// A paced step in fixed batches posts exactly those batches, and the
// step's record and figures say so.
func TestSteppedPostsFixedBatches(t *testing.T) {
	f, h, ctx := fakeEmitter(t, 10, 3)
	res := Stepped(ctx, h, SteppedParams{Name: "e2e", Rates: []float64{400}, Step: 250 * time.Millisecond,
		P99Limit: time.Minute, Choose: UniformChooser(3), Batch: 25})
	f.mu.Lock()
	posts := slices.Clone(f.posts)
	f.mu.Unlock()
	if !slices.Equal(posts, []int{25, 25, 25, 25}) {
		t.Errorf("the server got requests of %v events, want 4 of 25", posts)
	}
	for _, k := range []string{"mean_batch_events@400", "server_mean_batch_events@400"} {
		if got := res.Figures[k]; got != 25 {
			t.Errorf("%s = %v, want 25", k, got)
		}
	}
	if _, ok := res.Figures["rss_per_client_kb@400"]; !ok {
		t.Errorf("no rss_per_client_kb@400 in %v", res.Figures)
	}
	// 100 events over 3 rooms of 4, 3 and 3 clients: 34*4 + 33*3 + 33*3.
	if !res.OK || res.Totals.Expected != 334 || res.Totals.Delivered != 334 {
		t.Errorf("run not clean or wrong expectations: %+v", res.Totals)
	}
}

// A burst with a batch size posts full batches and a short last one.
func TestBurstPostsBatches(t *testing.T) {
	f, h, ctx := fakeEmitter(t, 5, 1)
	res := Burst(ctx, h, BurstParams{Events: 20, Repeats: 1, Batch: 7, Drain: 5 * time.Second})
	f.mu.Lock()
	posts := slices.Clone(f.posts)
	f.mu.Unlock()
	slices.Sort(posts)
	if !slices.Equal(posts, []int{6, 7, 7}) {
		t.Errorf("the server got requests of %v events, want 7, 7 and 6", posts)
	}
	for _, k := range []string{"mean_batch_events", "server_mean_batch_events"} {
		if got, want := res.Figures[k], 20.0/3; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if !res.OK || res.Totals.Delivered != 100 {
		t.Errorf("burst not clean: %+v", res.Totals)
	}
}
