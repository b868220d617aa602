package gctune

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		name      string
		rate      float64
		scannable uint64
		want      int
	}{
		{"idle, large heap: the floor", 100 << 10, 200 * mib, 25},
		{"no allocation at all: the floor", 0, 200 * mib, 25},
		{"fills the default headroom within the window: 100", 20 * mib, 200 * mib, 100},
		{"much faster: still 100", 500 * mib, 200 * mib, 100},
		{"in between: window's worth", 5 * mib, 200 * mib, 25},
		{"in between: window's worth (2)", 10 * mib, 200 * mib, 50},
		{"small heap: at least the runtime's 4 MiB", 0, 8 * mib, 50},
		{"tiny heap: 100", 0, 2 * mib, 100},
		{"nothing measured yet: 100", 0, 0, 100},
	} {
		if got := Percent(c.rate, c.scannable, 25, 10*time.Second); got != c.want {
			t.Errorf("%s: Percent(%.0f, %d) = %d, want %d", c.name, c.rate, c.scannable, got, c.want)
		}
	}
}

// The rate rises at once and halves each second; the percentage is set
// only when it changes.
func TestTunerStep(t *testing.T) {
	var set []int
	tu := &tuner{floor: 25, window: 10 * time.Second, set: func(p int) int { set = append(set, p); return 0 },
		collect: func() { t.Fatal("collected") }}
	t0 := time.Unix(1000, 0)
	heap := uint64(200 * mib)
	steps := []struct {
		allocs uint64 // cumulative, at t0 + i seconds
		want   int    // percentage after the step
	}{
		{0, 25},               // first sample: no rate yet, the floor
		{100 * mib, 100},      // a connect wave: 100 MiB/s
		{200 * mib, 100},      // still
		{200 * mib, 100},      // stopped: 50 MiB/s remembered
		{200 * mib, 100},      // 25 MiB/s
		{200 * mib, 63},       // 12.5 MiB/s
		{200 * mib, 32},       // 6.25 MiB/s
		{200*mib + 1, 25},     // idle
		{200*mib + 1<<10, 25}, // idle
	}
	for i, s := range steps {
		tu.step(sample{at: t0.Add(time.Duration(i) * time.Second), allocs: s.allocs, live: heap, scannable: heap, retained: heap})
		if tu.pct != s.want {
			t.Fatalf("step %d: percent %d, want %d (rate %.0f)", i, tu.pct, s.want, tu.rate)
		}
	}
	want := []int{25, 100, 63, 32, 25}
	if len(set) != len(want) {
		t.Fatalf("set %v, want %v", set, want)
	}
	for i := range want {
		if set[i] != want[i] {
			t.Fatalf("set %v, want %v", set, want)
		}
	}
}

// After a drop, once the percentage has settled, the policy collects when
// the heap holds more than 10% over the new goal and no collection ran
// since, and once more at the next step if the heap still does; at most
// once per window.
func TestTunerCollectsAfterDrop(t *testing.T) {
	live := uint64(100 * mib) // goal at 25%: 125 MiB, 10% over it: 137.5 MiB
	for _, c := range []struct {
		name          string
		before, after uint64 // heap held before the policy's first collection, after it
		cycleAt       int    // the runtime collects by itself at this step (0: never)
		want          int    // collections the policy starts
	}{
		{"the burst's memory is held, then returned: one collection", 200 * mib, 130 * mib, 0, 1},
		{"still held after one: a second, no more", 200 * mib, 180 * mib, 0, 2},
		{"held within 10% of the goal: none", 135 * mib, 135 * mib, 0, 0},
		{"the runtime collected after the drop: none", 200 * mib, 200 * mib, 8, 0},
	} {
		collected := 0
		tu := &tuner{floor: 25, window: 10 * time.Second, set: func(int) int { return 0 }, collect: func() { collected++ }}
		t0 := time.Unix(1000, 0)
		allocs, cycles := uint64(0), uint64(10)
		for i := range 30 {
			if i == 1 {
				allocs += 100 * mib // a burst, then nothing
			}
			if i == c.cycleAt {
				cycles++
			}
			retained := c.before
			if collected > 0 {
				retained = c.after
			}
			tu.step(sample{at: t0.Add(time.Duration(i) * time.Second), allocs: allocs, cycles: cycles + uint64(collected),
				live: live, scannable: live, retained: retained})
		}
		if collected != c.want {
			t.Errorf("%s: %d collections, want %d", c.name, collected, c.want)
		}
	}
}

func TestActive(t *testing.T) {
	if !Active("", DefaultFloor) {
		t.Error("not active by default")
	}
	if Active("100", DefaultFloor) || Active("off", DefaultFloor) {
		t.Error("active with GOGC set")
	}
	if Active("", 100) {
		t.Error("active with a floor of 100")
	}
}

// Run sets a percentage at once and restores 100 when it stops.
func TestRunRestores(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, Options{}); close(done) }()
	cancel()
	<-done
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GOGC %d after Run stopped, want 100", p)
	}
}

// Once the burst's memory is collected, an idle process's rate wobbling
// around the floor (a few points up, then back) starts no more
// collections, though the heap still holds more than 10% over the goal
// while the runtime returns the free memory at its own pace.
func TestTunerIgnoresWobbleAtFloor(t *testing.T) {
	live := uint64(100 * mib)
	collected := 0
	tu := &tuner{floor: 25, window: 10 * time.Second, set: func(int) int { return 0 }, collect: func() { collected++ }}
	t0 := time.Unix(1000, 0)
	allocs, cycles := uint64(0), uint64(10)
	for i := range 120 {
		switch {
		case i == 1:
			allocs += 100 * mib // a burst, then nothing
		case i >= 30 && i%10 == 0:
			allocs += 3 * mib // the idle rate wobbles: 30% for a step
		}
		tu.step(sample{at: t0.Add(time.Duration(i) * time.Second), allocs: allocs, cycles: cycles + uint64(collected),
			live: live, scannable: live, retained: 180 * mib})
		if i == 30 && tu.pct <= 25 {
			t.Fatalf("the wobble sets %d%%, want above the floor", tu.pct)
		}
	}
	if collected != 2 {
		t.Errorf("%d collections, want 2 (the burst's, and one follow-up)", collected)
	}
}
