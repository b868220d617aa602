package soak

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

var (
	cBlack = color.RGBA{0x20, 0x20, 0x20, 0xff}
	cGrey  = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	cDark  = color.RGBA{0x66, 0x66, 0x66, 0xff}
	cWhite = color.RGBA{0xff, 0xff, 0xff, 0xff}
	cWarm  = color.RGBA{0xf2, 0xf2, 0xf2, 0xff}
	cDown  = color.RGBA{0xf8, 0xd0, 0xd0, 0xff}
	cFit   = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	series = []color.RGBA{{0x1f, 0x77, 0xb4, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x94, 0x67, 0xbd, 0xff}}
)

type line struct {
	label string
	ys    []float64
	fit   *Fit
}

type chartPanel struct {
	title string
	lines []line
	log   bool
}

const (
	pW = 620
	pH = 300
)

// WritePlot draws the sampled figures of s (one panel per figure, one line
// per node, the fitted line over the fit window in red, the warm-up shaded
// grey and the Redis outage red) into a PNG at path.
func WritePlot(path string, s *Summary) error {
	ts := make([]float64, len(s.Samples))
	for i, x := range s.Samples {
		ts[i] = x.T
	}
	// The fits are recomputed from the samples (a record read back from
	// JSON may lack the intercepts); they are deterministic.
	fits := Fits(s.Samples, s.Nodes, s.FitWindow[0], s.FitWindow[1])
	fitOf := map[string]*Fit{}
	for i := range fits {
		fitOf[fits[i].Metric] = &fits[i]
	}
	nodeLines := func(key string, f func(NodeSample) F) []line {
		var ls []line
		for n := 0; n < s.Nodes; n++ {
			ys := make([]float64, len(s.Samples))
			for i, x := range s.Samples {
				ys[i] = math.NaN()
				if n < len(x.Nodes) {
					ys[i] = float64(f(x.Nodes[n]))
				}
			}
			ls = append(ls, line{"node " + strconv.Itoa(n), ys, fitOf["node"+strconv.Itoa(n)+"."+key]})
		}
		return ls
	}
	one := func(label, key string, f func(Sample) F) []line {
		ys := make([]float64, len(s.Samples))
		for i, x := range s.Samples {
			ys[i] = float64(f(x))
		}
		return []line{{label, ys, fitOf[key]}}
	}
	panels := []chartPanel{
		{"Gateway RSS, MB (/proc VmRSS)", nodeLines("rss_mb", func(n NodeSample) F { return n.RSSMB }), false},
		{"Gateway goroutines (/metrics go_goroutines)", nodeLines("goroutines", func(n NodeSample) F { return n.Goroutines }), false},
		{"Gateway open fds (/proc/<pid>/fd)", nodeLines("fds", func(n NodeSample) F { return n.FDs }), false},
		{"Redis used_memory, MB", one("redis", "redis_used_memory_mb", func(x Sample) F { return x.RedisMemMB }), false},
		{"Redis keys (DBSIZE)", one("redis", "redis_keys", func(x Sample) F { return x.RedisKeys }), false},
		{"p99 delivery latency per interval, ms, log scale", one("all clients", "p99_ms", func(x Sample) F { return x.P99MS }), true},
	}
	cols := 2
	rows := (len(panels) + cols - 1) / cols
	head := 56
	img := image.NewRGBA(image.Rect(0, 0, cols*pW, head+rows*pH))
	draw.Draw(img, img.Bounds(), &image.Uniform{cWhite}, image.Point{}, draw.Src)
	verdict := "PASS"
	if !s.Pass {
		verdict = "FAIL"
	}
	drawText(img, 16, 10, fmt.Sprintf("Soak %s: %d clients (%.0f%% polling, %.0f%%/min churn), %.0f events/s over %d rooms, %d gateway nodes, Redis restarted at %.0f s",
		fmtDur(s.DurationS), s.Clients, 100*s.PollingShare, 100*s.ChurnPerMin, s.Rate, s.Rooms, s.Nodes, s.Redis.DownAt), cBlack)
	drawText(img, 16, 30, fmt.Sprintf("%s: lost %d of %d owed deliveries, %d duplicates; grey: warm-up, red band: Redis down until every node ready; red line: least-squares fit over the second half",
		verdict, s.Verdict.Lost, s.Verdict.Owed, s.Verdict.Duplicates), cBlack)
	for i, p := range panels {
		drawLinePanel(img, (i%cols)*pW, head+(i/cols)*pH, p, ts, s)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("soak: plot: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("soak: plot: %w", err)
	}
	return f.Close()
}

func fmtDur(sec float64) string {
	if sec >= 120 {
		return strconv.FormatFloat(sec/60, 'f', 0, 64) + " min"
	}
	return strconv.FormatFloat(sec, 'f', 0, 64) + " s"
}

func drawLinePanel(img *image.RGBA, ox, oy int, p chartPanel, ts []float64, s *Summary) {
	drawText(img, ox+16, oy+8, p.title, cBlack)
	left, right, top, bottom := ox+70, ox+pW-20, oy+34, oy+pH-44
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range p.lines {
		for _, y := range l.ys {
			if !math.IsNaN(y) && !math.IsInf(y, 0) {
				lo, hi = math.Min(lo, y), math.Max(hi, y)
			}
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0, 1
	}
	var ticks []float64
	var scale func(v float64) float64 // 0..1 from the bottom
	if p.log {
		l := math.Pow(10, math.Floor(math.Log10(math.Max(lo, 0.1))))
		h := math.Pow(10, math.Ceil(math.Log10(math.Max(hi, l*10))))
		scale = func(v float64) float64 { return math.Log10(math.Min(math.Max(v, l), h)/l) / math.Log10(h/l) }
		for t := l; t <= h*1.001; t *= 10 {
			ticks = append(ticks, t)
		}
	} else {
		lo = math.Min(lo, 0)
		if hi <= lo {
			hi = lo + 1
		}
		step := niceStep((hi - lo) / 4)
		top2 := math.Ceil(hi*1.08/step) * step
		scale = func(v float64) float64 { return (math.Min(math.Max(v, lo), top2) - lo) / (top2 - lo) }
		for v := lo; v <= top2+step/2; v += step {
			ticks = append(ticks, v)
		}
	}
	tmax := s.DurationS
	if tmax <= 0 {
		tmax = 1
	}
	xOf := func(t float64) int { return left + int(float64(right-left)*t/tmax) }
	yOf := func(v float64) int { return bottom - int(float64(bottom-top)*scale(v)) }
	fillRect(img, image.Rect(xOf(0), top, xOf(s.FitWindow[0]), bottom), cWarm)
	if s.Redis.DownAt > 0 {
		end := s.Redis.ReadyAt
		if end < s.Redis.DownAt {
			end = s.Redis.DownAt + 1
		}
		fillRect(img, image.Rect(xOf(s.Redis.DownAt), top, max(xOf(end), xOf(s.Redis.DownAt)+2), bottom), cDown)
	}
	for _, v := range ticks {
		y := yOf(v)
		fillRect(img, image.Rect(left, y, right+1, y+1), cGrey)
		lbl := shortNum(v)
		drawText(img, left-8-7*len(lbl), y-6, lbl, cDark)
	}
	tstep := niceStep(tmax / 6)
	for t := 0.0; t <= tmax+tstep/100; t += tstep {
		x := xOf(t)
		fillRect(img, image.Rect(x, bottom, x+1, bottom+4), cDark)
		lbl := fmtDur(t)
		drawText(img, x-7*len(lbl)/2, bottom+6, lbl, cDark)
	}
	fillRect(img, image.Rect(left, top, left+1, bottom+1), cDark)
	fillRect(img, image.Rect(left, bottom, right+1, bottom+1), cDark)
	for i, l := range p.lines {
		c := series[i%len(series)]
		px, py := -1, -1
		for k, y := range l.ys {
			if math.IsNaN(y) || math.IsInf(y, 0) {
				px = -1
				continue
			}
			x, yy := xOf(ts[k]), yOf(y)
			if px >= 0 {
				drawSeg(img, px, py, x, yy, c)
			}
			fillRect(img, image.Rect(x-1, yy-1, x+2, yy+2), c)
			px, py = x, yy
		}
		if l.fit != nil && l.fit.N >= 3 {
			b := l.fit.SlopePerHour / 3600
			a := l.fit.Intercept
			x0, x1 := s.FitWindow[0], s.FitWindow[1]
			drawSeg(img, xOf(x0), yOf(a+b*x0), xOf(x1), yOf(a+b*x1), cFit)
			drawSeg(img, xOf(x0), yOf(a+b*x0)+1, xOf(x1), yOf(a+b*x1)+1, cFit)
		}
		lbl := l.label
		if l.fit != nil && l.fit.N >= 3 {
			lbl += fmt.Sprintf(": drift %+.1f%% (bound %.0f%%)", l.fit.DriftPct, 100*l.fit.Bound/math.Max(math.Abs(l.fit.Mean), 1e-9))
		}
		lx := left + 8
		ly := bottom + 22 + 0*i
		if i > 0 {
			lx = left + 8 + (right-left)/2
		}
		fillRect(img, image.Rect(lx, ly+3, lx+12, ly+9), c)
		drawText(img, lx+16, ly, lbl, cBlack)
	}
}

func drawSeg(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := x1-x0, y1-y0
	n := max(abs(dx), abs(dy), 1)
	for k := 0; k <= n; k++ {
		x := x0 + dx*k/n
		y := y0 + dy*k/n
		img.SetRGBA(x, y, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func fillRect(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r.Canon(), &image.Uniform{c}, image.Point{}, draw.Src)
}

func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func shortNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case a >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func drawText(img *image.RGBA, x, y int, s string, c color.Color) {
	face := basicfont.Face7x13
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y+11)}
	d.DrawString(s)
}
