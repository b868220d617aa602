package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
)

// scrape returns the /metrics text of m.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	e := echo.New()
	m.Register(e)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics = %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("no line %q in /metrics", l)
		}
	}
}

type publisherFunc func(context.Context, event.Event) error

func (f publisherFunc) Publish(ctx context.Context, e event.Event) error { return f(ctx, e) }

func TestCounters(t *testing.T) {
	m := New()
	m.ClientEvent("subscribe_project")
	m.ClientEvent("subscribe_project")
	m.Emitted("log_line")
	m.Delivered(3)
	m.Delivered(0)
	m.Disconnected("ping timeout")
	m.RedisReconnected()
	now := time.Now()
	m.Consumed(event.Event{PublishedAt: now.Add(-time.Millisecond), ReceivedAt: now.Add(-2 * time.Millisecond)}, now)
	m.Consumed(event.Event{PublishedAt: now}, now) // not from a webhook
	m.GaugeVec("gateway_test_gauge", "test", "kind", func() map[string]float64 { return map[string]float64{"a": 2} })
	m.CounterVec("gateway_test_total", "test", "outcome", func() map[string]float64 { return map[string]float64{"ok": 5} })

	results := []error{nil, bus.ErrDuplicate, &bus.UnavailableError{Err: errors.New("down")}, errors.New("boom")}
	i := 0
	pub := m.Publisher(publisherFunc(func(context.Context, event.Event) error { i++; return results[i-1] }))
	for range results {
		_ = pub.Publish(context.Background(), event.Event{})
	}

	wantLines(t, scrape(t, m),
		`gateway_socket_client_events_received_total{event="subscribe_project"} 2`,
		`gateway_socket_events_emitted_total{event="log_line"} 1`,
		`gateway_socket_deliveries_total 3`,
		`gateway_socket_disconnects_total{reason="ping timeout"} 1`,
		`gateway_redis_reconnects_total 1`,
		`gateway_bus_consume_lag_seconds_count 2`,
		`gateway_webhook_to_emit_seconds_count 1`,
		`gateway_test_gauge{kind="a"} 2`,
		`gateway_test_total{outcome="ok"} 5`,
		`gateway_bus_publish_duration_seconds_count{outcome="ok"} 1`,
		`gateway_bus_publish_duration_seconds_count{outcome="duplicate"} 1`,
		`gateway_bus_publish_duration_seconds_count{outcome="unavailable"} 1`,
		`gateway_bus_publish_duration_seconds_count{outcome="error"} 1`,
	)
}

func TestHTTPMiddlewareCountsProducerRoutesOnly(t *testing.T) {
	m := New()
	e := echo.New()
	e.Use(m.HTTPMiddleware("/api/x"))
	e.POST("/api/x", func(c echo.Context) error {
		switch c.QueryParam("answer") {
		case "400":
			return echo.NewHTTPError(400, "bad")
		case "boom":
			return errors.New("boom")
		}
		return c.NoContent(200)
	})
	e.GET("/other", func(c echo.Context) error { return c.NoContent(200) })
	for _, target := range []string{"/api/x", "/api/x?answer=400", "/api/x?answer=400", "/api/x?answer=boom"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, target, nil))
	}
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/other", nil))
	text := scrape(t, m)
	wantLines(t, text,
		`gateway_http_requests_total{code="200",route="/api/x"} 1`,
		`gateway_http_requests_total{code="400",route="/api/x"} 2`,
		`gateway_http_requests_total{code="500",route="/api/x"} 1`,
	)
	if strings.Contains(text, `route="/other"`) {
		t.Fatal("a route outside the list was counted")
	}
}

// A nil *Metrics is usable: every method does nothing.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.ClientEvent("x")
	m.Emitted("x")
	m.Delivered(1)
	m.Disconnected("x")
	m.RedisReconnected()
	m.Consumed(event.Event{}, time.Now())
	m.Gauge("x", "x", func() float64 { return 0 })
	m.GaugeVec("x", "x", "l", nil)
	m.CounterVec("x", "x", "l", nil)
	inner := publisherFunc(func(context.Context, event.Event) error { return nil })
	if pub := m.Publisher(inner); pub == nil {
		t.Fatal("Publisher returned nil")
	}
}
