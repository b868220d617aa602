package report

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

var serverColor = map[string]color.RGBA{
	"gateway": {0x1f, 0x77, 0xb4, 0xff},
	"node":    {0x2c, 0xa0, 0x2c, 0xff},
	"flask":   {0xff, 0x7f, 0x0e, 0xff},
}

var (
	black = color.RGBA{0x20, 0x20, 0x20, 0xff}
	grey  = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	dark  = color.RGBA{0x66, 0x66, 0x66, 0xff}
	white = color.RGBA{0xff, 0xff, 0xff, 0xff}
)

type category struct {
	label string
	scen  string
	key   string
}

type panel struct {
	title string
	cats  []category
	log   bool // logarithmic axis (latencies spanning decades)
}

func chartPanels(all map[string]*ScenarioResults) []panel {
	fan := func(scen string) string { return "fan-out " + clientsOf(all, scen) + " (knee)" }
	var dpcs, p99, thr, ingest, rss, conn panel
	dpcs.title = "Deliveries per server CPU-second (higher is better)"
	p99.title = "p99 latency, ms, log scale (lower is better)"
	p99.log = true
	thr.title = "Deliveries per second (higher is better)"
	ingest.title = "Webhooks per second (higher is better)"
	rss.title = "Server RSS per idle connection, KB (lower is better)"
	for _, k := range marginalKeys(all) {
		rss.cats = append(rss.cats, category{"marginal, wave to " + shortCount(at(k)), "idle", k})
	}
	conn.title = "Connect + subscribe, clients/s (higher is better)"
	for _, f := range []string{"fanout", "fanout10k"} {
		if all[f] != nil {
			dpcs.cats = append(dpcs.cats, category{fan(f), f, "knee_deliveries_per_cpu_sec"})
			p99.cats = append(p99.cats, category{fan(f), f, "knee_p99_ms"})
			if ks := stageKeys(all, f, "p99_ms"); len(ks) > 0 {
				p99.cats = append(p99.cats, category{"fan-out " + clientsOf(all, f) + " lowest rate", f, ks[0]})
			}
			thr.cats = append(thr.cats, category{fan(f), f, "knee_deliveries_per_sec"})
		}
	}
	if all["burst"] != nil {
		dpcs.cats = append(dpcs.cats, category{"burst " + clientsOf(all, "burst"), "burst", "deliveries_per_cpu_sec"})
		thr.cats = append(thr.cats, category{"burst " + clientsOf(all, "burst"), "burst", "deliveries_per_sec"})
	}
	if all["burstbatch"] != nil {
		dpcs.cats = append(dpcs.cats, category{"batched burst " + clientsOf(all, "burstbatch"), "burstbatch", "deliveries_per_cpu_sec"})
		thr.cats = append(thr.cats, category{"batched burst " + clientsOf(all, "burstbatch"), "burstbatch", "deliveries_per_sec"})
	}
	if all["rooms"] != nil {
		dpcs.cats = append(dpcs.cats, category{"rooms " + clientsOf(all, "rooms") + " (knee)", "rooms", "knee_deliveries_per_cpu_sec"})
		p99.cats = append(p99.cats, category{"rooms (knee)", "rooms", "knee_p99_ms"})
		ingest.cats = append(ingest.cats, category{"rooms: at the knee", "rooms", "knee_events_per_sec"})
	}
	for _, k := range stageKeys(all, "rooms100", "p99_ms") {
		p99.cats = append(p99.cats, category{"100 rooms " + at(k) + " ev/s", "rooms100", k})
	}
	for _, k := range stageKeys(all, "e2e", "p99_ms") {
		p99.cats = append(p99.cats, category{"e2e " + at(k) + "/s", "e2e", k})
	}
	if all["ingest"] != nil {
		ingest.cats = append(ingest.cats, category{"ingest: verified", "ingest", "requests_per_sec"})
	}
	if ks := stageKeys(all, "idle", "rss_per_conn_kb"); len(ks) > 0 {
		k := ks[len(ks)-1]
		rss.cats = append(rss.cats, category{shortCount(at(k)) + " idle, vs start-up", "idle", k})
	}
	for _, k := range stageKeys(all, "idle", "connects_per_sec") {
		conn.cats = append(conn.cats, category{"wave to " + shortCount(at(k)), "idle", k})
	}
	var out []panel
	for _, p := range []panel{dpcs, p99, thr, ingest, rss, conn} {
		if len(p.cats) > 0 {
			out = append(out, p)
		}
	}
	return out
}

const (
	panelW = 720
	panelH = 400
	headH  = 70
)

