// Command bench is the load harness's entry point: it builds the gateway
// and the load generator, installs the peers when missing, runs every
// scenario against every server (gateway, node socket.io, Flask-SocketIO)
// with the same generator, several runs each, writes results/*.json and
// then the report (benchmarks.md and benchmarks.png).
//
//	go run ./cmd/bench                      # full run, all servers
//	go run ./cmd/bench -smoke               # CI: gateway only, < 60 s, fails on loss
//	go run ./cmd/bench report               # rebuild the report from results/
//
// Run it from test/load (or use run.sh, which also raises ulimit -n).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshgen/gateway/test/load/internal/peers"
	"github.com/meshgen/gateway/test/load/internal/procstat"
	"github.com/meshgen/gateway/test/load/internal/report"
	"github.com/meshgen/gateway/test/load/internal/scenario"
	"github.com/meshgen/gateway/test/load/internal/stats"
)

func main() { os.Exit(run(os.Args[1:])) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

type options struct {
	moduleDir, repoDir, resultsDir, outDir string
	servers, scenarios                     []string
	runs                                   int
	profile                                string
	smoke, noBuild, noReport               bool
	idleMax                                int
	gatewayEnv                             string
	secret, redisURL                       string
	nodes                                  int
	quietThreshold                         float64
	source                                 string
	quietWait                              time.Duration
	maxTotal                               time.Duration
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "report" {
		return runReport(args[1:])
	}
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var o options
	var servers, scenarios string
	fs.StringVar(&o.moduleDir, "module", ".", "the test/load directory")
	fs.StringVar(&o.repoDir, "repo", "", "the gateway repository (default: two levels above -module)")
	fs.StringVar(&o.resultsDir, "results", "", "where results/*.json go (default <module>/results, or <module>/results-smoke with -smoke)")
	fs.StringVar(&o.outDir, "out", "", "where benchmarks.md and benchmarks.png go (default <module>/out)")
	fs.StringVar(&servers, "servers", "gateway,node,flask", "servers to compare")
	fs.StringVar(&scenarios, "scenarios", "idle,fanout,fanout10k,burst,burstbatch,e2e,ingest,rooms,rooms100", "scenarios to run")
	fs.IntVar(&o.runs, "runs", 3, "runs per figure (the report shows the median and the min-max)")
	fs.StringVar(&o.profile, "profile", "full", "sizes: full (1k/10k clients) or quick (a few hundred to 2k, for development)")
	fs.BoolVar(&o.smoke, "smoke", false, "CI smoke: gateway only, few clients, a few seconds; exit 1 on any loss or protocol error")
	fs.BoolVar(&o.noBuild, "no-build", false, "use the existing bin/gateway and bin/loadgen")
	fs.BoolVar(&o.noReport, "no-report", false, "do not write the report")
	fs.StringVar(&o.gatewayEnv, "gateway-env", "", "extra KEY=VALUE settings of the gateway process, comma-separated (e.g. GOMEMLIMIT=256MiB: a pod's memory limit)")
	fs.IntVar(&o.idleMax, "idle-max", 20000, "idle: add a last stage of this many clients (capped by the open-file limit; 0 or up to 10000: no extra stage)")
	fs.StringVar(&o.secret, "secret", "bench-secret", "MODAL_WEBHOOK_SECRET of every server (webhooks are signed)")
	fs.StringVar(&o.redisURL, "redis-url", "", "REDIS_URL for the gateway (cluster hook; empty: single node)")
	fs.IntVar(&o.nodes, "nodes", 1, "cluster hook: processes per server; clients are spread round-robin, events go to the first (needs a shared bus, e.g. -redis-url for the gateway)")
	fs.StringVar(&o.source, "source", "webhook", "event source: webhook (signed Modal webhooks, every server) or batch (batches of 100: the publish API POST /api/events on the gateway, the bench-only /_bench/emit on the peers)")
	fs.Float64Var(&o.quietThreshold, "quiet-threshold", 50, "before each run, wait until other processes use less than this % of one core (this machine is shared)")
	fs.DurationVar(&o.quietWait, "quiet-wait", 3*time.Minute, "longest wait for a quiet machine before a run (0: do not wait)")
	fs.DurationVar(&o.maxTotal, "max-total", 60*time.Minute, "hard bound of the whole run")
	_ = fs.Parse(args)
	o.servers = split(servers)
	o.scenarios = split(scenarios)

	var err error
	if o.moduleDir, err = filepath.Abs(o.moduleDir); err != nil {
		logf("%v", err)
		return 2
	}
	if _, err := os.Stat(filepath.Join(o.moduleDir, "cmd/loadgen")); err != nil {
		logf("-module %s is not test/load: run from test/load or pass -module", o.moduleDir)
		return 2
	}
	if o.repoDir == "" {
		o.repoDir = filepath.Dir(filepath.Dir(o.moduleDir))
	}
	if o.smoke {
		o.servers = []string{peers.Gateway}
		o.scenarios = []string{"smoke-fanout", "smoke-e2e", "smoke-ingest"}
		o.runs = 1
		o.noReport = true
		o.quietWait = 0
		if o.maxTotal > 3*time.Minute {
			o.maxTotal = 3 * time.Minute
		}
	}
	if o.resultsDir == "" {
		o.resultsDir = filepath.Join(o.moduleDir, "results")
		if o.smoke {
			o.resultsDir = filepath.Join(o.moduleDir, "results-smoke")
		}
	}
	if o.outDir == "" {
		o.outDir = filepath.Join(o.moduleDir, "out")
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.maxTotal)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	code := bench(ctx, o)
	// The report is written after a failed run too: its loss table shows
	// what failed.
	if code != 2 && ctx.Err() == nil && !o.noReport {
		if err := report.Write(o.resultsDir, o.outDir); err != nil {
			logf("report: %v", err)
			return 1
		}
		logf("report written to %s", o.outDir)
	}
	return code
}

func runReport(args []string) int {
	fs := flag.NewFlagSet("bench report", flag.ExitOnError)
	results := fs.String("results", "results", "results directory")
	out := fs.String("out", "out", "output directory")
	_ = fs.Parse(args)
	if err := report.Write(*results, *out); err != nil {
		logf("report: %v", err)
		return 1
	}
	logf("report written to %s", *out)
	return 0
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// maxClients is what the fd limit allows one process (the server holds one
// descriptor per client).
func maxClients() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 10000
	}
	return int(rl.Max) - 500
}

