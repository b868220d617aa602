package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgen/gateway/config"
	"github.com/meshgen/gateway/metrics"
)

func TestDebugAddrServesProfilerOnItsOwnListener(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := probe.Addr().String()
	_ = probe.Close()

	cfg := config.Default()
	cfg.Env = config.EnvDevelopment
	cfg.DebugAddr = debugAddr
	cfg.DrainWindow = 0
	_, addr, stop := servingApp(t, cfg, slog.New(slog.DiscardHandler))

	get := func(url string) (int, string) {
		t.Helper()
		for range 50 {
			resp, err := http.Get(url)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			return resp.StatusCode, string(body)
		}
		t.Fatalf("GET %s: never answered", url)
		return 0, ""
	}
	if code, body := get("http://" + debugAddr + "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("debug listener: %d %q", code, body)
	}
	if code, _ := get("http://" + addr + "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("the public port serves the profiler: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", debugAddr, time.Second); err == nil {
		t.Fatal("the profiler still listens after shutdown")
	}
}

// The HTTP server's own messages (accept errors, TLS failures) and
// go-redis's reach the structured log as JSON, not stderr as plain text.
func TestLibraryLogsAreStructured(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	a, _, _ := servingApp(t, devConfig(), log)
	// Echo configures the server under its startup lock, which
	// ListenerAddr takes: reading ErrorLog after it is ordered.
	_ = a.echo.ListenerAddr()
	if a.echo.Server.ErrorLog == nil {
		t.Fatal("the server runs without an ErrorLog")
	}
	a.echo.Server.ErrorLog.Printf("http: Accept error: %v; retrying in 5ms", "accept4: too many open files")
	redisLogger{log.With(slog.String("component", "redis"))}.Printf(context.Background(), "redis: %s", "connection pool: failed to dial")
	var seen []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a log line that is not JSON: %q", line)
		}
		seen = append(seen, m)
	}
	find := func(prefix string) map[string]any {
		for _, m := range seen {
			if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
				return m
			}
		}
		t.Fatalf("no %q line in %s", prefix, buf.String())
		return nil
	}
	if m := find("http: Accept error"); m["level"] != "WARN" {
		t.Errorf("server error log at %v, want WARN", m["level"])
	}
	if m := find("redis: connection pool"); m["component"] != "redis" {
		t.Errorf("go-redis line %v, want component redis", m)
	}
}

// syncBuffer is a bytes.Buffer safe for the log's writers and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLive waits until addr answers /livez.
func waitLive(t *testing.T, addr string) {
	t.Helper()
	for range 200 {
		if resp, err := http.Get("http://" + addr + "/livez"); err == nil {
			_ = resp.Body.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the app never answered /livez")
}

// recovery-max-disconnection 0 turns recovery off; any other window turns
// it on, with sessions in memory on the in-process bus.
func TestRecoveryOptionsWindow(t *testing.T) {
	cfg := devConfig()
	cfg.RecoveryMaxDisconnection = 0
	if opts := recoveryOptions(cfg, nil, metrics.New()); opts.Window != 0 || opts.Store != nil {
		t.Fatalf("window 0: %+v, want recovery off", opts)
	}
	cfg.RecoveryMaxDisconnection = time.Minute
	if opts := recoveryOptions(cfg, nil, metrics.New()); opts.Window != time.Minute || opts.Store == nil {
		t.Fatalf("window 1m: %+v, want recovery on with a store", opts)
	}
}
