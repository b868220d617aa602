// Package soak is the load harness's long-run scenario: thousands of
// clients (websocket and long-polling) with steady churn, a producer posting
// signed publish batches and webhooks (each webhook sent twice), two gateway
// nodes on a real redis-server with AOF that is restarted once in the
// middle. It samples the nodes and Redis every interval, fits a line over
// the second half of the run and accounts every acknowledged event per
// client session: the run passes when every figure is flat within its bound,
// nothing owed is lost and nothing is delivered twice.
package soak

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/meshgen/gateway/test/load/internal/peers"
	"github.com/meshgen/gateway/test/load/internal/procstat"
	"github.com/meshgen/gateway/test/load/internal/source"
)

// Config of a soak run.
type Config struct {
	ModuleDir  string // test/load
	GatewayBin string
	RedisBin   string
	WorkDir    string // Redis data and the servers' logs

	Nodes        int
	Clients      int
	Rooms        int
	PollingEvery int     // every n-th client long-polls (10: 10%)
	Rate         float64 // events per second
	WebhookShare float64
	ChurnPerMin  float64 // share of the clients closed and reopened per minute

	Duration  time.Duration // traffic time (connecting comes before)
	Interval  time.Duration // sampling interval
	RestartAt float64       // share of Duration at which Redis restarts
	RedisDown time.Duration // how long Redis stays down
	Grace     time.Duration // churn window: see Owed
	Seed      uint64

	Logf func(format string, args ...any)
}

// Retention is the window of the gateway's expiring keys during a soak
// (dedupe keys, recovery sessions) and, times the rate, the stream's
// length: a twelfth of the run, between 15 s and 5 min, so that every key
// population reaches its steady state before the fit window (the second
// half) begins. Production keeps them 24 h / 2 min / 100,000 entries: the
// steady state is then rate x window, which a one-hour run cannot reach.
func Retention(d time.Duration) time.Duration {
	return min(max(d/12, 15*time.Second), 5*time.Minute)
}

// AutoTiming fills the sampling interval and the restart point left zero:
// every 10 s (a thirtieth of runs shorter than 5 min, so that the fit
// window still holds 15 samples), and Redis restarted at 40% of the run
// but at least 15 s before the fit window (the second half) begins, so the
// catch-up after the outage (Redis down 3 s, the nodes ready ~2 s later,
// the producer's retries backing off up to 2 s) is over before the fit.
func AutoTiming(d, interval time.Duration, restartAt float64) (time.Duration, float64) {
	if interval <= 0 {
		interval = 10 * time.Second
		if d < 5*time.Minute {
			interval = max(d/30, time.Second)
		}
	}
	if restartAt <= 0 {
		restartAt = min(0.4, (d/2-15*time.Second).Seconds()/d.Seconds())
		restartAt = max(restartAt, 0.1)
	}
	return interval, restartAt
}

// BoundsFor returns the flatness rule of each metric for a run of d (the
// reasoning is in docs/reliability.md): the drift over the fit window may
// be 5% of the mean for counts (goroutines, descriptors, keys), 10% for
// memory (RSS, Redis used_memory), 50% or 5 ms for the p99. Runs shorter
// than 20 minutes (the smoke) allow memory 25%: the nodes' heaps grow
// towards their steady state for minutes (their retained windows fill,
// their GC goal follows), which a 30 s fit window cannot tell from a leak;
// and Redis keys 10%: DBSIZE counts expired keys not yet reclaimed, a
// sawtooth of up to a tenth of the volatile keys that a 30 s window does
// not average out (5% of it was reached in a smoke). Goroutines and
// descriptors may also drift by countFloor whatever their mean: with the
// lean engine session a WebSocket client holds no goroutine, so a node's
// count is mostly its long-polling sessions (two goroutines each), whose
// number random-walks between the nodes as clients churn; a leak of one
// per churned connection (7,500 per node in an hour's fit window, about
// 125 in the smoke's) still passes the floor.
func BoundsFor(d time.Duration) map[string]Bound {
	mem, keys, counts := 0.10, 0.05, 0.05
	if d < 20*time.Minute {
		mem, keys, counts = 0.25, 0.10, 0.10
	}
	return map[string]Bound{
		"rss_mb":               {Rel: mem},
		"goroutines":           {Rel: counts, Abs: countFloor},
		"fds":                  {Rel: counts, Abs: countFloor},
		"redis_used_memory_mb": {Rel: mem},
		"redis_keys":           {Rel: keys},
		"p99_ms":               {Rel: 0.50, Abs: 5},
	}
}