// plan is one scenario: the loadgen arguments besides the server's.
type plan struct {
	name    string
	args    []string
	timeout time.Duration
	strict  bool
	batch   bool // events always come in batches (-source batch: publish API or /_bench/emit), whatever -source says
}

func plans(o options) (map[string]plan, []string) {
	var notes []string
	maxC := maxClients()
	capN := func(n int) int {
		if n > maxC {
			notes = append(notes, fmt.Sprintf("client count %d capped to %d by the open-file hard limit (ulimit -Hn)", n, maxC))
			return maxC
		}
		return n
	}
	p := map[string]plan{}
	switch o.profile {
	case "quick":
		p["idle"] = plan{args: []string{"-scenario", "idle", "-stages", "200,2000", "-settle", "1s", "-idle-window", "3s"}, timeout: 3 * time.Minute}
		p["fanout"] = plan{args: []string{"-scenario", "fanout", "-clients", "500", "-rates-are-deliveries",
			"-rates", "5k,10k,20k,40k,60k,80k,100k", "-step", "2s"}, timeout: 3 * time.Minute}
		p["fanout10k"] = plan{args: []string{"-scenario", "fanout", "-clients", "2000", "-rates-are-deliveries",
			"-rates", "5k,10k,20k,40k,60k,80k", "-step", "2s"}, timeout: 3 * time.Minute}
		p["burst"] = plan{args: []string{"-scenario", "burst", "-clients", "500", "-burst-events", "100", "-burst-repeats", "2"}, timeout: 2 * time.Minute}
		p["burstbatch"] = plan{args: []string{"-scenario", "burst", "-clients", "500", "-burst-events", "1000", "-burst-batch", "1000",
			"-burst-repeats", "2"}, timeout: 2 * time.Minute, batch: true}
		p["rooms"] = plan{args: []string{"-scenario", "rooms", "-clients", "2000", "-rooms", "200", "-polling-share", "0.05", "-join-batch",
			"-rates", "100,200,400,800", "-step", "2s"}, timeout: 3 * time.Minute}
		p["e2e"] = plan{args: []string{"-scenario", "e2e", "-clients", "500", "-rooms", "50", "-polling-share", "0.05",
			"-rates", "50,200", "-step", "2s", "-stop-at-knee=false"}, timeout: 2 * time.Minute}
		p["ingest"] = plan{args: []string{"-scenario", "ingest", "-ingest-duration", "3s", "-ingest-conns", "16"}, timeout: time.Minute}
	default:
		stages := []string{"1000", "10000"}
		if o.idleMax > 10000 {
			stages = append(stages, strconv.Itoa(capN(o.idleMax)))
		}
		p["idle"] = plan{args: []string{"-scenario", "idle", "-stages", strings.Join(stages, ","), "-settle", "2s",
			"-idle-window", "10s", "-source-ips", "8"}, timeout: 6 * time.Minute}
		// Idle long-polling clients (not in the default list): each holds
		// a pending GET in the server; RSS per client as for idle.
		p["idlepolling"] = plan{args: []string{"-scenario", "idle", "-stages", "500,2000", "-polling-share", "1",
			"-settle", "2s", "-idle-window", "5s"}, timeout: 3 * time.Minute}
		fanRates := "2k,5k,10k,20k,30k,40k,60k,80k,100k,130k,160k,200k,250k"
		// The stepped fan-out and rooms scenarios wait 15 s after their
		// connect wave (-warmup, the same for every server): the steps
		// measure deliveries, not the wave's aftermath (the servers'
		// collections of the handshakes' garbage; the gateway's GC policy
		// returns a 10k wave's memory about 9 s after it, 0.1-0.2 CPU-s,
		// which without the wait lands in whichever step runs then). That
		// CPU is reported as warmup_cpu_seconds.
		p["fanout"] = plan{args: []string{"-scenario", "fanout", "-clients", "1000", "-rates-are-deliveries",
			"-rates", fanRates, "-step", "4s", "-warmup", "15s"}, timeout: 4 * time.Minute}
		// From 10k deliveries/s: one event per second to 10k clients (a
		// lower target would send less than one event in a step). Writing
		// one event to 10k sockets takes longer than 50 ms on this kind of
		// machine for every server, so this knee's bound is 500 ms.
		p["fanout10k"] = plan{args: []string{"-scenario", "fanout", "-clients", strconv.Itoa(capN(10000)), "-source-ips", "8",
			"-rates-are-deliveries", "-rates", "10k,20k,30k,40k,60k,80k,100k,130k,160k,200k,250k", "-step", "4s",
			"-p99-limit", "500ms", "-warmup", "15s"}, timeout: 5 * time.Minute}
		p["burst"] = plan{args: []string{"-scenario", "burst", "-clients", "1000", "-burst-events", "200", "-burst-repeats", "3"}, timeout: 3 * time.Minute}
		// The burst from a batched producer: 1000 events in one request
		// (the publish API's limit) to the same 1k room, against burst's
		// one webhook per event.
		p["burstbatch"] = plan{args: []string{"-scenario", "burst", "-clients", "1000", "-burst-events", "1000", "-burst-batch", "1000",
			"-burst-repeats", "3"}, timeout: 4 * time.Minute, batch: true}
		p["rooms"] = plan{args: []string{"-scenario", "rooms", "-clients", strconv.Itoa(capN(10000)), "-rooms", "1000",
			"-polling-share", "0.05", "-join-batch", "-source-ips", "8",
			"-rates", "100,200,400,700,1000,1500,2000,3000", "-step", "4s", "-warmup", "15s"}, timeout: 5 * time.Minute}
		p["e2e"] = plan{args: []string{"-scenario", "e2e", "-clients", "1000", "-rooms", "100", "-polling-share", "0.05",
			"-rates", "50,200,500", "-step", "5s", "-stop-at-knee=false"}, timeout: 3 * time.Minute}
		// The latency target: p99 at 50k deliveries/s over 100 rooms
		// (1000 websocket clients, 10 per room, 5000 events/s). The events
		// come in batches of exactly 100 (-batch: one request every 100 ms
		// at 1000/s, every 20 ms at 5000/s), so the figure is fan-out, not
		// the cost of an HTTP request per event.
		p["rooms100"] = plan{args: []string{"-scenario", "e2e", "-clients", "1000", "-rooms", "100",
			"-rates", "1000,2500,5000", "-step", "5s", "-stop-at-knee=false", "-batch", "100"}, timeout: 3 * time.Minute, batch: true}
		p["ingest"] = plan{args: []string{"-scenario", "ingest", "-ingest-duration", "5s", "-ingest-conns", "32"}, timeout: 2 * time.Minute}
	}
	// The CI smoke: a few clients (some on polling), zero loss required.
	p["smoke-fanout"] = plan{args: []string{"-scenario", "fanout", "-clients", "100", "-polling-share", "0.1", "-join-batch",
		"-rates", "20,50", "-step", "2s", "-stop-at-knee=false"}, timeout: 40 * time.Second, strict: true}
	p["smoke-e2e"] = plan{args: []string{"-scenario", "e2e", "-clients", "100", "-rooms", "10", "-polling-share", "0.1",
		"-rates", "100", "-step", "2s", "-stop-at-knee=false"}, timeout: 30 * time.Second, strict: true}
	p["smoke-ingest"] = plan{args: []string{"-scenario", "ingest", "-ingest-duration", "1s", "-ingest-conns", "4"}, timeout: 20 * time.Second, strict: true}
	for k, v := range p {
		v.name = k
		p[k] = v
	}
	return p, notes
}

