package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

func get(t *testing.T, e *echo.Echo, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s answered %q: %v", path, rec.Body, err)
	}
	return rec.Code, body
}

func TestProbes(t *testing.T) {
	var busErr error
	c := &Checker{Timeout: 50 * time.Millisecond}
	c.Add("bus", func(context.Context) error { return busErr })
	c.Add("slow", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	e := echo.New()
	c.Register(e)

	// A check that blocks is cut at the timeout and reported, not waited for.
	code, body := get(t, e, ReadyPath)
	if code != 503 || body["status"] != "not ready" {
		t.Fatalf("readyz = %d %v", code, body)
	}
	failures := body["failures"].(map[string]any)
	if _, ok := failures["slow"]; !ok || len(failures) != 1 {
		t.Fatalf("failures = %v, want only slow", failures)
	}

	c.Add("slow", func(context.Context) error { return nil })
	if code, body = get(t, e, ReadyPath); code != 200 || body["status"] != "ready" {
		t.Fatalf("readyz = %d %v", code, body)
	}

	busErr = errors.New("redis unreachable")
	code, body = get(t, e, ReadyPath)
	if code != 503 || body["failures"].(map[string]any)["bus"] != "redis unreachable" {
		t.Fatalf("readyz with a failing check = %d %v", code, body)
	}
	busErr = nil

	c.Drain()
	code, body = get(t, e, ReadyPath)
	if code != 503 || body["failures"].(map[string]any)["draining"] != ErrDraining.Error() || !c.Draining() {
		t.Fatalf("readyz while draining = %d %v", code, body)
	}

	// Liveness depends on nothing: not on checks, not on draining.
	for _, p := range []string{LivePath, HealthzPath} {
		if code, body := get(t, e, p); code != 200 || body["status"] != "ok" {
			t.Fatalf("%s = %d %v", p, code, body)
		}
	}
}

func TestZeroCheckerIsReady(t *testing.T) {
	var c Checker
	if f := c.Ready(context.Background()); len(f) != 0 {
		t.Fatalf("failures = %v", f)
	}
}
