package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/meshgen/gateway/app"
	"github.com/meshgen/gateway/config"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitConfig  = 2
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := config.NewFlagSet("gateway", stdout)
	cfg, err := config.Load(fs, args)
	if v, _ := fs.GetBool("version"); v {
		fmt.Fprintf(stdout, "gateway %s (commit %s)\n", version, commit)
		return exitOK
	}
	switch {
	case config.IsHelp(err):
		return exitOK
	case err != nil:
		fmt.Fprintln(stderr, "gateway: "+strings.ReplaceAll(err.Error(), "\n", " "))
		return exitConfig
	}
	if check, _ := fs.GetBool("check-config"); check {
		fmt.Fprintln(stdout, "gateway: configuration is valid")
		return exitOK
	}

	log := newLogger(cfg, stderr).With(slog.String("version", version))
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
