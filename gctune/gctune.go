// Package gctune is the gateway's garbage-collection policy when GOGC is
// not set: the collector's headroom follows the allocation rate instead of
// the size of the live heap.
//
// With GOGC=100 (Go's default) the heap may grow to twice the live heap
// before a collection, and the pages it reached stay in the process (the
// runtime returns only what lies above its goal). For a gateway that
// headroom is mostly waste: its live heap is mostly idle sessions, which
// allocate next to nothing once connected, while a connect wave (a
// restart, a network blip) briefly allocates a lot and sets the goal at
// twice the heap it leaves behind. The headroom above the live heap buys
// fewer collections only when something allocates into it.
//
// The policy: four times a second, the percentage is set so that the headroom
// holds about Window's worth of allocation at the recent rate (the rate
// rises at once and halves each second when allocation stops), clamped
// between Floor and 100, and never below the runtime's own minimum
// headroom of 4 MiB:
//
//	percent = clamp(100 × rate × Window / scannable, Floor, 100)
//
// where scannable is the live heap plus stacks and globals, what GOGC is a
// percentage of. Its cost is bounded: a process that allocates fast enough
// to fill the default headroom within Window (a gateway under load) runs
// with GOGC=100 exactly as before; one that allocates slower collects at
// most about once per Window, or less often at the floor. Its gain is the
// resident memory of an idle or lightly loaded process: about (1 +
// Floor/100) × the live heap instead of up to twice it.
//
// A lower percentage applies from the next collection, and the runtime
// gives memory back only after one. A process that went idle right after
// a burst may not collect for two minutes (the runtime's periodic
// collection); so once the percentage has settled after a drop (to below
// four fifths of the percentage in effect at the last collection) with no
// collection since, and the heap holds more than 10% over the new goal
// (what the runtime itself retains), the policy starts that collection,
// and a second one at the next update if the heap still holds that much (the
// scavenger's target after the first still counts the burst's garbage):
// at most once per Window. The runtime's scavenger then returns the
// memory at its own pace; nothing is forced back to the system (no
// debug.FreeOSMemory). A smaller drop starts none: an idle process's rate
// wobbles a few points around the floor, and while the scavenger works
// the heap stays over the goal, which no further collection changes.
//
// The percentage in effect is the go_gc_gogc_percent metric of /metrics.
package gctune