// countFloor is the drift goroutines and descriptors may always have.
const countFloor = 100

// Restart records the Redis restart.
type Restart struct {
	DownAt         float64   `json:"down_at_s"`
	UpAt           float64   `json:"up_at_s"`
	ReadyAt        float64   `json:"all_ready_at_s"`
	RecoverySec    float64   `json:"recovery_s"` // Redis back to every node ready again
	ReconnectsSeen []float64 `json:"node_redis_reconnects"`
	Error          string    `json:"error,omitempty"`
}

// Summary is the outcome of a run (printed as JSON).
type Summary struct {
	Scenario      string         `json:"scenario"`
	Pass          bool           `json:"pass"`
	Failures      []string       `json:"failures"`
	DurationS     float64        `json:"duration_s"`
	IntervalS     float64        `json:"interval_s"`
	Nodes         int            `json:"nodes"`
	Clients       int            `json:"clients"`
	PollingShare  float64        `json:"polling_share"`
	Rooms         int            `json:"rooms"`
	Rate          float64        `json:"events_per_sec"`
	WebhookShare  float64        `json:"webhook_share"`
	ChurnPerMin   float64        `json:"churn_per_min"`
	RetentionS    float64        `json:"retention_window_s"`
	StreamMaxLen  int            `json:"stream_max_len"`
	FitWindow     [2]float64     `json:"fit_window_s"`
	ConnectSec    float64        `json:"connect_s"`
	Churned       int64          `json:"churned"`
	Reconnected   int64          `json:"reconnected"`
	ConnectErrors int64          `json:"connect_errors"`
	OpenAtEnd     int            `json:"open_sessions_at_end"`
	Requests      int64          `json:"producer_requests"`
	Retries       int64          `json:"producer_retries"`
	Rejected      int64          `json:"producer_rejected"`
	GivenUp       int64          `json:"producer_given_up"`
	Published     int64          `json:"published_events"`
	Webhooks      int64          `json:"webhooks"`
	Resent        int64          `json:"webhooks_resent"`
	BusDuplicates float64        `json:"bus_duplicates_refused"` // every node's publishes refused as duplicates, after the drain
	ResendFailed  int64          `json:"webhook_resends_failed"`
	Redis         Restart        `json:"redis_restart"`
	Verdict       Verdict        `json:"delivery"`
	Fits          []Fit          `json:"fits"`
	GeneratorCPU  float64        `json:"generator_cpu_percent"`
	NodesCPU      float64        `json:"nodes_cpu_percent"`
	OtherCPU      float64        `json:"other_cpu_percent"`
	KeysByPrefix  map[string]int `json:"redis_keys_by_prefix_at_end"`
	ErrorSamples  []string       `json:"error_samples,omitempty"`
	Samples       []Sample       `json:"samples"`
	StartedAt     time.Time      `json:"started_at"`
	Command       string         `json:"command,omitempty"`
	CPU           string         `json:"cpu,omitempty"`
}

