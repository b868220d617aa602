// Package httpapitest holds what the producer handlers' tests share: an
// Echo server with the gateway's error handler and the SignedBody
// middleware in front of one route, a request helper, a JSON comparison
// and a recording Publisher. Tests only.
package httpapitest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/httpapi"
)

// Discard is a logger that writes nothing.
var Discard = slog.New(slog.DiscardHandler)

// Server serves h on POST path behind the SignedBody middleware (cfg's
// Logger defaults to Discard) and the gateway's error handler.
func Server(t testing.TB, path string, h echo.HandlerFunc, cfg httpapi.SignedBodyConfig) *echo.Echo {
	t.Helper()
	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(Discard)
	if cfg.Logger == nil {
		cfg.Logger = Discard
	}
	e.POST(path, h, httpapi.SignedBodyWithConfig(cfg))
	return e
}

// Post sends body to path with the given headers and returns the answer.
func Post(e http.Handler, path, body string, headers map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// AssertJSON fails unless got and want are the same JSON value (key order
// and spacing aside).
func AssertJSON(t testing.TB, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("response %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad test: want %q is not JSON: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("body = %s\nwant   %s", gb, wb)
	}
}

// ErrUnavailable is a bus error that asks the sender to retry (503).
var ErrUnavailable = &bus.UnavailableError{Err: errors.New("redis down")}

// Publisher is a bus.Publisher that keeps what it was given. It validates
// each event as the buses do, refuses a dedupe key it has already seen
// with bus.ErrDuplicate, and fails with Err from the FailAt-th call
// (0-based) on when Err is set.
type Publisher struct {
	FailAt int
	Err    error

	mu     sync.Mutex
	events []event.Event
	seen   map[string]bool
	calls  int
}

// Publish implements bus.Publisher.
func (p *Publisher) Publish(_ context.Context, e event.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() { p.calls++ }()
	if p.Err != nil && p.calls >= p.FailAt {
		return p.Err
	}
	if err := e.Validate(); err != nil {
		return err
	}
	if e.DedupeKey != "" {
		if p.seen[e.DedupeKey] {
			return bus.ErrDuplicate
		}
		if p.seen == nil {
			p.seen = map[string]bool{}
		}
		p.seen[e.DedupeKey] = true
	}
	p.events = append(p.events, e)
	return nil
}

// Events returns what was published, in order.
func (p *Publisher) Events() []event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]event.Event(nil), p.events...)
}

var _ bus.Publisher = (*Publisher)(nil)

// Serve runs req through e and returns the answer.
func Serve(e http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}
