package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// sideServer serves on a listener of its own, away from the public port:
// Go's profiler (config debug-addr) and /metrics (config metrics-addr).
type sideServer struct {
	name string
	srv  *http.Server
	ln   net.Listener
}

// listenSide binds addr for what key configures; it fails loudly rather
// than running without what was asked for.
func listenSide(key, name, addr string, h http.Handler) (*sideServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("app: listen on %s %s: %w", key, addr, err)
	}
	return &sideServer{name: name, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}, ln: ln}, nil
}

// profiler is the handler of debug-addr.
func profiler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func (d *sideServer) serve(log *slog.Logger) {
	log.Info(d.name+" listening", slog.String("addr", d.ln.Addr().String()))
	if err := d.srv.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error(d.name+" stopped", slog.String("error", err.Error()))
	}
}

// close stops the server at once: a profile being taken is cut short.
func (d *sideServer) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		_ = d.srv.Close()
	}
}
