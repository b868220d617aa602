package scenario

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgen/gateway/test/load/internal/procstat"
	"github.com/meshgen/gateway/test/load/internal/source"
	"github.com/meshgen/gateway/test/load/internal/stats"
)

// Result is the last record of a run: the headline figures the report
// uses, and the run's totals.
type Result struct {
	Type     string             `json:"type"`
	Label    string             `json:"server"`
	Scenario string             `json:"scenario"`
	Params   map[string]any     `json:"params"`
	Figures  map[string]float64 `json:"figures"`
	Notes    []string           `json:"notes,omitempty"`
	Totals   *Totals            `json:"totals,omitempty"`
	OK       bool               `json:"ok"`
}

// ---- idle ----

// IdleParams configures the idle scenario.
type IdleParams struct {
	Stages []int         // cumulative client counts, e.g. 1000, 10000, 19500
	Settle time.Duration // wait after a connect wave before reading RSS
	Window time.Duration // idle CPU measuring window
}

// StageResult is one idle stage.
type StageResult struct {
	Type              string          `json:"type"`
	Label             string          `json:"server"`
	Clients           int             `json:"clients"`
	Connect           ConnectResult   `json:"connect"`
	RSSBaseline       int64           `json:"server_rss_baseline_bytes"`
	RSS               int64           `json:"server_rss_bytes"`
	RSSPerConn        float64         `json:"server_rss_per_conn_bytes"`
	Idle              procstat.Window `json:"server_idle_cpu"`
	IdleCPUPer10k     float64         `json:"server_idle_cpu_percent_per_10k"`
	Heap              int64           `json:"server_heap_bytes,omitempty"` // live heap after a forced GC (memprobe)
	HeapPerConn       float64         `json:"server_heap_per_conn_bytes,omitempty"`
	Goroutines        int64           `json:"server_goroutines,omitempty"`
	GoroutinesPerConn float64         `json:"server_goroutines_per_conn,omitempty"`
	GenRSS            int64           `json:"generator_rss_bytes"`
	GenIdle           procstat.Window `json:"generator_idle_cpu"`
	DisconnectsSoFar  int64           `json:"disconnects_so_far"`
}

