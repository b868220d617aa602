package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshgen/gateway/config"
)

func TestRunExitStatuses(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"version", nil, []string{"--version"}, exitOK, "gateway dev (commit unknown)", ""},
		{"help lists every key", nil, []string{"--help"}, exitOK, "--events-max-body-bytes", ""},
		{"valid configuration", map[string]string{"GATEWAY_ENV": "development"}, []string{"--check-config"}, exitOK, "configuration is valid", ""},
		{"invalid value names key, variable and value", map[string]string{"GATEWAY_ENV": "development", "PORT": "abc"}, []string{"--check-config"}, exitConfig, "", `port (PORT) = "abc": must be an integer`},
		{"production without secret", map[string]string{"GATEWAY_AUTH": "none"}, nil, exitConfig, "", "MODAL_WEBHOOK_SECRET"},
		{"unknown flag", nil, []string{"--nope"}, exitConfig, "", "unknown flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tc.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Fatalf("stdout %q, stderr %q; want %q and %q", stdout.String(), stderr.String(), tc.wantStdout, tc.wantStderr)
			}
			if tc.wantCode == exitConfig && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Fatalf("a configuration error takes one line, got %q", stderr.String())
			}
		})
	}
}

// run serves until its context ends, then shuts down cleanly: exit 0, the
// JSON log of production saying so.
func TestRunServesUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("GATEWAY_HOST", "127.0.0.1")
	t.Setenv("MODAL_WEBHOOK_SECRET", "test-secret-of-at-least-32-bytes-long")
	t.Setenv("GATEWAY_AUTH", "none")
	t.Setenv("GATEWAY_DRAIN_WINDOW", "0s")

	ctx, cancel := context.WithCancel(context.Background())
	// The buffers are read only once run has returned.
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, &stdout, &stderr) }()
	stop := func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(15 * time.Second):
			t.Fatal("run did not return after its context ended")
			return -1
		}
	}

	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/readyz"
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("not ready: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	var sawShutdown, sawNoneWarning bool
	for line := range strings.SplitSeq(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("production log line is not JSON: %q", line)
		}
		sawShutdown = sawShutdown || rec["msg"] == "shutdown complete"
		sawNoneWarning = sawNoneWarning || (rec["level"] == "WARN" && strings.Contains(rec["msg"].(string), "every client can read every project"))
	}
	if !sawShutdown || !sawNoneWarning || strings.Contains(stderr.String(), "test-secret-of-at-least-32-bytes-long") {
		t.Fatalf("log lacks the shutdown or the auth none warning, or holds the secret:\n%s", stderr.String())
	}
}

func TestNewLoggerFormats(t *testing.T) {
	for _, tc := range []struct {
		env, format string
		json        bool
	}{
		{config.EnvProduction, "auto", true},
		{config.EnvDevelopment, "auto", false},
		{config.EnvDevelopment, "json", true},
		{config.EnvProduction, "text", false},
	} {
		cfg := config.Default()
		cfg.Env, cfg.LogFormat, cfg.LogLevel = tc.env, tc.format, "warn"
		var out bytes.Buffer
		log := newLogger(cfg, &out)
		log.Info("hidden")
		log.Warn("shown")
		line := strings.TrimSpace(out.String())
		if strings.Contains(line, "hidden") || !strings.Contains(line, "shown") {
			t.Fatalf("%s/%s: level not applied: %q", tc.env, tc.format, line)
		}
		if json.Valid([]byte(line)) != tc.json {
			t.Fatalf("%s/%s: JSON = %v, want %v: %q", tc.env, tc.format, !tc.json, tc.json, line)
		}
	}
}

func TestSoftMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		limit int64
		env   string
		want  int64
	}{
		{512 << 20, "", 512 << 20 / 10 * 9},
		{512 << 20, "400MiB", 0},
		{0, "", 0},
	} {
		if got := softMemoryLimit(c.limit, c.env); got != c.want {
			t.Errorf("softMemoryLimit(%d, %q) = %d, want %d", c.limit, c.env, got, c.want)
		}
	}
}
