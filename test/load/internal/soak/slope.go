package soak

import (
	"math"
)

// Fit is a least-squares line over the fit window.
type Fit struct {
	Metric       string  `json:"metric"`
	N            int     `json:"points"`
	Mean         float64 `json:"mean"`
	SlopePerHour float64 `json:"slope_per_hour"`
	Intercept    float64 `json:"intercept"`
	Drift        float64 `json:"drift"`       // slope x the fit window's length
	DriftPct     float64 `json:"drift_pct"`   // drift / mean
	Bound        float64 `json:"bound"`       // largest |drift| allowed
	ResidualSD   float64 `json:"residual_sd"` // noise around the line
	Pass         bool    `json:"pass"`
}

// Bound is the flatness rule of one metric: |drift| over the fit window
// must stay within Rel x the mean, or Abs, whichever is larger.
type Bound struct {
	Rel float64
	Abs float64
}

// LeastSquares fits y = a + b x over the points whose y is a number.
func LeastSquares(xs, ys []float64) (a, b, sd float64, n int) {
	var sx, sy float64
	for i := range xs {
		if math.IsNaN(ys[i]) {
			continue
		}
		sx += xs[i]
		sy += ys[i]
		n++
	}
	if n < 2 {
		return math.NaN(), math.NaN(), math.NaN(), n
	}
	mx, my := sx/float64(n), sy/float64(n)
	var sxx, sxy float64
	for i := range xs {
		if math.IsNaN(ys[i]) {
			continue
		}
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return my, 0, 0, n
	}
	b = sxy / sxx
	a = my - b*mx
	var ss float64
	for i := range xs {
		if math.IsNaN(ys[i]) {
			continue
		}
		r := ys[i] - (a + b*xs[i])
		ss += r * r
	}
	if n > 2 {
		sd = math.Sqrt(ss / float64(n-2))
	}
	return a, b, sd, n
}

// Check fits the samples of the fit window [from, to] (seconds) and
// applies the bound.
func Check(metric string, ts, ys []float64, from, to float64, bd Bound) Fit {
	var xs, vs []float64
	for i, t := range ts {
		if t >= from && t <= to {
			xs = append(xs, t)
			vs = append(vs, ys[i])
		}
	}
	f := Fit{Metric: metric}
	a, b, sd, n := LeastSquares(xs, vs)
	f.N, f.Intercept, f.ResidualSD = n, a, sd
	if n < 3 {
		f.Intercept, f.ResidualSD = 0, 0
		return f
	}
	var sum float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			sum += v
		}
	}
	f.Mean = sum / float64(n)
	f.SlopePerHour = b * 3600
	f.Drift = b * (to - from)
	if f.Mean != 0 {
		f.DriftPct = 100 * f.Drift / f.Mean
	}
	f.Bound = math.Max(bd.Rel*math.Abs(f.Mean), bd.Abs)
	f.Pass = math.Abs(f.Drift) <= f.Bound
	return f
}