// Idle connects clients in stages and measures memory and idle CPU.
func Idle(ctx context.Context, h *Harness, p IdleParams) Result {
	res := Result{Type: "result", Label: h.cfg.Label, Scenario: "idle", Figures: map[string]float64{},
		Params: map[string]any{"stages": p.Stages, "settle_s": p.Settle.Seconds(), "window_s": p.Window.Seconds(),
			"polling_share": h.cfg.PollingShare, "rooms": h.cfg.Rooms}}
	time.Sleep(500 * time.Millisecond)
	base := h.ServerSample()
	baseMem, memOK := h.MemSample(ctx)
	prev, prevN := base.RSS, 0
	h.cfg.Logf("%s idle: baseline RSS %.1f MB", h.cfg.Label, float64(base.RSS)/1e6)
	for _, n := range p.Stages {
		if ctx.Err() != nil {
			break
		}
		add := n - h.Connected()
		if add <= 0 {
			continue
		}
		cr := h.Connect(ctx, add)
		time.Sleep(p.Settle)
		s0, g0 := h.ServerSample(), h.genSample()
		sleepCtx(ctx, p.Window)
		s1, g1 := h.ServerSample(), h.genSample()
		c := h.Connected()
		st := StageResult{Type: "stage", Label: h.cfg.Label, Clients: c, Connect: cr,
			RSSBaseline: base.RSS, RSS: s1.RSS, Idle: procstat.Between(s0, s1),
			GenRSS: g1.RSS, GenIdle: procstat.Between(g0, g1), DisconnectsSoFar: h.disconnects.Load()}
		if c > 0 {
			st.RSSPerConn = float64(s1.RSS-base.RSS) / float64(c)
			st.IdleCPUPer10k = st.Idle.CPUPercent * 10000 / float64(c)
		}
		// Read after the RSS: the forced GC must not shrink it first.
		if m, ok := h.MemSample(ctx); ok && memOK && c > 0 {
			st.Heap = m.HeapBytes
			st.HeapPerConn = float64(m.HeapBytes-baseMem.HeapBytes) / float64(c)
			k := strconv.Itoa(n)
			res.Figures["heap_per_conn_kb@"+k] = st.HeapPerConn / 1024
			if m.Goroutines >= 0 {
				st.Goroutines = m.Goroutines
				st.GoroutinesPerConn = float64(m.Goroutines-baseMem.Goroutines) / float64(c)
				res.Figures["goroutines_per_conn@"+k] = st.GoroutinesPerConn
			}
		}
		h.cfg.Emit(st)
		h.cfg.Logf("%s idle: %d clients (%d errors) in %.2fs (%.0f/s), RSS %.1f MB (%.1f KB/conn), heap %.1f KB/conn, %.2f goroutines/conn, idle CPU %.2f%%",
			h.cfg.Label, c, cr.Errors, cr.Seconds, cr.PerSecond, float64(s1.RSS)/1e6, st.RSSPerConn/1024, st.HeapPerConn/1024, st.GoroutinesPerConn, st.Idle.CPUPercent)
		k := strconv.Itoa(n)
		res.Figures["connected@"+k] = float64(c)
		res.Figures["connect_errors@"+k] = float64(cr.Errors)
		res.Figures["connects_per_sec@"+k] = cr.PerSecond
		res.Figures["connect_cpu_us@"+k] = cr.CPUPerConn
		res.Figures["handshake_p99_ms@"+k] = cr.Latency.P99
		res.Figures["rss_mb@"+k] = float64(s1.RSS) / 1e6
		res.Figures["rss_per_conn_kb@"+k] = st.RSSPerConn / 1024
		// The marginal cost of this wave's connections: robust against a
		// runtime that shrinks below its start-up baseline (node's GC).
		if prevN > 0 && c > prevN {
			res.Figures["rss_marginal_per_conn_kb@"+k] = float64(s1.RSS-prev) / float64(c-prevN) / 1024
		}
		prev, prevN = s1.RSS, c
		res.Figures["idle_cpu_percent@"+k] = st.Idle.CPUPercent
		res.Figures["generator_rss_per_conn_kb@"+k] = float64(g1.RSS) / float64(max(c, 1)) / 1024
	}
	t := h.Finish("idle")
	res.Totals = &t
	res.OK = t.OK
	return res
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Warmup waits d after a connect wave before the first step, so that the
// steps measure deliveries and not the wave's aftermath (the servers'
// collections of the handshakes' garbage, a GC policy returning the
// wave's memory): the same wait for every server. It returns the server's
// CPU during the wait, reported as the warmup figures.
func Warmup(ctx context.Context, h *Harness, d time.Duration) procstat.Window {
	s0 := h.ServerSample()
	sleepCtx(ctx, d)
	return procstat.Between(s0, h.ServerSample())
}

// ---- stepped traffic (fanout, rooms, e2e) ----

// SteppedParams configures a stepped-rate scenario.
type SteppedParams struct {
	Name       string
	Rates      []float64 // events per second, one step each
	Step       time.Duration
	StopAtKnee bool          // stop after the first step over P99Limit
	P99Limit   time.Duration // the knee's latency bound (50 ms)
	Choose     Chooser
	Pause      time.Duration // quiet time between steps
	// Batch > 0: every request carries exactly Batch events, one request
	// every Batch/rate seconds (StepSpec.Batch); 0: what is due per tick.
	Batch int
}

// Stepped runs steps of increasing rates. With StopAtKnee, the knee is the
// last step whose p99 is within P99Limit, with every delivery made and the
// target rate reached.
func Stepped(ctx context.Context, h *Harness, p SteppedParams) Result {
	res := Result{Type: "result", Label: h.cfg.Label, Scenario: p.Name, Figures: map[string]float64{},
		Params: map[string]any{"clients": h.Connected(), "rooms": h.cfg.Rooms, "rates_events_per_sec": p.Rates,
			"step_s": p.Step.Seconds(), "p99_limit_ms": p.P99Limit.Seconds() * 1000, "source": h.cfg.Source,
			"polling_share": h.cfg.PollingShare, "batch": p.Batch}}
	baseRSS := h.BaselineRSS()
	// rssPerClientKB is the server's RSS growth since before any client
	// connected, per client, at the step's highest RSS reading.
	rssPerClientKB := func(r StepResult) (float64, bool) {
		if baseRSS <= 0 || r.ServerRSSMax <= 0 || r.Clients <= 0 {
			return 0, false
		}
		return float64(r.ServerRSSMax-baseRSS) / float64(r.Clients) / 1024, true
	}
	var knee *StepResult
	var best float64
	idx := 0
	var others []float64
	for i := 0; i < len(p.Rates) && idx < maxSteps && ctx.Err() == nil; i++ {
		rate := p.Rates[i]
		var r StepResult
		good := false
		// A step over the bound is run once more before it counts: one
		// stall of the machine (other processes) must not end the search.
		for attempt := 0; attempt < 3 && idx < maxSteps && ctx.Err() == nil; attempt++ {
			if attempt == 2 && r.OtherCPUPercent < h.cfg.QuietThreshold {
				break // two honest failures: past the knee
			}
			r = h.RunStep(ctx, p.Name, StepSpec{Index: idx, Rate: rate, Duration: p.Step, Batch: p.Batch}, p.Choose)
			idx++
			if h.cfg.Rooms == 1 {
				r.TargetDeliveriesSec = rate * float64(r.Clients)
			}
			h.cfg.Emit(r)
			h.cfg.Logf("%s %s step %d: %.0f ev/s in %d posts (%.1f events each) -> %.0f deliveries/s (%d/%d), server CPU %.0f%%, gen CPU %.0f%%, other CPU %.0f%%, p50 %.2f p99 %.2f p99.9 %.2f ms, pending %d, http errors %d, RSS max %.1f MB",
				h.cfg.Label, p.Name, r.Step, r.EventsPerSec, r.Posts, r.MeanBatch, r.DeliveriesPerSec, r.Delivered, r.Expected, r.Server.CPUPercent, r.Gen.CPUPercent, r.OtherCPUPercent,
				r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Pending, r.HTTPErrors, float64(r.ServerRSSMax)/1e6)
			others = append(others, r.OtherCPUPercent)
			good = r.Latency.P99 <= p.P99Limit.Seconds()*1000 && r.Pending == 0 && r.HTTPErrors == 0 &&
				r.EventsPerSec >= 0.9*rate
			if good || !p.StopAtKnee {
				break
			}
			// Before trying again, let a busy machine calm down (other
			// processes' CPU is what made many first failures).
			o, waited := procstat.WaitQuiet(ctx.Done(), h.cfg.QuietThreshold, 30*time.Second, h.group)
			h.cfg.Logf("%s %s: step over the bound; retrying after %.0fs (other processes %.0f%% of a core)", h.cfg.Label, p.Name, waited.Seconds(), o)
		}
		k := fmtRate(rate)
		res.Figures["p50_ms@"+k] = r.Latency.P50
		res.Figures["p99_ms@"+k] = r.Latency.P99
		res.Figures["p999_ms@"+k] = r.Latency.P999
		res.Figures["deliveries_per_sec@"+k] = r.DeliveriesPerSec
		res.Figures["deliveries_per_cpu_sec@"+k] = r.PerCPUSecond
		res.Figures["cpu_percent@"+k] = r.Server.CPUPercent
		res.Figures["generator_cpu_percent@"+k] = r.Gen.CPUPercent
		res.Figures["other_cpu_percent@"+k] = r.OtherCPUPercent
		if r.PollingLatency != nil {
			res.Figures["polling_p99_ms@"+k] = r.PollingLatency.P99
		}
		if r.Posts > 0 {
			res.Figures["mean_batch_events@"+k] = r.MeanBatch
		}
		if r.ServerPosts > 0 {
			res.Figures["server_mean_batch_events@"+k] = r.ServerMeanBatch
		}
		if v, ok := rssPerClientKB(r); ok {
			res.Figures["rss_per_client_kb@"+k] = v
		}
		if r.DeliveriesPerSec > best {
			best = r.DeliveriesPerSec
		}
		if good {
			rr := r
			knee = &rr
		}
		if p.StopAtKnee && !good {
			break
		}
		if p.Pause > 0 {
			sleepCtx(ctx, p.Pause)
		}
	}
	res.Figures["other_processes_cpu_percent"] = stats.SpreadOf(others).Median
	res.Figures["max_deliveries_per_sec"] = best
	if knee != nil {
		res.Figures["knee_events_per_sec"] = knee.TargetEventsPerSec
		res.Figures["knee_deliveries_per_sec"] = knee.DeliveriesPerSec
		res.Figures["knee_deliveries_per_cpu_sec"] = knee.PerCPUSecond
		res.Figures["knee_cpu_us_per_delivery"] = knee.CPUMicrosPerDeliv
		res.Figures["knee_p50_ms"] = knee.Latency.P50
		res.Figures["knee_p99_ms"] = knee.Latency.P99
		res.Figures["knee_p999_ms"] = knee.Latency.P999
		res.Figures["knee_cpu_percent"] = knee.Server.CPUPercent
		res.Figures["knee_generator_cpu_percent"] = knee.Gen.CPUPercent
		res.Figures["knee_rss_mb"] = float64(knee.ServerRSS) / 1e6
		if v, ok := rssPerClientKB(*knee); ok {
			res.Figures["knee_rss_per_client_kb"] = v
		}
		if knee.TargetEventsPerSec == p.Rates[len(p.Rates)-1] && p.StopAtKnee {
			res.Notes = append(res.Notes, "the last rate was still under the latency bound: the knee is above the tested range")
		}
	} else if p.StopAtKnee {
		res.Notes = append(res.Notes, "even the first rate was over the latency bound (or lost deliveries): no knee in range")
	}
	t := h.Finish(p.Name)
	res.Totals = &t
	res.Figures["lost"] = float64(t.Lost)
	res.Figures["duplicates"] = float64(t.Duplicates)
	res.OK = t.OK
	return res
}

func fmtRate(r float64) string {
	if r == float64(int64(r)) {
		return strconv.FormatInt(int64(r), 10)
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

// FanoutChooser sends everything to room 0.
func FanoutChooser() Chooser {
	return func(int64, *rand.Rand) (int, bool, bool) { return 0, false, false }
}

// UniformChooser spreads events evenly over rooms.
func UniformChooser(rooms int) Chooser {
	return func(i int64, _ *rand.Rand) (int, bool, bool) { return int(i % int64(rooms)), false, false }
}

// MixedChooser is the rooms scenario's traffic: 80% of events go to the
// hottest 20% of rooms, 10% carry a ~2 KB result, 10% are job_failed.
func MixedChooser(rooms int) Chooser {
	hot := max(rooms/5, 1)
	return func(i int64, rng *rand.Rand) (int, bool, bool) {
		var room int
		if rng.Float64() < 0.8 {
			room = rng.IntN(hot)
		} else {
			room = rng.IntN(rooms)
		}
		return room, rng.Float64() < 0.1, rng.Float64() < 0.1
	}
}

// ---- burst ----

// BurstParams configures the burst scenario.
type BurstParams struct {
	Events  int // events per burst
	Repeats int // bursts
	// Batch is the events per request (StepSpec.Batch): 0 is one event
	// per webhook, or DefaultBatch with a batch source.
	Batch int
	// Drain bounds the wait for a burst's last deliveries (default 30 s:
	// a batched burst of a million deliveries takes several seconds on a
	// slow server).
	Drain time.Duration
}

// Burst sends events as fast as the workers can and measures delivery
// throughput from the first send to the last receipt.
func Burst(ctx context.Context, h *Harness, p BurstParams) Result {
	if p.Drain <= 0 {
		p.Drain = 30 * time.Second
	}
	res := Result{Type: "result", Label: h.cfg.Label, Scenario: "burst", Figures: map[string]float64{},
		Params: map[string]any{"clients": h.Connected(), "rooms": h.cfg.Rooms, "events": p.Events, "repeats": p.Repeats,
			"batch": p.Batch, "workers": h.cfg.Workers, "source": h.cfg.Source}}
	var dps, pcs, p99, cpu, other, gen, batch, srvBatch []float64
	for i := 0; i < p.Repeats && i < maxSteps && ctx.Err() == nil; i++ {
		r := h.RunStep(ctx, "burst", StepSpec{Index: i, Burst: p.Events, Batch: p.Batch, Drain: p.Drain}, UniformChooser(h.cfg.Rooms))
		h.cfg.Emit(r)
		h.cfg.Logf("%s burst %d: %d events in %d posts (%.1f each) -> %.0f deliveries/s (%d/%d), server CPU %.0f%%, gen CPU %.0f%%, p50 %.1f p99 %.1f ms",
			h.cfg.Label, i, r.Events, r.Posts, r.MeanBatch, r.DeliveriesPerSec, r.Delivered, r.Expected, r.Server.CPUPercent, r.Gen.CPUPercent,
			r.Latency.P50, r.Latency.P99)
		batch = append(batch, r.MeanBatch)
		if r.ServerPosts > 0 {
			srvBatch = append(srvBatch, r.ServerMeanBatch)
		}
		dps = append(dps, r.DeliveriesPerSec)
		pcs = append(pcs, r.PerCPUSecond)
		p99 = append(p99, r.Latency.P99)
		cpu = append(cpu, r.Server.CPUPercent)
		other = append(other, r.OtherCPUPercent)
		gen = append(gen, r.Gen.CPUPercent)
		sleepCtx(ctx, 500*time.Millisecond)
	}
	res.Figures["deliveries_per_sec"] = stats.SpreadOf(dps).Median
	res.Figures["deliveries_per_cpu_sec"] = stats.SpreadOf(pcs).Median
	res.Figures["p99_ms"] = stats.SpreadOf(p99).Median
	res.Figures["cpu_percent"] = stats.SpreadOf(cpu).Median
	res.Figures["generator_cpu_percent"] = stats.SpreadOf(gen).Median
	res.Figures["other_processes_cpu_percent"] = stats.SpreadOf(other).Median
	res.Figures["mean_batch_events"] = stats.SpreadOf(batch).Median
	if len(srvBatch) > 0 {
		res.Figures["server_mean_batch_events"] = stats.SpreadOf(srvBatch).Median
	}
	t := h.Finish("burst")
	res.Totals = &t
	res.Figures["lost"] = float64(t.Lost)
	res.OK = t.OK
	return res
}

// ---- ingest ----

// IngestParams configures the ingest scenario.
type IngestParams struct {
	Duration time.Duration
	Conns    int // keep-alive connections (and concurrent requests)
}

// Ingest posts signed webhooks for a project nobody subscribed to, as fast
// as Conns keep-alive connections allow (closed loop).
func Ingest(ctx context.Context, h *Harness, p IngestParams) Result {
	res := Result{Type: "result", Label: h.cfg.Label, Scenario: "ingest", Figures: map[string]float64{},
		Params: map[string]any{"duration_s": p.Duration.Seconds(), "conns": p.Conns, "signed": h.cfg.Secret != ""}}
	wh := &source.Webhook{URL: h.cfg.URLs[0] + "/api/webhooks/modal", Secret: []byte(h.cfg.Secret), Client: source.NewHTTPClient(p.Conns)}
	// Warm the connection pool.
	var hist stats.Histogram
	var okN, errN, seq atomic.Int64
	run := func(d time.Duration, record bool) {
		end := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := 0; w < p.Conns; w++ {
			wg.Go(func() {
				for time.Now().Before(end) && ctx.Err() == nil {
					e := source.Event{Project: "ingest-nobody", Seq: seq.Add(1)}
					t := time.Now()
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err := wh.Send(cctx, []source.Event{e})
					cancel()
					if !record {
						continue
					}
					if err != nil {
						errN.Add(1)
						h.noteError("ingest", err)
						continue
					}
					hist.Record(int64(time.Since(t)))
					okN.Add(1)
				}
			})
		}
		wg.Wait()
	}
	run(500*time.Millisecond, false)
	s0, g0 := h.ServerSample(), h.genSample()
	run(p.Duration, true)
	s1, g1 := h.ServerSample(), h.genSample()
	w, gw := procstat.Between(s0, s1), procstat.Between(g0, g1)
	lat := hist.Summary()
	rps := float64(okN.Load()) / w.Seconds
	h.cfg.Emit(map[string]any{"type": "ingest", "server": h.cfg.Label, "ok": okN.Load(), "errors": errN.Load(),
		"requests_per_sec": rps, "latency": lat, "server_cpu": w, "generator_cpu": gw, "server_rss_bytes": s1.RSS})
	h.cfg.Logf("%s ingest: %.0f verified webhooks/s (%d errors), server CPU %.0f%%, gen CPU %.0f%%, p50 %.2f p99 %.2f ms",
		h.cfg.Label, rps, errN.Load(), w.CPUPercent, gw.CPUPercent, lat.P50, lat.P99)
	res.Figures["requests_per_sec"] = rps
	if w.CPUSeconds > 0 {
		res.Figures["requests_per_cpu_sec"] = float64(okN.Load()) / w.CPUSeconds
	}
	res.Figures["p50_ms"] = lat.P50
	res.Figures["p99_ms"] = lat.P99
	res.Figures["cpu_percent"] = w.CPUPercent
	res.Figures["generator_cpu_percent"] = gw.CPUPercent
	res.Figures["errors"] = float64(errN.Load())
	t := h.Finish("ingest")
	t.HTTPErrors = errN.Load()
	t.OK = t.OK && errN.Load() == 0
	res.Totals = &t
	res.OK = t.OK
	return res
}

// Describe is a one-line description of a result for logs.
func Describe(r Result) string {
	return fmt.Sprintf("%s %s ok=%v figures=%d", r.Label, r.Scenario, r.OK, len(r.Figures))
}
