package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshgen/gateway/config"
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
	a, err := New(cfg, slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()

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
	if code, _ := get("http://" + ln.Addr().String() + "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("the public port serves the profiler: %d", code)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", debugAddr, time.Second); err == nil {
		t.Fatal("the profiler still listens after shutdown")
	}
}
