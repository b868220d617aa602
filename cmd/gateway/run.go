package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/meshgen/gateway/app"
	"github.com/meshgen/gateway/cli"
	"github.com/meshgen/gateway/config"
	"github.com/meshgen/gateway/gctune"
)

// Exit statuses.
const (
	exitOK      = cli.ExitOK
	exitFailure = cli.ExitFailure
	exitConfig  = cli.ExitUsage
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// run is main without the process: it runs the command line (package cli;
// `gateway serve` is the default) and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Execute(ctx, args, cli.Options{
		Version: version, Commit: commit, Stdout: stdout, Stderr: stderr,
		Serve: func(ctx context.Context, cfg config.Config) int { return serve(ctx, cfg, stderr) },
	})
}

// serve runs the gateway with cfg until ctx ends.
func serve(ctx context.Context, cfg config.Config, stderr io.Writer) int {
	log := newLogger(cfg, stderr).With(slog.String("version", version))
	if l := softMemoryLimit(cfg.MemoryLimit, os.Getenv("GOMEMLIMIT")); l > 0 {
		debug.SetMemoryLimit(l)
		log.Info("Go runtime soft memory limit set", slog.Int64("bytes", l), slog.Int64("memory_limit", cfg.MemoryLimit))
	}
	if gctune.Active(os.Getenv("GOGC"), cfg.GCMinPercent) {
		go gctune.Run(ctx, gctune.Options{Floor: cfg.GCMinPercent})
		log.Info("GC percentage follows the allocation rate", slog.Int("min_percent", cfg.GCMinPercent), slog.Int("max_percent", 100))
	}
	a, err := app.New(cfg, log, version)
	if err != nil {
		log.Error("start-up failed", slog.String("error", err.Error()))
		return exitFailure
	}
	if err := a.Run(ctx); err != nil {
		log.Error("gateway stopped with an error", slog.String("error", err.Error()))
		return exitFailure
	}
	return exitOK
}

// newLogger builds the process logger: JSON in production, text in
// development, unless log-format says otherwise.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if cfg.Development() {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// softMemoryLimit is the Go runtime's soft memory limit for a container
// limit of limit bytes (config memory-limit): 90% of it, the rest left to
// what the runtime does not count (the binary's own pages among them). 0
// when there is no limit or GOMEMLIMIT is set (the runtime applied it).
func softMemoryLimit(limit int64, gomemlimit string) int64 {
	if limit <= 0 || gomemlimit != "" {
		return 0
	}
	return limit / 10 * 9
}
