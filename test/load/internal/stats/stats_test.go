package stats

import (
	"math"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Record(int64(i) * int64(time.Microsecond) * 10) // 10 µs .. 100 ms
	}
	for q, want := range map[float64]float64{0.5: 50, 0.99: 99, 0.999: 99.9} {
		got := h.Quantile(q)
		if math.Abs(got-want)/want > 0.03 {
			t.Errorf("q%.3f = %.3f ms, want %.3f ms ±3%%", q, got, want)
		}
	}
	if got := h.Quantile(1); got != 100 {
		t.Errorf("max = %v, want 100", got)
	}
	if h.Count() != 10000 {
		t.Errorf("count = %d", h.Count())
	}
}

func TestHistogramSmallAndEmpty(t *testing.T) {
	var h Histogram
	if s := h.Summary(); s.Count != 0 || s.P99 != 0 {
		t.Errorf("empty summary = %+v", s)
	}
	h.Record(-5) // clock skew must not panic
	h.Record(1500)
	if h.Count() != 2 {
		t.Errorf("count = %d", h.Count())
	}
}

func TestBitset(t *testing.T) {
	var want, got Bitset
	for i := int64(0); i < 1000; i++ {
		want.Set(i)
		if i%100 != 7 {
			got.Set(i)
		}
	}
	got.Set(5000) // unconfirmed extra
	if got.Set(3) != true {
		t.Error("Set of a present member did not report it")
	}
	if m := got.Missing(&want); m != 10 {
		t.Errorf("Missing = %d, want 10", m)
	}
	if e := got.Extra(&want); e != 1 {
		t.Errorf("Extra = %d, want 1", e)
	}
	if !got.Has(5000) || got.Has(4999) || got.Has(1<<40) {
		t.Error("Has is wrong")
	}
}

func TestSpreadOf(t *testing.T) {
	s := SpreadOf([]float64{3, 1, 2, math.NaN()})
	if s.Median != 2 || s.Min != 1 || s.Max != 3 || s.N != 3 {
		t.Errorf("SpreadOf = %+v", s)
	}
	if s := SpreadOf([]float64{1, 2, 3, 4}); s.Median != 2.5 {
		t.Errorf("even median = %v", s.Median)
	}
	if s := SpreadOf(nil); s.N != 0 {
		t.Errorf("empty = %+v", s)
	}
}
