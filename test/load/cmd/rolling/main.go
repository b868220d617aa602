// Command rolling runs the rolling-restart scenario (internal/rolling)
// against the gateway and node socket.io (with
// @socket.io/redis-streams-adapter and connection state recovery), one
// after the other, each on its own real redis-server: 3 nodes, 3,000
// clients, 200 events/s, each node drained in turn with SIGTERM and
// started again. It prints one JSON record per server, writes them to
// results/rolling.json and, with -docs, the section between
// <!-- rolling-restart:begin --> and <!-- rolling-restart:end --> of that
// file.
//
//	go run ./cmd/rolling                        # the full run: gateway, then node
//	go run ./cmd/rolling -smoke                 # small counts, gateway and node, < 60 s
//	go run ./cmd/rolling -docs ../../docs/benchmarks.md
//	go run ./cmd/rolling -from results/rolling.json -docs ../../docs/benchmarks.md   # the section again, no run
//
// Targets are 127.0.0.1 only; every wait is bounded (-max-duration).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/meshgen/gateway/test/load/internal/peers"
	"github.com/meshgen/gateway/test/load/internal/report"
	"github.com/meshgen/gateway/test/load/internal/rolling"
)

func main() { os.Exit(run()) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+"rolling: "+format+"\n", args...)
}