import (
	"cmp"
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults of the policy.
const (
	// DefaultFloor is the lowest percentage the policy sets: the heap may
	// grow by a quarter of the live heap between collections when little
	// allocates. Lower saves less than it costs: a sudden burst (a
	// connect wave into an idle gateway) collects back to back until the
	// next update raises the percentage.
	DefaultFloor = 25
	// DefaultWindow is how long the headroom should last at the recent
	// allocation rate: the policy adds at most one collection per
	// Window to what GOGC=100 would run.
	DefaultWindow = 10 * time.Second
	// interval is how often the percentage is updated: a burst into an
	// idle process runs at the low percentage for at most this long.
	interval = 250 * time.Millisecond
	// minHeadroom is the runtime's minimum heap goal at GOGC=100 (4 MiB):
	// a small heap is not collected more often than Go would anyway.
	minHeadroom = 4 << 20
	// ceiling is Go's default percentage, the policy's upper bound.
	ceiling = 100
)

// Percent is the GC percentage for an allocation rate (bytes per second)
// and a scannable heap (the live heap, stacks and globals, in bytes): the
// headroom holds window's worth of allocation, between floor and 100, and
// at least minHeadroom.
func Percent(rate float64, scannable uint64, floor int, window time.Duration) int {
	if scannable == 0 {
		return ceiling
	}
	want := math.Max(rate*window.Seconds(), minHeadroom)
	p := math.Ceil(100 * want / float64(scannable))
	switch {
	case p >= ceiling:
		return ceiling
	case p <= float64(floor):
		return floor
	default:
		return int(p)
	}
}

// Options configure Run.
type Options struct {
	// Floor is the lowest percentage (DefaultFloor when 0); 100 or more
	// turns the policy off.
	Floor int
	// Window is how long the headroom should last (DefaultWindow when 0).
	Window time.Duration
}

// sample is what the policy reads of the runtime.
type sample struct {
	at        time.Time
	allocs    uint64 // bytes allocated since the start, cumulative
	cycles    uint64 // collections since the start
	live      uint64 // the live heap marked by the last collection
	scannable uint64 // live heap + stacks + globals at the last collection
	retained  uint64 // heap memory held: objects, free space in spans, free spans not returned
}

// tuner is the policy's state between updates.
type tuner struct {
	floor   int
	window  time.Duration
	set     func(int) int // debug.SetGCPercent
	collect func()        // runtime.GC
	last    sample
	rate    float64   // bytes per second: rises at once, halves each second
	pct     int       // the percentage set last; 0: none yet
	atCycle int       // the percentage in effect at the last collection seen
	dropped bool      // lowered well below atCycle, and no collection since
	again   bool      // the policy collected at the last step: one follow-up allowed
	forced  time.Time // the last collection the policy started after a drop
}

// step takes a new sample and sets the percentage when it changed.
//
// A lower percentage takes effect at the next collection, and the runtime
// returns free memory to the system only after a collection (its
// scavenger runs once a cycle's sweep is done). Under any load that
// collection comes soon; in a process that has gone idle after a burst it
// can be two minutes away (the runtime's periodic collection), with the
// burst's memory held until then. So once the percentage has settled
// after a drop well below the last collection's percentage, and no
// collection has run since, step starts one if the
// heap holds more than the runtime would keep at the new goal (10% over
// it): at most once per window, and never while the process allocates.
// The scavenger's target after a collection is 10% over the heap in use
// before that collection's sweep, which still counts the burst's garbage:
// so a second collection follows at the next step if the heap still holds
// more than 10% over the goal.
func (t *tuner) step(s sample) {
	if !t.last.at.IsZero() && s.at.After(t.last.at) && s.allocs >= t.last.allocs {
		dt := s.at.Sub(t.last.at).Seconds()
		now := float64(s.allocs-t.last.allocs) / dt
		t.rate = math.Max(now, t.rate*math.Pow(0.5, dt))
	}
	if s.cycles != t.last.cycles {
		t.dropped = false // the runtime collected since: its goal is current
		t.atCycle = cmp.Or(t.pct, ceiling)
	}
	t.last = s
	if p := Percent(t.rate, s.scannable, t.floor, t.window); p != t.pct {
		// Only a drop well below the last collection's percentage is
		// worth a collection (see the package comment).
		t.dropped = t.dropped || (t.atCycle != 0 && p*5 < t.atCycle*4)
		t.pct = p
		t.set(p)
		return
	}
	goal := s.live + s.scannable*uint64(t.pct)/100
	over := s.retained > goal+goal/10
	switch {
	case t.again:
		t.again = false
		if over {
			t.collect()
		}
	case t.dropped && over && (t.forced.IsZero() || s.at.Sub(t.forced) >= t.window):
		t.dropped, t.again, t.forced = false, true, s.at
		t.collect()
	}
}

// Active reports whether the policy runs: GOGC is not set (a GOGC the
// operator chose wins) and the floor is below 100.
func Active(gogc string, floor int) bool {
	return gogc == "" && floor < ceiling
}

// Run applies the policy until ctx ends, then restores GOGC=100. Callers
// check Active first.
func Run(ctx context.Context, opts Options) {
	if opts.Floor <= 0 {
		opts.Floor = DefaultFloor
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	t := &tuner{floor: opts.Floor, window: opts.Window, set: debug.SetGCPercent, collect: runtime.GC}
	defer debug.SetGCPercent(ceiling)
	samples := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		metrics.Read(samples)
		s := sample{at: time.Now(), allocs: value(samples[0]), cycles: value(samples[1]), live: value(samples[2]),
			scannable: value(samples[2]) + value(samples[3]) + value(samples[4]),
			retained:  value(samples[5]) + value(samples[6]) + value(samples[7])}
		t.step(s)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// value is a metric's value, 0 when this runtime does not have it.
func value(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}
