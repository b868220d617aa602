// Command soak runs the soak scenario (package internal/soak): a real
// redis-server with AOF, gateway nodes on it, thousands of churning
// clients, a producer of publish batches and twice-sent webhooks, a Redis
// restart in the middle, figures sampled every interval. It prints a JSON
// summary, writes the full record (with every sample) to -results, and with
// -docs the plot (soak.png) and the soak section of reliability.md. It
// exits 1 when a figure is not flat within its bound, an owed delivery was
// lost, a delivery was duplicated, or anything else failed.
//
//	soak -gateway ../../bin/gateway -duration 1h -docs ../../docs
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/meshgen/gateway/test/load/internal/soak"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		gateway   = flag.String("gateway", "../../bin/gateway", "the gateway binary (make build)")
		redisBin  = flag.String("redis-server", "/usr/bin/redis-server", "redis-server binary")
		duration  = flag.Duration("duration", time.Hour, "traffic time (connecting the clients comes before)")
		interval  = flag.Duration("interval", 0, "sampling interval (0: 10 s, or a thirtieth of runs shorter than 5 min)")
		nodes     = flag.Int("nodes", 2, "gateway nodes on the one Redis")
		clients   = flag.Int("clients", 5000, "clients")
		rooms     = flag.Int("rooms", 500, "project rooms (client i in room i % rooms)")
		pollEvery = flag.Int("polling-every", 10, "every n-th client long-polls (10: 10%; 0: none)")
		rate      = flag.Float64("rate", 500, "events per second")
		webhooks  = flag.Float64("webhook-share", 0.1, "share of events sent as webhooks (each sent twice)")
		churn     = flag.Float64("churn", 0.10, "share of the clients closed and reconnected per minute")
		restartAt = flag.Float64("restart-at", 0, "Redis restarts at this share of the duration (0: 40%, and at least 15 s before the fit window, the second half, begins)")
		down      = flag.Duration("redis-down", 3*time.Second, "how long Redis stays down")
		grace     = flag.Duration("churn-grace", 10*time.Second, "events acknowledged less than this before a session left are not owed to it")
		seed      = flag.Uint64("seed", 1, "random seed (rooms, churn)")
		docs      = flag.String("docs", "", "write soak.png and the soak section of reliability.md into this directory (empty: none)")
		results   = flag.String("results", "results/soak.json", "the full record, every sample included (empty: none)")
		work      = flag.String("work", "", "Redis data and server logs (default: a new temporary directory)")
		command   = flag.String("command", "", "the command written in the docs (default: this command line)")
		render    = flag.String("render", "", "run nothing: rewrite the -docs outputs from this record (a -results file)")
	)
	flag.Parse()
	if *render != "" {
		return rerender(*render, *docs, *command)
	}
	raiseNoFile()
	*interval, *restartAt = soak.AutoTiming(*duration, *interval, *restartAt)
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	if *work == "" {
		d, err := os.MkdirTemp("", "gateway-soak-")
		if err != nil {
			logf("soak: %v", err)
			return 2
		}
		defer os.RemoveAll(d)
		*work = d
	}
	gw, err := filepath.Abs(*gateway)
	if err != nil {
		logf("soak: %v", err)
		return 2
	}
	if _, err := os.Stat(gw); err != nil {
		logf("soak: gateway binary: %v (make build)", err)
		return 2
	}
	moduleDir, _ := os.Getwd()
	// Bound the whole run: traffic, connecting, draining and restarts.
	ctx, cancel := context.WithTimeout(context.Background(), *duration+10*time.Minute)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	sum, err := soak.Run(ctx, soak.Config{
		ModuleDir: moduleDir, GatewayBin: gw, RedisBin: *redisBin, WorkDir: *work,
		Nodes: *nodes, Clients: *clients, Rooms: *rooms, PollingEvery: *pollEvery, Rate: *rate,
		WebhookShare: *webhooks, ChurnPerMin: *churn, Duration: *duration, Interval: *interval,
		RestartAt: *restartAt, RedisDown: *down, Grace: *grace, Seed: *seed, Logf: logf,
	})
	if err != nil {
		logf("soak: %v", err)
		return 2
	}
	if *results != "" {
		if err := os.MkdirAll(filepath.Dir(*results), 0o755); err == nil {
			b, _ := json.Marshal(sum)
			if err := os.WriteFile(*results, b, 0o644); err != nil {
				logf("soak: %v", err)
			}
		}
	}
	if *docs != "" {
		cmd := *command
		if cmd == "" {
			cmd = "cd test/load && go run ./cmd/soak " + strings.Join(os.Args[1:], " ")
		}
		sum.Command, sum.CPU = cmd, cpuModel()
		if err := writeDocs(sum, *docs); err != nil {
			logf("soak: %v", err)
			return 2
		}
	}
	out := *sum
	out.Samples = nil
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	if !sum.Pass {
		logf("soak: FAIL: %s", strings.Join(sum.Failures, "; "))
		return 1
	}
	logf("soak: PASS")
	return 0
}

func writeDocs(sum *soak.Summary, dir string) error {
	if err := soak.WritePlot(filepath.Join(dir, "soak.png"), sum); err != nil {
		return err
	}
	return soak.WriteSection(filepath.Join(dir, "reliability.md"), soak.Markdown(sum, sum.Command, sum.CPU, "soak.png"))
}

func rerender(path, dir, command string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	var sum soak.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	if command != "" {
		sum.Command = command
	}
	if sum.CPU == "" {
		sum.CPU = cpuModel()
	}
	if dir == "" {
		dir = "."
	}
	if err := writeDocs(&sum, dir); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	return 0
}

// raiseNoFile lifts the soft open-file limit to the hard one: the
// generator holds one descriptor per client.
func raiseNoFile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return fmt.Sprintf("%q, %d cores", strings.TrimSpace(v), runtime.NumCPU())
		}
	}
	return fmt.Sprintf("%d cores", runtime.NumCPU())
}