func bench(ctx context.Context, o options) int {
	logf("module %s, repo %s, results %s", o.moduleDir, o.repoDir, o.resultsDir)
	gwBin := filepath.Join(o.moduleDir, "bin/gateway")
	lgBin := filepath.Join(o.moduleDir, "bin/loadgen")
	if !o.noBuild {
		if err := build(o.repoDir, gwBin, "./cmd/gateway"); err != nil {
			logf("build gateway: %v", err)
			return 2
		}
		if err := build(o.moduleDir, lgBin, "./cmd/loadgen"); err != nil {
			logf("build loadgen: %v", err)
			return 2
		}
	}
	for _, s := range o.servers {
		var err error
		switch s {
		case peers.Node:
			err = peers.EnsureNode(o.moduleDir, logf)
		case peers.Flask:
			err = peers.EnsureFlask(logf)
		case peers.Gateway:
		default:
			err = fmt.Errorf("unknown server %q", s)
		}
		if err != nil {
			logf("%v", err)
			return 2
		}
	}
	all, notes := plans(o)
	for _, n := range notes {
		logf("note: %s", n)
	}
	if err := os.MkdirAll(o.resultsDir, 0o755); err != nil {
		logf("%v", err)
		return 2
	}
	env := peers.Env{ModuleDir: o.moduleDir, GatewayBin: gwBin, Secret: o.secret, RedisURL: o.redisURL,
		LogDir: filepath.Join(o.resultsDir, "logs")}
	if o.gatewayEnv != "" {
		env.GatewayEnv = strings.Split(o.gatewayEnv, ",")
	}
	meta := report.CollectMachine(o.repoDir, o.moduleDir)
	meta.Command = "go run ./cmd/bench " + strings.Join(os.Args[1:], " ")
	meta.Profile = o.profile
	meta.Notes = notes
	meta.Started = time.Now().UTC().Format(time.RFC3339)

	failed := false
	for _, name := range o.scenarios {
		pl, ok := all[name]
		if !ok {
			logf("unknown scenario %q", name)
			return 2
		}
		sr := report.ScenarioResults{Scenario: name, LoadgenArgs: pl.args, Runs: o.runs, Servers: map[string]*report.ServerResults{}}
		for r := 0; r < o.runs; r++ {
			// Rotate the order so no server always runs first.
			order := slices.Clone(o.servers)
			for i := 0; i < r%len(order); i++ {
				order = append(order[1:], order[0])
			}
			for _, srv := range order {
				if ctx.Err() != nil {
					logf("stopped: %v", ctx.Err())
					return 1
				}
				res, err := runOne(ctx, o, env, lgBin, pl, srv, r)
				if err != nil {
					logf("%s %s run %d: %v", name, srv, r+1, err)
					failed = true
					continue
				}
				s := sr.Servers[srv]
				if s == nil {
					s = &report.ServerResults{}
					sr.Servers[srv] = s
				}
				s.Runs = append(s.Runs, res)
				if !res.OK {
					failed = true
					logf("%s %s run %d: NOT OK (loss, duplicates or errors: see the raw results)", name, srv, r+1)
				}
			}
		}
		for _, s := range sr.Servers {
			s.Figures = map[string]stats.Spread{}
			keys := map[string]bool{}
			for _, r := range s.Runs {
				for k := range r.Figures {
					keys[k] = true
				}
			}
			s.OK = true
			for k := range keys {
				var vs []float64
				for _, r := range s.Runs {
					if v, ok := r.Figures[k]; ok {
						vs = append(vs, v)
					}
				}
				s.Figures[k] = stats.SpreadOf(vs)
			}
			for _, r := range s.Runs {
				s.OK = s.OK && r.OK
			}
		}
		// Servers not run this time keep their earlier figures (re-measure
		// the gateway after a change without re-running the peers).
		path := filepath.Join(o.resultsDir, name+".json")
		if b, err := os.ReadFile(path); err == nil {
			var prev report.ScenarioResults
			if json.Unmarshal(b, &prev) == nil && slices.Equal(prev.LoadgenArgs, sr.LoadgenArgs) {
				for srv, res := range prev.Servers {
					if _, ran := sr.Servers[srv]; !ran {
						sr.Servers[srv] = res
						logf("%s: kept the earlier results of %s", name, srv)
					}
				}
			}
		}
		if err := writeJSON(path, sr); err != nil {
			logf("%v", err)
			return 2
		}
	}
	meta.Finished = time.Now().UTC().Format(time.RFC3339)
	meta.Commands = []string{meta.Command + "   # " + strings.Join(o.scenarios, ",") + " x " + strings.Join(o.servers, ",") + ", " + strconv.Itoa(o.runs) + " run(s)"}
	// Several invocations may fill one results directory (e.g. the big
	// scenarios with fewer runs): keep every command.
	if b, err := os.ReadFile(filepath.Join(o.resultsDir, "machine.json")); err == nil {
		var prev report.Machine
		if json.Unmarshal(b, &prev) == nil && prev.Started != "" {
			meta.Started = prev.Started
			meta.Commands = append(prev.Commands, meta.Commands...)
		}
	}
	if !o.smoke {
		if err := writeJSON(filepath.Join(o.resultsDir, "machine.json"), meta); err != nil {
			logf("%v", err)
			return 2
		}
	}
	if failed {
		logf("FAILED: at least one run lost deliveries, saw protocol errors or could not run")
		return 1
	}
	logf("all runs ok")
	return 0
}

