// Command loadgen drives one load scenario against a running Socket.IO
// server (the gateway or a peer) and prints JSON lines: one record per
// step or stage, then a "result" record with the headline figures and the
// loss accounting. It speaks Engine.IO v4 / Socket.IO v5 itself.
//
//	loadgen -scenario fanout -url http://127.0.0.1:5000 -pid 1234 -clients 1000
//
// Every scenario is bounded by -max-duration; targets must be loopback.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshgen/gateway/test/load/internal/procstat"
	"github.com/meshgen/gateway/test/load/internal/scenario"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		scen        = flag.String("scenario", "fanout", "idle, fanout, burst, rooms, e2e or ingest")
		label       = flag.String("label", "server", "server name written in every record")
		urls        = flag.String("url", "http://127.0.0.1:5000", "server base URL(s), comma-separated: clients are spread round-robin, events go to the first (cluster hook)")
		pids        = flag.String("pid", "", "server PID(s), comma-separated, for CPU and RSS from /proc")
		memURLs     = flag.String("mem-url", "", "idle: where each server's live heap and goroutines are read (the gateway's debug-addr, the node peer's URL), comma-separated")
		src         = flag.String("source", "webhook", "event source: webhook (signed Modal webhooks), publish (POST /api/events, provisional), emitter (peers' /_bench/emit)")
		secret      = flag.String("secret", "", "MODAL_WEBHOOK_SECRET of the server (empty: unsigned)")
		clients     = flag.Int("clients", 1000, "clients (fanout, burst, rooms, e2e)")
		polling     = flag.Float64("polling-share", 0, "share of clients on HTTP long-polling (0..1)")
		rooms       = flag.Int("rooms", 1, "project rooms; client i subscribes to p<i % rooms>")
		joinBatch   = flag.Bool("join-batch", false, "clients also emit join_batch on connect")
		stages      = flag.String("stages", "1000,10000", "idle: cumulative client counts")
		settle      = flag.Duration("settle", 2*time.Second, "idle: wait after a connect wave")
		warmup      = flag.Duration("warmup", 0, "fanout, rooms, e2e, burst: wait after the connect wave before the first step (its CPU is reported as warmup_cpu_seconds, not in any step)")
		window      = flag.Duration("idle-window", 10*time.Second, "idle: CPU measuring window")
		rates       = flag.String("rates", "", "events/s per step (fanout: deliveries/s targets when -rates-are-deliveries)")
		ratesDeliv  = flag.Bool("rates-are-deliveries", false, "fanout: -rates are deliveries/s targets (divided by the clients)")
		step        = flag.Duration("step", 4*time.Second, "sending time of one step")
		knee        = flag.Bool("stop-at-knee", true, "fanout, rooms: stop after the first step whose p99 exceeds -p99-limit")
		p99Limit    = flag.Duration("p99-limit", 50*time.Millisecond, "the knee's p99 bound")
		burstEvents = flag.Int("burst-events", 200, "burst: events per burst")
		burstRep    = flag.Int("burst-repeats", 3, "burst: bursts")
		burstBatch  = flag.Int("burst-batch", 0, "burst: events per request (needs -source publish or emitter; 0: one webhook per event, or 100 with a batch source)")
		batch       = flag.Int("batch", 0, "fanout, rooms, e2e: every request carries exactly this many events, one request every batch/rate seconds (needs -source publish or emitter; 0: what is due at each tick, up to 100)")
		ingestDur   = flag.Duration("ingest-duration", 5*time.Second, "ingest: measuring time")
		ingestConns = flag.Int("ingest-conns", 32, "ingest: keep-alive connections")
		workers     = flag.Int("workers", 64, "concurrent event posts")
		connConc    = flag.Int("connect-concurrency", 200, "handshakes in flight")
		srcIPs      = flag.Int("source-ips", 0, "spread websocket clients over 127.0.0.2..(1+N) source addresses (0: off)")
		maxDur      = flag.Duration("max-duration", 10*time.Minute, "hard bound of the whole run")
		quiet       = flag.Float64("quiet-threshold", 50, "other processes' CPU (% of one core) under which the machine counts as quiet (knee retries wait for it, up to 30 s)")
		strict      = flag.Bool("strict", false, "exit 1 on any loss, duplicate, protocol error, connect error or HTTP error")
		slowN       = flag.Int("slow-clients", 0, "fanout, rooms, e2e: also open this many WebSocket clients in room p0 that stop reading once subscribed (what they cost the others is the figure; they are not counted as clients)")
		bigAll      = flag.Bool("big", false, "fanout, rooms, e2e: every event carries the ~2 KB result")
	)
	flag.Parse()

	var urlList []string
	for _, u := range strings.Split(*urls, ",") {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if err := loopbackOnly(u); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 2
		}
		urlList = append(urlList, u)
	}
	var pidList []int
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen: bad -pid:", p)
				return 2
			}
			pidList = append(pidList, n)
		}
	}

	var memList []string
	for _, u := range strings.Split(*memURLs, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			if err := loopbackOnly(u); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
				return 2
			}
			memList = append(memList, u)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), *maxDur)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var outMu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(rec any) {
		outMu.Lock()
		defer outMu.Unlock()
		if err := enc.Encode(rec); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: encode:", err)
		}
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}

	n := *clients
	if *scen == "ingest" {
		n = 0
	}
	stageList, err := ints(*stages)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: bad -stages:", err)
		return 2
	}
	if *scen == "idle" && len(stageList) > 0 {
		n = stageList[len(stageList)-1]
	}
	h, err := scenario.New(scenario.Config{
		Label: *label, URLs: urlList, PIDs: pidList, MemURLs: memList, Source: *src, Secret: *secret,
		Clients: n, PollingShare: *polling, Rooms: *rooms, JoinBatch: *joinBatch,
		ConnectConcurrency: *connConc, SourceIPs: *srcIPs, Workers: *workers, QuietThreshold: *quiet,
		Emit: emit, Logf: logf,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}

	for _, b := range []struct {
		name string
		n    int
	}{{"-batch", *batch}, {"-burst-batch", *burstBatch}} {
		if b.n < 0 || b.n > h.MaxBatch() {
			fmt.Fprintf(os.Stderr, "loadgen: %s %d: source %s carries at most %d event(s) per request (batches need -source publish or emitter)\n", b.name, b.n, *src, h.MaxBatch())
			return 2
		}
	}

	rateList, err := floats(*rates)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: bad -rates:", err)
		return 2
	}
	var warm procstat.Window // the server's CPU during -warmup
	connect := func() bool {
		cr := h.Connect(ctx, n)
		emit(map[string]any{"type": "connect", "server": *label, "scenario": *scen, "connect": cr})
		logf("%s %s: %d/%d clients connected and subscribed in %.2fs (%.0f/s), %d errors",
			*label, *scen, cr.Connected, n, cr.Seconds, cr.PerSecond, cr.Errors)
		if cr.Connected > 0 && *warmup > 0 {
			warm = scenario.Warmup(ctx, h, *warmup)
			logf("%s %s: warmup %.0fs after the connect wave: server CPU %.2f s (%.1f%%)", *label, *scen, warm.Seconds, warm.CPUSeconds, warm.CPUPercent)
		}
		return cr.Connected > 0
	}

	var res scenario.Result
	switch *scen {
	case "idle":
		res = scenario.Idle(ctx, h, scenario.IdleParams{Stages: stageList, Settle: *settle, Window: *window})
	case "fanout", "rooms", "e2e":
		if len(rateList) == 0 {
			fmt.Fprintln(os.Stderr, "loadgen: -rates is required")
			return 2
		}
		if !connect() {
			res = scenario.Result{Type: "result", Label: *label, Scenario: *scen}
			t := h.Finish(*scen)
			res.Totals = &t
			break
		}
		p := scenario.SteppedParams{Name: *scen, Step: *step, P99Limit: *p99Limit, Pause: 300 * time.Millisecond, Batch: *batch}
		switch *scen {
		case "fanout":
			p.Choose = scenario.FanoutChooser()
			p.StopAtKnee = *knee
			if *ratesDeliv {
				for i := range rateList {
					rateList[i] /= float64(h.Connected())
				}
			}
		case "rooms":
			p.Choose = scenario.MixedChooser(*rooms)
			p.StopAtKnee = *knee
		case "e2e":
			p.Choose = scenario.UniformChooser(*rooms)
		}
		for _, r := range rateList {
			if r*step.Seconds() < 1 {
				fmt.Fprintf(os.Stderr, "loadgen: a step of %v at %.2f events/s sends no event; raise the rate or -step\n", *step, r)
				return 2
			}
		}
		p.Rates = rateList
		if *bigAll {
			choose := p.Choose
			p.Choose = func(i int64, rng *rand.Rand) (int, bool, bool) {
				room, _, failed := choose(i, rng)
				return room, true, failed
			}
		}
		var slow []*slowClient
		if *slowN > 0 {
			if slow, err = openSlowClients(ctx, urlList[0], "p0", *slowN); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
				return 1
			}
			logf("%s %s: %d slow clients in p0 stopped reading", *label, *scen, len(slow))
		}
		res = scenario.Stepped(ctx, h, p)
		res.Params["big"] = *bigAll
		if *slowN > 0 {
			o := finishSlowClients(slow, 3*time.Second)
			res.Params["slow_clients"] = o.Clients
			res.Figures["slow_clients_cut"] = float64(o.Cut)
			if v := gatewayLimitHits(ctx, urlList[0], "ws_buffer"); v >= 0 {
				res.Figures["ws_buffer_hits"] = v
			}
			logf("%s %s: %d of %d slow clients cut off by the server (%d bytes read after the run)", *label, *scen, o.Cut, o.Clients, o.ReadBytes)
		}
	case "burst":
		if !connect() {
			t := h.Finish(*scen)
			res = scenario.Result{Type: "result", Label: *label, Scenario: *scen, Totals: &t}
			break
		}
		res = scenario.Burst(ctx, h, scenario.BurstParams{Events: *burstEvents, Repeats: *burstRep, Batch: *burstBatch})
	case "ingest":
		res = scenario.Ingest(ctx, h, scenario.IngestParams{Duration: *ingestDur, Conns: *ingestConns})
	default:
		fmt.Fprintln(os.Stderr, "loadgen: unknown -scenario", *scen)
		return 2
	}
	if ctx.Err() != nil {
		res.Notes = append(res.Notes, "stopped early: "+ctx.Err().Error())
	}
	if *warmup > 0 && res.Figures != nil {
		res.Params["warmup_s"] = warmup.Seconds()
		res.Figures["warmup_cpu_seconds"] = warm.CPUSeconds
	}
	emit(res)
	if t := res.Totals; t != nil {
		logf("%s %s: ok=%v lost=%d duplicates=%d unparsed=%d http_errors=%d connect_errors=%d disconnects=%d protocol_errors=%d",
			*label, *scen, res.OK, t.Lost, t.Duplicates, t.Unparsed, t.HTTPErrors, t.ConnectErrors, t.Disconnects, t.ProtocolErrors)
		for _, s := range t.ErrorSamples {
			logf("  %s", s)
		}
	}
	if *strict && !res.OK {
		return 1
	}
	return 0
}

// loopbackOnly refuses any target that is not a loopback address.
func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not a loopback address: load tests target 127.0.0.1 only", raw)
	}
	return nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		f = strings.ReplaceAll(strings.ToLower(f), "k", "000")
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func floats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		mul := 1.0
		if strings.HasSuffix(strings.ToLower(f), "k") {
			mul, f = 1000, f[:len(f)-1]
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v*mul)
	}
	return out, nil
}