func (c *Config) defaults() {
	if c.Nodes <= 0 {
		c.Nodes = 2
	}
	if c.Rooms <= 0 {
		c.Rooms = 500
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.RedisDown <= 0 {
		c.RedisDown = 3 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = 10 * time.Second
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Run runs the soak; the error is for failures to set it up (a failed
// soak returns a Summary with Pass false).
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	cfg.defaults()
	sum := &Summary{Scenario: "soak", DurationS: cfg.Duration.Seconds(), IntervalS: cfg.Interval.Seconds(),
		Nodes: cfg.Nodes, Clients: cfg.Clients, Rooms: cfg.Rooms, Rate: cfg.Rate, WebhookShare: cfg.WebhookShare,
		ChurnPerMin: cfg.ChurnPerMin, StartedAt: time.Now().UTC()}
	if cfg.PollingEvery > 0 {
		sum.PollingShare = 1 / float64(cfg.PollingEvery)
	}
	ret := Retention(cfg.Duration)
	sum.RetentionS = ret.Seconds()
	sum.StreamMaxLen = int(cfg.Rate * ret.Seconds())
	fail := func(f string, a ...any) { sum.Failures = append(sum.Failures, fmt.Sprintf(f, a...)) }

	// Redis with AOF on a free loopback port.
	redisDir := filepath.Join(cfg.WorkDir, "redis")
	if err := os.MkdirAll(redisDir, 0o755); err != nil {
		return nil, err
	}
	port, err := peers.FreePort()
	if err != nil {
		return nil, err
	}
	rd, err := StartRedis(ctx, cfg.RedisBin, port, redisDir)
	if err != nil {
		return nil, err
	}
	defer rd.Stop()

	// The gateway nodes, with the retention windows shortened (Retention).
	secretB := make([]byte, 16)
	_, _ = rand.Read(secretB)
	secret := hex.EncodeToString(secretB)
	for k, v := range map[string]string{
		"GATEWAY_DEDUPE_WINDOW":              ret.String(),
		"GATEWAY_RECOVERY_MAX_DISCONNECTION": ret.String(),
		"GATEWAY_REDIS_STREAM_MAX_LEN":       strconv.Itoa(sum.StreamMaxLen),
	} {
		if err := os.Setenv(k, v); err != nil {
			return nil, err
		}
	}
	env := peers.Env{ModuleDir: cfg.ModuleDir, GatewayBin: cfg.GatewayBin, Secret: secret,
		RedisURL: rd.URL(), LogDir: filepath.Join(cfg.WorkDir, "logs")}
	var nodes []*peers.Server
	defer func() {
		for _, n := range nodes {
			n.Stop()
		}
	}()
	var urls []string
	var pids []int
	for i := 0; i < cfg.Nodes; i++ {
		s, err := peers.Start(ctx, env, peers.Gateway, "soak-node"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, s)
		urls = append(urls, s.URL)
		pids = append(pids, s.PID())
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	if err := waitReady(ctx, hc, urls, 60*time.Second); err != nil {
		return nil, err
	}
	cfg.Logf("soak: redis on %s, %d gateway nodes %v ready; connecting %d clients", rd.Addr(), cfg.Nodes, urls, cfg.Clients)

	ledger := NewLedger(cfg.Rooms)
	fleet := NewFleet(urls, cfg.Clients, cfg.Rooms, cfg.PollingEvery, ledger)
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	t := time.Now()
	fleet.Connect(runCtx, 200)
	sum.ConnectSec = time.Since(t).Seconds()
	cfg.Logf("soak: %d of %d clients connected in %.1f s (%d connect errors); traffic for %s",
		fleet.Open(), cfg.Clients, sum.ConnectSec, fleet.ConnectErrors.Load(), cfg.Duration)

	prod := &Producer{URLs: urls, WebhookSecret: []byte(secret), EventsSecret: []byte(secret + source.EventsSecretSuffix),
		Rate: cfg.Rate, Rooms: cfg.Rooms, WebhookShare: cfg.WebhookShare, ResendWithin: ret / 2,
		GiveUp: 60 * time.Second, Ledger: ledger, Client: NewProducerClient()}

	t0 := time.Now()
	group := procstat.Group(pids)
	g0, _ := group.Read()
	gen0, _ := procstat.Read(0)
	sys0, _ := procstat.System()
	trafficCtx, stopTraffic := context.WithTimeout(runCtx, cfg.Duration)
	defer stopTraffic()
	var wg sync.WaitGroup

	// The producer.
	wg.Add(1)
	go func() { defer wg.Done(); prod.Run(trafficCtx, cfg.Seed) }()

	// Churn: ChurnPerMin of the clients per minute, spread over seconds.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := mrand.New(mrand.NewPCG(cfg.Seed, 0xc4a2))
		perSec := cfg.ChurnPerMin * float64(cfg.Clients) / 60
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		acc := 0.0
		for {
			select {
			case <-trafficCtx.Done():
				return
			case <-tick.C:
			}
			acc += perSec
			n := int(acc)
			acc -= float64(n)
			fleet.Churn(runCtx, n, rng)
		}
	}()

	// The Redis restart.
	wg.Add(1)
	go func() {
		defer wg.Done()
		at := time.Duration(cfg.RestartAt * float64(cfg.Duration))
		select {
		case <-trafficCtx.Done():
			sum.Redis.Error = "the run ended before the restart"
			return
		case <-time.After(time.Until(t0.Add(at))):
		}
		sum.Redis.DownAt = time.Since(t0).Seconds()
		cfg.Logf("soak: restarting redis-server at %.0f s (down %s)", sum.Redis.DownAt, cfg.RedisDown)
		if err := rd.Restart(runCtx, cfg.RedisDown); err != nil {
			sum.Redis.Error = err.Error()
			return
		}
		sum.Redis.UpAt = time.Since(t0).Seconds()
		if err := waitReady(trafficCtx, hc, urls, 120*time.Second); err != nil {
			sum.Redis.Error = "nodes not ready again: " + err.Error()
			return
		}
		sum.Redis.ReadyAt = time.Since(t0).Seconds()
		sum.Redis.RecoverySec = sum.Redis.ReadyAt - sum.Redis.UpAt
		cfg.Logf("soak: redis back at %.1f s, every node ready at %.1f s", sum.Redis.UpAt, sum.Redis.ReadyAt)
	}()

	// The sampler.
	var samplesMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(cfg.Interval)
		defer tick.Stop()
		var last int64
		ps, pg, pself := sys0, g0.CPU, gen0.CPU
		for {
			select {
			case <-trafficCtx.Done():
				return
			case <-tick.C:
			}
			s := Sample{T: math.Round(time.Since(t0).Seconds()*10) / 10, RedisMemMB: F(math.NaN()), RedisKeys: F(math.NaN())}
			for i := range urls {
				s.Nodes = append(s.Nodes, readNode(runCtx, hc, urls[i], pids[i]))
			}
			if v, err := rd.InfoField(runCtx, "memory", "used_memory"); err == nil {
				s.RedisMemMB = F(float64(v) / (1 << 20))
				s.RedisUp = true
			}
			if v, err := rd.Int(runCtx, "DBSIZE"); err == nil {
				s.RedisKeys = F(float64(v))
			}
			h := ledger.SwapWindow()
			s.P99MS = F(h.Quantile(0.99))
			d := ledger.Delivered()
			s.Deliveries, last = d-last, d
			s.Acked = prod.Published.Load() + prod.Webhooks.Load()
			s.Sessions = fleet.Open()
			g, _ := procstat.Read(0)
			s.GenRSSMB = F(float64(g.RSS) / (1 << 20))
			sys, _ := procstat.System()
			gs, _ := group.Read()
			s.OtherCPUPct = F(math.Max(0, 100*((sys-ps)-(gs.CPU-pg)-(g.CPU-pself)).Seconds()/cfg.Interval.Seconds()))
			ps, pg, pself = sys, gs.CPU, g.CPU
			samplesMu.Lock()
			sum.Samples = append(sum.Samples, s)
			samplesMu.Unlock()
			cfg.Logf("soak: t=%4.0fs rss=%s gor=%s fds=%s redis=%.1fMB keys=%.0f p99=%.1fms deliveries=%d sessions=%d",
				s.T, nodeVals(s, func(n NodeSample) float64 { return float64(n.RSSMB) }), nodeVals(s, func(n NodeSample) float64 { return float64(n.Goroutines) }),
				nodeVals(s, func(n NodeSample) float64 { return float64(n.FDs) }), s.RedisMemMB, s.RedisKeys, s.P99MS, s.Deliveries, s.Sessions)
		}
	}()
	wg.Wait()
	g1, _ := group.Read()
	gen1, _ := procstat.Read(0)
	sys1, _ := procstat.System()
	wall := time.Since(t0).Seconds()
	sum.NodesCPU = 100 * (g1.CPU - g0.CPU).Seconds() / wall
	sum.GeneratorCPU = 100 * (gen1.CPU - gen0.CPU).Seconds() / wall
	sum.OtherCPU = 100*(sys1-sys0).Seconds()/wall - sum.NodesCPU - sum.GeneratorCPU

	// Drain: wait until deliveries stop (at most 30 s).
	prev, still := ledger.Delivered(), 0
	for i := 0; i < 300 && still < 20; i++ {
		time.Sleep(100 * time.Millisecond)
		if d := ledger.Delivered(); d == prev {
			still++
		} else {
			prev, still = d, 0
		}
	}
	for i := range urls {
		sum.BusDuplicates += float64(readNode(ctx, hc, urls[i], pids[i]).BusDuplicates)
	}
	if c, err := rd.Census(ctx); err == nil {
		sum.KeysByPrefix = c
	}
	cancelRun()
	sum.OpenAtEnd = fleet.Open()
	fleet.CloseAll()
	for i, n := range nodes {
		if !n.Alive() {
			fail("gateway node %d exited during the run", i)
		}
	}

	sum.Verdict = ledger.Verdict(int64(cfg.Grace))
	sum.Churned, sum.Reconnected, sum.ConnectErrors = fleet.Churned.Load(), fleet.Reconnected.Load(), fleet.ConnectErrors.Load()
	sum.Requests, sum.Retries, sum.Rejected, sum.GivenUp = prod.Requests.Load(), prod.Retries.Load(), prod.Rejected.Load(), prod.GivenUp.Load()
	sum.Published, sum.Webhooks, sum.Resent, sum.ResendFailed = prod.Published.Load(), prod.Webhooks.Load(), prod.Resent.Load(), prod.ResendFailed.Load()
	sum.ErrorSamples = append(append([]string(nil), fleet.ErrSamples...), prod.ErrSamples...)

	v := sum.Verdict
	if v.Lost > 0 {
		fail("%d owed deliveries lost", v.Lost)
	}
	if v.Duplicates > 0 {
		fail("%d deliveries duplicated", v.Duplicates)
	}
	if v.Foreign > 0 {
		fail("%d events reached a client of another room", v.Foreign)
	}
	// A session the server or the network ended is reported, and its owed
	// events up to that moment are accounted like a churned one's (the
	// client reconnects); more than 1% of the sessions dropped fails.
	if v.Unexpected > 0 && float64(v.Unexpected) > 0.01*float64(v.Sessions) {
		fail("%d of %d sessions ended by the server or the network (more than 1%%)", v.Unexpected, v.Sessions)
	}
	if v.Unacknowledged > 0 {
		fail("%d events never acknowledged (rejected %d, given up %d requests)", v.Unacknowledged, sum.Rejected, sum.GivenUp)
	}
	if v.Owed == 0 {
		fail("no delivery was owed: nothing was measured")
	}
	if sum.OpenAtEnd < cfg.Clients {
		fail("%d of %d clients connected at the end", sum.OpenAtEnd, cfg.Clients)
	}
	if sum.Resent == 0 && sum.Webhooks > 0 {
		fail("no webhook was sent a second time")
	}
	if sum.Redis.Error != "" {
		fail("redis restart: %s", sum.Redis.Error)
	}
	if len(sum.Samples) > 0 {
		last := sum.Samples[len(sum.Samples)-1]
		for i, n := range last.Nodes {
			sum.Redis.ReconnectsSeen = append(sum.Redis.ReconnectsSeen, float64(n.Reconnects))
			if sum.Redis.Error == "" && float64(n.Reconnects) < 1 {
				fail("node %d never counted a Redis reconnect", i)
			}
		}
	}

	// Flatness over the second half.
	from, to := cfg.Duration.Seconds()/2, cfg.Duration.Seconds()
	sum.FitWindow = [2]float64{from, to}
	sum.Fits = Fits(sum.Samples, cfg.Nodes, from, to)
	for _, f := range sum.Fits {
		if f.N < 3 {
			fail("%s: only %d samples in the fit window", f.Metric, f.N)
		} else if !f.Pass {
			fail("%s drifted %.3g (%.1f%% of its mean %.4g) over the fit window, bound %.3g", f.Metric, f.Drift, f.DriftPct, f.Mean, f.Bound)
		}
	}
	sum.Pass = len(sum.Failures) == 0
	return sum, nil
}

// Fits checks every sampled figure over [from, to].
func Fits(samples []Sample, nodes int, from, to float64) []Fit {
	bounds := BoundsFor(time.Duration(to * float64(time.Second)))
	ts := make([]float64, len(samples))
	for i, s := range samples {
		ts[i] = s.T
	}
	col := func(f func(Sample) float64) []float64 {
		ys := make([]float64, len(samples))
		for i, s := range samples {
			ys[i] = f(s)
		}
		return ys
	}
	var fits []Fit
	for n := 0; n < nodes; n++ {
		nodeCol := func(f func(NodeSample) float64) []float64 {
			return col(func(s Sample) float64 {
				if n >= len(s.Nodes) {
					return math.NaN()
				}
				return f(s.Nodes[n])
			})
		}
		p := "node" + strconv.Itoa(n) + "."
		fits = append(fits,
			Check(p+"rss_mb", ts, nodeCol(func(v NodeSample) float64 { return float64(v.RSSMB) }), from, to, bounds["rss_mb"]),
			Check(p+"goroutines", ts, nodeCol(func(v NodeSample) float64 { return float64(v.Goroutines) }), from, to, bounds["goroutines"]),
			Check(p+"fds", ts, nodeCol(func(v NodeSample) float64 { return float64(v.FDs) }), from, to, bounds["fds"]))
	}
	fits = append(fits,
		Check("redis_used_memory_mb", ts, col(func(s Sample) float64 { return float64(s.RedisMemMB) }), from, to, bounds["redis_used_memory_mb"]),
		Check("redis_keys", ts, col(func(s Sample) float64 { return float64(s.RedisKeys) }), from, to, bounds["redis_keys"]),
		Check("p99_ms", ts, col(func(s Sample) float64 { return float64(s.P99MS) }), from, to, bounds["p99_ms"]))
	return fits
}

func nodeVals(s Sample, f func(NodeSample) float64) string {
	out := ""
	for i, n := range s.Nodes {
		if i > 0 {
			out += "/"
		}
		out += strconv.FormatFloat(f(n), 'f', 0, 64)
	}
	return out
}

// waitReady polls /readyz of every url until all answer 200.
func waitReady(ctx context.Context, c *http.Client, urls []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ok := 0
		for _, u := range urls {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/readyz", nil)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok++
				}
			}
		}
		if ok == len(urls) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("soak: nodes not ready within %s", limit)
}