func writeChart(path string, all map[string]*ScenarioResults, servers []string) error {
	panels := chartPanels(all)
	cols := 2
	rows := (len(panels) + cols - 1) / cols
	if rows == 0 {
		rows = 1
	}
	img := image.NewRGBA(image.Rect(0, 0, cols*panelW, headH+rows*panelH))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	text(img, 16, 10, "Gateway vs node socket.io vs Flask-SocketIO: medians, whiskers = min-max of the runs", black, 2)
	// Legend.
	x := 16
	for _, s := range servers {
		c := colorOf(s)
		fill(img, image.Rect(x, 46, x+14, 60), c)
		text(img, x+20, 47, title(s), black, 1)
		x += 20 + 7*len(title(s)) + 30
	}
	for i, p := range panels {
		ox := (i % cols) * panelW
		oy := headH + (i/cols)*panelH
		drawPanel(img, ox, oy, p, all, servers)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}

func colorOf(s string) color.RGBA {
	if c, ok := serverColor[s]; ok {
		return c
	}
	return color.RGBA{0x88, 0x88, 0x88, 0xff}
}

func drawPanel(img *image.RGBA, ox, oy int, p panel, all map[string]*ScenarioResults, servers []string) {
	text(img, ox+16, oy+8, p.title, black, 1)
	left, right, top, bottom := ox+70, ox+panelW-20, oy+40, oy+panelH-60
	// Scale: medians always fit; whiskers beyond twice the largest median
	// are clipped (marked with a cap at the top).
	maxMed, maxW, minV := 0.0, 0.0, math.Inf(1)
	for _, c := range p.cats {
		for _, s := range servers {
			if f, ok := figure(all, c.scen, s, c.key); ok {
				maxMed = math.Max(maxMed, f.Median)
				maxW = math.Max(maxW, f.Max)
				if f.Min > 0 {
					minV = math.Min(minV, f.Min)
				}
			}
		}
	}
	if maxMed <= 0 {
		maxMed = 1
	}
	var yOf func(v float64) int
	var ticks []float64
	if p.log {
		lo := math.Pow(10, math.Floor(math.Log10(math.Max(math.Min(minV, maxMed), 0.1))))
		hi := math.Pow(10, math.Ceil(math.Log10(math.Max(maxW, maxMed)*1.05)))
		yOf = func(v float64) int {
			v = math.Min(math.Max(v, lo), hi)
			return bottom - int(float64(bottom-top)*math.Log10(v/lo)/math.Log10(hi/lo))
		}
		for t := lo; t <= hi*1.001; t *= 10 {
			ticks = append(ticks, t)
		}
	} else {
		maxV := math.Max(maxMed, math.Min(maxW, 2*maxMed))
		step := niceStep(maxV / 4)
		top2 := math.Ceil(maxV*1.12/step) * step
		yOf = func(v float64) int {
			v = math.Min(math.Max(v, 0), top2)
			return bottom - int(float64(bottom-top)*v/top2)
		}
		for v := 0.0; v <= top2+step/2; v += step {
			ticks = append(ticks, v)
		}
	}
	for _, v := range ticks {
		y := yOf(v)
		hline(img, left, right, y, grey)
		lbl := short(v)
		text(img, left-8-7*len(lbl), y-6, lbl, dark, 1)
	}
	vline(img, left, top, bottom, dark)
	hline(img, left, right, bottom, dark)
	n := len(p.cats)
	groupW := float64(right-left) / float64(n)
	barW := int(math.Min(48, groupW*0.8/float64(len(servers))))
	for i, c := range p.cats {
		gx := left + int(groupW*float64(i)+groupW/2) - barW*len(servers)/2
		for j, s := range servers {
			f, ok := figure(all, c.scen, s, c.key)
			bx := gx + j*barW
			if !ok {
				lbl := "n/a"
				if strings.HasPrefix(c.key, "knee_") && all[c.scen] != nil && all[c.scen].Servers[s] != nil {
					lbl = "none"
				}
				text(img, bx+barW/2-7*len(lbl)/2, bottom-16, lbl, dark, 1)
				continue
			}
			fill(img, image.Rect(bx+2, yOf(f.Median), bx+barW-2, bottom), colorOf(s))
			if f.N > 1 && f.Max > f.Min {
				mid := bx + barW/2
				vline(img, mid, yOf(f.Max), yOf(f.Min), black)
				hline(img, mid-4, mid+4, yOf(f.Max), black)
				hline(img, mid-4, mid+4, yOf(f.Min), black)
			}
			lbl := short(f.Median)
			ly := yOf(math.Max(f.Median, f.Max)) - 15
			text(img, bx+barW/2-7*len(lbl)/2, ly, lbl, black, 1)
		}
		// Category label, wrapped to the group's width.
		maxChars := int(groupW/7) - 1
		for k, line := range wrap(c.label, maxChars) {
			cx := left + int(groupW*float64(i)+groupW/2) - 7*len(line)/2
			text(img, cx, bottom+8+k*14, line, black, 1)
		}
	}
}

func wrap(s string, n int) []string {
	if n < 6 {
		n = 6
	}
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		if cur == "" {
			cur = w
		} else if len(cur)+1+len(w) <= n {
			cur += " " + w
		} else {
			lines = append(lines, cur)
			cur = w
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
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

func short(v float64) string {
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

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r.Canon(), &image.Uniform{c}, image.Point{}, draw.Src)
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	fill(img, image.Rect(x0, y, x1+1, y+1), c)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	fill(img, image.Rect(x, y0, x+1, y1+1), c)
}

// text draws s with its top-left corner at (x, y) in the 7x13 bitmap font,
// scaled by an integer factor.
func text(img *image.RGBA, x, y int, s string, c color.Color, scale int) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, s).Ceil()
	if w <= 0 {
		return
	}
	mask := image.NewAlpha(image.Rect(0, 0, w, 13))
	d := &font.Drawer{Dst: mask, Src: image.Opaque, Face: face, Dot: fixed.P(0, 11)}
	d.DrawString(s)
	for py := 0; py < 13; py++ {
		for px := 0; px < w; px++ {
			if mask.AlphaAt(px, py).A > 0x80 {
				fill(img, image.Rect(x+px*scale, y+py*scale, x+(px+1)*scale, y+(py+1)*scale), c)
			}
		}
	}
}
