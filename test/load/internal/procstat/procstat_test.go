package procstat

import (
	"testing"
	"time"
)

func TestTaskDelta(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name string
		a, b map[int]time.Duration
		want time.Duration
		ok   bool
	}{
		{"same threads", map[int]time.Duration{1: 10 * ms, 2: 5 * ms}, map[int]time.Duration{1: 13 * ms, 2: 9 * ms}, 7 * ms, true},
		{"a thread started: all of its time", map[int]time.Duration{1: 10 * ms}, map[int]time.Duration{1: 11 * ms, 3: 2 * ms}, 3 * ms, true},
		{"a thread ended: unknown", map[int]time.Duration{1: 10 * ms, 2: 5 * ms}, map[int]time.Duration{1: 13 * ms}, 0, false},
		{"an id reused: unknown", map[int]time.Duration{1: 10 * ms}, map[int]time.Duration{1: 2 * ms}, 0, false},
		{"unread: unknown", nil, map[int]time.Duration{1: 2 * ms}, 0, false},
	} {
		got, ok := taskDelta(c.a, c.b)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %v %v, want %v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// The threads' scheduler time of this process agrees with its utime +
// stime, to the latter's 10 ms ticks.
func TestBetweenUsesThreadTime(t *testing.T) {
	a, err := Read(0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Tasks == nil {
		t.Skip("no /proc/self/task/*/schedstat here")
	}
	x := 0
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		x++ // burn about 200 ms of CPU (bounded by wall time)
	}
	b, err := Read(0)
	if err != nil {
		t.Fatal(err)
	}
	w := Between(a, b)
	ticks := (b.CPU - a.CPU).Seconds()
	if w.CPUSeconds <= 0 || w.CPUSeconds < ticks-0.03 || w.CPUSeconds > ticks+0.03 {
		t.Fatalf("thread time %.4f s, ticks %.2f s (%d loops)", w.CPUSeconds, ticks, x)
	}
	if _, ok := taskDelta(a.Tasks, b.Tasks); !ok {
		t.Skip("a thread of the test ended in between: the ticks were used")
	}
}