func run() int {
	var (
		servers   = flag.String("servers", "gateway,node", "servers, in order: gateway, node")
		nodes     = flag.Int("nodes", 3, "processes per server, sharing one redis-server")
		clients   = flag.Int("clients", 3000, "clients, spread round-robin over the nodes")
		rooms     = flag.Int("rooms", 100, "project rooms; client i subscribes to p<i % rooms>")
		rate      = flag.Float64("rate", 200, "events per second posted by the producer, round-robin over the rooms")
		src       = flag.String("source", "webhook", "event source: webhook (signed Modal webhooks, every server) or publish (the gateway's signed /api/events)")
		drain     = flag.Duration("drain-window", 5*time.Second, "the servers' paced drain on SIGTERM (GATEWAY_DRAIN_WINDOW, the node peer's DRAIN_WINDOW_MS)")
		settle    = flag.Duration("settle", 3*time.Second, "wait before the first drain, between two, and after the last")
		window    = flag.Duration("recovery-window", 2*time.Minute, "the servers' recovery window (GATEWAY_RECOVERY_MAX_DISCONNECTION, maxDisconnectionDuration)")
		delay     = flag.Duration("reconnect-delay", time.Second, "socket.io-client's reconnectionDelay")
		delayMax  = flag.Duration("reconnect-delay-max", 5*time.Second, "socket.io-client's reconnectionDelayMax")
		srcIPs    = flag.Int("source-ips", 8, "spread clients over 127.0.0.2..(1+N) source addresses (the gateway's per-address connection share)")
		smoke     = flag.Bool("smoke", false, "small counts (300 clients, 30 rooms, 50 events/s, 1 s drains, 1 s settle); results to results-smoke/")
		strict    = flag.Bool("strict", false, "exit 1 when the gateway loses, duplicates or reorders an acknowledged event")
		docs      = flag.String("docs", "", "markdown file whose rolling-restart section is rewritten with the results (e.g. ../../docs/benchmarks.md)")
		results   = flag.String("results", "results", "results directory (rolling.json, logs/)")
		noBuild   = flag.Bool("no-build", false, "use test/load/bin/gateway as it is")
		maxDur    = flag.Duration("max-duration", 10*time.Minute, "hard bound of the whole run")
		redisBin  = flag.String("redis-server", "redis-server", "the redis-server binary")
		from      = flag.String("from", "", "write -docs from this rolling.json instead of running")
		secretArg = flag.String("secret", "rolling-bench-secret-of-at-least-32-bytes", "the servers' webhook secret (the harness signs every post)")
	)
	flag.Parse()
	if *smoke {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("clients", func() { *clients = 300 })
		def("rooms", func() { *rooms = 30 })
		def("rate", func() { *rate = 50 })
		def("drain-window", func() { *drain = time.Second })
		def("settle", func() { *settle = time.Second })
		def("reconnect-delay", func() { *delay = 200 * time.Millisecond })
		def("reconnect-delay-max", func() { *delayMax = time.Second })
		def("results", func() { *results = "results-smoke" })
	}

	if *from != "" {
		var rep rolling.Report
		b, err := os.ReadFile(*from)
		if err == nil {
			err = json.Unmarshal(b, &rep)
		}
		if err == nil && *docs != "" {
			err = rolling.WriteSection(*docs, rep)
		}
		if err != nil {
			logf("%v", err)
			return 2
		}
		return 0
	}

	moduleDir, err := os.Getwd()
	if err != nil {
		logf("%v", err)
		return 2
	}
	if _, err := os.Stat(filepath.Join(moduleDir, "internal/rolling")); err != nil {
		logf("run me in test/load (go run ./cmd/rolling)")
		return 2
	}
	repoDir := filepath.Clean(filepath.Join(moduleDir, "../.."))
	gwBin := filepath.Join(moduleDir, "bin/gateway")
	list := strings.Split(*servers, ",")
	for _, s := range list {
		switch s {
		case peers.Gateway:
			if *noBuild {
				continue
			}
			logf("go build -o %s ./cmd/gateway (in %s)", gwBin, repoDir)
			cmd := exec.Command("go", "build", "-o", gwBin, "./cmd/gateway")
			cmd.Dir = repoDir
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				logf("build gateway: %v", err)
				return 2
			}
		case peers.Node:
			if err := peers.EnsureNode(moduleDir, logf); err != nil {
				logf("%v", err)
				return 2
			}
		default:
			logf("unknown server %q (gateway, node)", s)
			return 2
		}
	}
	if err := os.MkdirAll(filepath.Join(*results, "logs"), 0o755); err != nil {
		logf("%v", err)
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), *maxDur)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	meta := report.CollectMachine(repoDir, moduleDir)
	command := "go run ./cmd/rolling " + strings.Join(os.Args[1:], " ")
	if len(os.Args) == 1 {
		command = "go run ./cmd/rolling"
	}
	out := rolling.Report{Command: command, Machine: meta, Started: time.Now().UTC().Format(time.RFC3339)}
	enc := json.NewEncoder(os.Stdout)
	code := 0
	for _, s := range list {
		cfg := rolling.Config{
			Server: s, RedisBin: *redisBin,
			Env:   peers.Env{ModuleDir: moduleDir, GatewayBin: gwBin, Secret: *secretArg, LogDir: filepath.Join(*results, "logs")},
			Nodes: *nodes, Clients: *clients, Rooms: *rooms, Rate: *rate, Source: *src,
			DrainWindow: *drain, Settle: *settle, RecoveryWindow: *window,
			ReconnectDelay: *delay, ReconnectDelayMax: *delayMax, SourceIPs: *srcIPs,
			Logf: logf,
		}
		logf("%s: %d nodes, %d clients over %d rooms, %.0f events/s (%s), drain window %s", s, *nodes, *clients, *rooms, *rate, *src, *drain)
		res, err := rolling.Run(ctx, cfg)
		runtime.GC()
		if err != nil {
			logf("%s: %v", s, err)
			code = 2
		}
		_ = enc.Encode(res)
		logf("%s: acknowledged %d/%d posts; lost %d (%d clients), duplicates %d, out of order %d; reconnects %d: recovered %d, not recovered %d; failed connects %d, gave up %d",
			s, res.Acknowledged, res.Posted, res.Lost.Total, res.Lost.ClientsWith, res.Duplicates.Total, res.OutOfOrder.Total,
			res.Reconnects.Total, res.Recovered.Total, res.NotRecovered.Total, res.FailedDials.Total, res.GaveUp)
		for _, e := range res.ErrorSamples {
			logf("  %s", e)
		}
		if *strict && s == peers.Gateway && !res.OK {
			code = max(code, 1)
		}
		out.Runs = append(out.Runs, res)
		if ctx.Err() != nil {
			break
		}
	}
	out.Finished = time.Now().UTC().Format(time.RFC3339)
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := os.WriteFile(filepath.Join(*results, "rolling.json"), append(b, '\n'), 0o644); err != nil {
		logf("%v", err)
		return 2
	}
	if *docs != "" {
		if err := rolling.WriteSection(*docs, out); err != nil {
			logf("%v", err)
			return 2
		}
		logf("wrote the rolling-restart section of %s", *docs)
	}
	return code
}