func build(dir, out, pkg string) error {
	logf("go build -o %s %s (in %s)", out, pkg, dir)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// runOne starts srv, runs loadgen against it, stops srv, returns the
// result record.
func runOne(ctx context.Context, o options, env peers.Env, lgBin string, pl plan, srv string, r int) (scenario.Result, error) {
	tag := fmt.Sprintf("%s-run%d", pl.name, r+1)
	other := -1.0
	if o.quietWait > 0 {
		var waited time.Duration
		other, waited = procstat.WaitQuiet(ctx.Done(), o.quietThreshold, o.quietWait, nil)
		if waited > 3*time.Second {
			logf("waited %.0fs for a quiet machine (other processes now %.0f%% of a core)", waited.Seconds(), other)
		}
	}
	var nodes []*peers.Server
	defer func() {
		for _, s := range nodes {
			s.Stop()
		}
	}()
	var urls, pids, mems []string
	for i := 0; i < max(o.nodes, 1); i++ {
		t := tag
		if o.nodes > 1 {
			t = fmt.Sprintf("%s-node%d", tag, i+1)
		}
		s, err := peers.Start(ctx, env, srv, t)
		if err != nil {
			return scenario.Result{}, err
		}
		nodes = append(nodes, s)
		urls = append(urls, s.URL)
		pids = append(pids, strconv.Itoa(s.PID()))
		if s.MemURL != "" {
			mems = append(mems, s.MemURL)
		}
	}
	args := append([]string{"-label", srv, "-url", strings.Join(urls, ","), "-pid", strings.Join(pids, ","), "-secret", o.secret,
		"-max-duration", pl.timeout.String()}, pl.args...)
	if pl.strict {
		args = append(args, "-strict")
	}
	if len(mems) > 0 && len(mems) == len(urls) {
		args = append(args, "-mem-url", strings.Join(mems, ","))
	}
	if (o.source == "batch" || pl.batch) && pl.name != "ingest" && pl.name != "smoke-ingest" {
		if srv == peers.Gateway {
			args = append(args, "-source", "publish")
		} else {
			args = append(args, "-source", "emitter")
		}
	}
	rawDir := filepath.Join(o.resultsDir, "raw")
	if err := os.MkdirAll(rawDir, 0o755); err != nil {
		return scenario.Result{}, err
	}
	rawPath := filepath.Join(rawDir, fmt.Sprintf("%s-%s-run%d.jsonl", pl.name, srv, r+1))
	raw, err := os.Create(rawPath)
	if err != nil {
		return scenario.Result{}, err
	}
	defer raw.Close()
	logf("%s run %d/%d on %s (pid %s): loadgen %s", pl.name, r+1, o.runs, srv, strings.Join(pids, ","), strings.Join(pl.args, " "))
	cctx, cancel := context.WithTimeout(ctx, pl.timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, lgBin, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return scenario.Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return scenario.Result{}, err
	}
	var res scenario.Result
	found := false
	sc := bufio.NewScanner(io.TeeReader(stdout, raw))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(line, &head) == nil && head.Type == "result" {
			if err := json.Unmarshal(line, &res); err == nil {
				found = true
			}
		}
	}
	werr := cmd.Wait()
	for _, n := range nodes {
		if !n.Alive() {
			return res, fmt.Errorf("%s died during the run (see %s)", srv, env.LogDir)
		}
	}
	if !found {
		return res, fmt.Errorf("loadgen gave no result (%v)", werr)
	}
	if other >= 0 {
		res.Figures["pre_run_other_cpu_percent"] = other
		if other >= o.quietThreshold {
			res.Notes = append(res.Notes, fmt.Sprintf("run started on a busy machine: other processes used %.0f%% of a core", other))
		}
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return res, werr
	}
	return res, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
