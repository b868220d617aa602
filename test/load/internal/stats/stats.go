// Package stats holds the load generator's counters: a lock-free
// log-linear latency histogram and growable bitsets for loss/duplicate
// accounting.
package stats

import (
	"math"
	"math/bits"
	"sort"
	"sync/atomic"
)

// Histogram records durations in microseconds with ~1.6% relative
// precision (64 sub-buckets per power of two) from 1 µs to ~1 hour.
// Record is safe for concurrent use.
type Histogram struct {
	counts [64 * 33]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const subBits = 6
const subCount = 1 << subBits

func bucketOf(us int64) int {
	if us < subCount {
		if us < 0 {
			us = 0
		}
		return int(us)
	}
	e := bits.Len64(uint64(us)) - subBits // >= 1
	idx := e*subCount + int((uint64(us)>>uint(e-1))&(subCount-1))
	if idx >= len(Histogram{}.counts) {
		idx = len(Histogram{}.counts) - 1
	}
	return idx
}

// lowerBound is the smallest value of bucket i (in µs).
func lowerBound(i int) float64 {
	if i < subCount {
		return float64(i)
	}
	e := i / subCount
	sub := i % subCount
	return float64(uint64(subCount+sub) << uint(e-1))
}

// Record adds one value in nanoseconds.
func (h *Histogram) Record(ns int64) {
	us := ns / 1000
	h.counts[bucketOf(us)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Quantile returns the q-quantile (0..1) in milliseconds; NaN when empty.
func (h *Histogram) Quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return math.NaN()
	}
	if q >= 1 {
		return float64(h.max.Load()) / 1000
	}
	target := uint64(math.Ceil(q * float64(n)))
	if target == 0 {
		target = 1
	}
	var acc uint64
	for i := range h.counts {
		acc += h.counts[i].Load()
		if acc >= target {
			// Midpoint of the bucket.
			lo := lowerBound(i)
			hi := lowerBound(i + 1)
			v := (lo + hi) / 2
			if m := float64(h.max.Load()); v > m {
				v = m
			}
			return v / 1000
		}
	}
	return float64(h.max.Load()) / 1000
}

// Merge adds o's counts into h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	for {
		m := h.max.Load()
		om := o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			break
		}
	}
}

// Latency is the summary of a histogram, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary returns the histogram's quantiles (zeros when empty).
func (h *Histogram) Summary() Latency {
	if h.Count() == 0 {
		return Latency{}
	}
	r := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	return Latency{
		Count: h.Count(),
		P50:   r(h.Quantile(0.50)),
		P90:   r(h.Quantile(0.90)),
		P99:   r(h.Quantile(0.99)),
		P999:  r(h.Quantile(0.999)),
		Max:   r(h.Quantile(1)),
	}
}

// Bitset is a growable set of small non-negative integers. Not safe for
// concurrent use.
type Bitset struct {
	w []uint64
}

// Set adds i and reports whether it was already present.
func (b *Bitset) Set(i int64) (already bool) {
	word := int(i >> 6)
	if word >= len(b.w) {
		n := cap(b.w)
		if n < 4 {
			n = 4
		}
		for n <= word {
			n *= 2
		}
		nw := make([]uint64, n)
		copy(nw, b.w)
		b.w = nw
	}
	m := uint64(1) << uint(i&63)
	already = b.w[word]&m != 0
	b.w[word] |= m
	return already
}

// Has reports whether i is present.
func (b *Bitset) Has(i int64) bool {
	word := int(i >> 6)
	return word < len(b.w) && b.w[word]&(uint64(1)<<uint(i&63)) != 0
}

// Count is the number of members.
func (b *Bitset) Count() int {
	n := 0
	for _, w := range b.w {
		n += bits.OnesCount64(w)
	}
	return n
}

// Missing counts the members of want absent from b.
func (b *Bitset) Missing(want *Bitset) int {
	n := 0
	for i, w := range want.w {
		var have uint64
		if i < len(b.w) {
			have = b.w[i]
		}
		n += bits.OnesCount64(w &^ have)
	}
	return n
}

// Extra counts the members of b absent from want.
func (b *Bitset) Extra(want *Bitset) int { return want.Missing(b) }

// Spread is the median, minimum and maximum of a set of figures.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// SpreadOf summarises vs (NaNs are skipped; N is 0 when none is left).
func SpreadOf(vs []float64) Spread {
	xs := make([]float64, 0, len(vs))
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return Spread{}
	}
	sort.Float64s(xs)
	m := xs[len(xs)/2]
	if len(xs)%2 == 0 {
		m = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return Spread{Median: m, Min: xs[0], Max: xs[len(xs)-1], N: len(xs)}
}
