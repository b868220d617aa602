// Package health answers the liveness and readiness probes.
//
// Liveness (/livez, alias /healthz) fails only when the process is wedged:
// it depends on nothing external. Readiness (/readyz) fails fast: while the
// node drains, or when any registered check (a dependency, the bus
// consumer) reports a problem. Each answer names the failing check, so a
// probe that is red says why.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

// Probe paths.
const (
	LivePath    = "/livez"
	HealthzPath = "/healthz"
	ReadyPath   = "/readyz"
)

// ErrDraining is reported by readiness while the node shuts down.
var ErrDraining = errors.New("health: draining")

// Check reports a problem with one dependency, or nil.
type Check func(ctx context.Context) error

// Checker holds the readiness checks and the draining flag. The zero value
// is ready with no checks.
type Checker struct {
	mu       sync.RWMutex
	checks   map[string]Check
	draining atomic.Bool
	// Timeout bounds each check. Zero means 2s.
	Timeout time.Duration
}

// Add registers a readiness check under name.
func (c *Checker) Add(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == nil {
		c.checks = make(map[string]Check)
	}
	c.checks[name] = check
}

// Drain makes readiness fail from now on.
func (c *Checker) Drain() { c.draining.Store(true) }

// Draining reports whether Drain was called.
func (c *Checker) Draining() bool { return c.draining.Load() }

// Ready runs every check and returns the failures by name.
func (c *Checker) Ready(ctx context.Context) map[string]string {
	failures := map[string]string{}
	if c.Draining() {
		failures["draining"] = ErrDraining.Error()
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	c.mu.RLock()
	names := make([]string, 0, len(c.checks))
	for name := range c.checks {
		names = append(names, name)
	}
	c.mu.RUnlock()
	sort.Strings(names)
	for _, name := range names {
		c.mu.RLock()
		check := c.checks[name]
		c.mu.RUnlock()
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := check(cctx)
		cancel()
		if err != nil {
			failures[name] = err.Error()
		}
	}
	return failures
}

// Register adds the probe routes to e.
func (c *Checker) Register(e *echo.Echo) {
	live := echo.WrapHandler(http.HandlerFunc(c.live))
	e.GET(LivePath, live)
	e.GET(HealthzPath, live)
	e.GET(ReadyPath, echo.WrapHandler(http.HandlerFunc(c.ready)))
}

// HandleProbes adds the probe routes to mux: the same answers as
// Register's, for a listener of their own (the metrics port), where a
// flood of the public port cannot starve them.
func (c *Checker) HandleProbes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+LivePath, c.live)
	mux.HandleFunc("GET "+HealthzPath, c.live)
	mux.HandleFunc("GET "+ReadyPath, c.ready)
}

func (c *Checker) live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (c *Checker) ready(w http.ResponseWriter, r *http.Request) {
	failures := c.Ready(r.Context())
	if len(failures) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "failures": failures})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
