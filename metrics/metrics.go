// Package metrics defines the gateway's Prometheus metrics, served on
// /metrics. Names follow gateway_<subsystem>_<name>_<unit>; README.md
// documents each one. Methods on a nil *Metrics do nothing, so parts can be
// used without metrics (tests).
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
)

// Path serves the metrics.
const Path = "/metrics"

// Metrics holds every collector of one process.
type Metrics struct {
	reg *prometheus.Registry

	clientEvents    *prometheus.CounterVec
	emitted         *prometheus.CounterVec
	deliveries      prometheus.Counter
	disconnects     *prometheus.CounterVec
	httpRequests    *prometheus.CounterVec
	busPublish      *prometheus.HistogramVec
	busConsumeLag   prometheus.Histogram
	redisReconnects prometheus.Counter
	replicaTimeouts prometheus.Counter
	webhookToEmit   prometheus.Histogram
	authConnects    *prometheus.CounterVec
	authJoins       *prometheus.CounterVec
	authExpired     prometheus.Counter
	authBackend     *prometheus.HistogramVec
	httpRefusals    *prometheus.CounterVec
	limitHits       *prometheus.CounterVec
	logSuppressed   prometheus.Counter
	recoveries      *prometheus.CounterVec
	replayed        prometheus.Counter
	sessionErrors   *prometheus.CounterVec
	joinStates      *prometheus.CounterVec
}

// latencyBuckets span 0.5 ms to 10 s.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns the metrics, registered with a registry of their own (plus
// the Go runtime and process collectors).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		clientEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_socket_client_events_received_total", Help: "Client events received, by event name (unknown names counted as \"other\").",
		}, []string{"event"}),
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_socket_events_emitted_total", Help: "Server events emitted to rooms by this node, by event name.",
		}, []string{"event"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_socket_deliveries_total", Help: "Event deliveries to clients of this node (one per client reached).",
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_socket_disconnects_total", Help: "Clients disconnected from this node, by Socket.IO reason (transport close, ping timeout, ...).",
		}, []string{"reason"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_http_requests_total", Help: "Producer HTTP requests (webhook, publish API, job registry) by route and status code.",
		}, []string{"route", "code"}),
		busPublish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_bus_publish_duration_seconds", Help: "Time to publish one event onto the bus, by outcome (ok, duplicate, unavailable, error).", Buckets: latencyBuckets,
		}, []string{"outcome"}),
		busConsumeLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gateway_bus_consume_lag_seconds", Help: "Time from an event's publish to its consumption by this node.", Buckets: latencyBuckets,
		}),
		redisReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_redis_reconnects_total", Help: "Times this node's bus consumer got Redis back after losing it.",
		}),
		replicaTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_redis_replica_timeouts_total", Help: "Writes to Redis that fewer than redis-min-replicas replicas confirmed within redis-replica-timeout (answered 503).",
		}),
		webhookToEmit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gateway_webhook_to_emit_seconds", Help: "Time from receiving a webhook (on any node) to emitting its event on this node.", Buckets: latencyBuckets,
		}),
	}
	m.authConnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_auth_connects_total", Help: "Socket.IO connects checked by the jwt or backend policy, by outcome: ok, or the refusal's reason (missing, invalid, expired, denied, error, too_large).",
	}, []string{"outcome"})
	m.authJoins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_auth_joins_total", Help: "Joins authorized, by kind (project, batch, job) and outcome: ok, or the refusal's reason (denied, unknown, error).",
	}, []string{"kind", "outcome"})
	m.authExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_auth_expired_total", Help: "Clients closed because their credentials expired.",
	})
	m.authBackend = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gateway_auth_backend_duration_seconds", Help: "Calls to the auth backend, by call (connect, join) and outcome (ok, denied, error: a timeout, a 5xx or an unreadable answer, which refuse).", Buckets: latencyBuckets,
	}, []string{"call", "outcome"})
	m.httpRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_http_refusals_total", Help: "Producer requests refused before their handler, by route and reason (signature_missing, signature_malformed, signature_mismatch, timestamp_required, stale, replay, in_progress, too_large, slow_body).",
	}, []string{"route", "reason"})
	m.limitHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_limit_hits_total", Help: "Requests, handshakes, connections or client actions refused (or clients disconnected) by a bound, by limit (max_connections, max_connections_per_ip, idle_connections_closed, producer_concurrency, producer_concurrency_per_ip, max_clients, max_polling_sessions, handshake_rate, handshake_rate_per_ip, client_rooms, client_follows, client_event_rate, client_event_rate_disconnect, polling_buffer, polling_body, binary_packet).",
	}, []string{"limit"})
	m.logSuppressed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_log_lines_suppressed_total", Help: "Log lines a client could cause (refusals) left out past the log rate.",
	})
	m.recoveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_recoveries_total", Help: "Connection state recovery attempts (a reconnecting client sending its session id and offset), by outcome: recovered, expired (window passed, or offset trimmed from the stream), unknown (no such session, an offset the gateway did not issue, another user), too_many (more missed events than a recovery replays), unavailable (Redis could not be read, or the replay could not finish: the client retries).",
	}, []string{"outcome"})
	m.replayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_recovery_replayed_events_total", Help: "Events replayed to recovered clients.",
	})
	m.sessionErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_recovery_session_errors_total", Help: "Writes of recovery sessions that failed (Redis unreachable), by operation (save, touch, delete): the session may not be recoverable.",
	}, []string{"op"})
	m.joinStates = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_join_states_total", Help: "Current batch_status sent after joined_batch (state on join), by source: backlog (the last one delivered), registry (the counts), live (a newer one reached the client first: none sent), unavailable (the registry could not be read: none sent).",
	}, []string{"source"})
	// Every outcome starts at 0, so that an alert or a rate sees the series
	// before the first one happens.
	for _, o := range []string{"recovered", "expired", "unknown", "too_many", "unavailable"} {
		m.recoveries.WithLabelValues(o)
	}
	for _, op := range []string{"save", "touch", "delete"} {
		m.sessionErrors.WithLabelValues(op)
	}
	m.reg.MustRegister(m.limitHits, m.logSuppressed, m.recoveries, m.replayed, m.sessionErrors, m.joinStates)
	m.reg.MustRegister(m.clientEvents, m.emitted, m.deliveries, m.disconnects, m.httpRequests, m.busPublish, m.busConsumeLag, m.redisReconnects, m.replicaTimeouts, m.webhookToEmit,
		m.authConnects, m.authJoins, m.authExpired, m.authBackend, m.httpRefusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Gauge registers a gauge whose value is read from f at scrape time.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// GaugeVec registers a labelled gauge whose values are read from f at
// scrape time (label value -> value).
func (m *Metrics) GaugeVec(name, help, label string, f func() map[string]float64) {
	m.funcVec(name, help, label, prometheus.GaugeValue, f)
}

// CounterVec registers a labelled counter whose values are read from f at
// scrape time (label value -> value), for counts kept by another part
// (which must only ever grow).
func (m *Metrics) CounterVec(name, help, label string, f func() map[string]float64) {
	m.funcVec(name, help, label, prometheus.CounterValue, f)
}

func (m *Metrics) funcVec(name, help, label string, kind prometheus.ValueType, f func() map[string]float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&funcVec{desc: prometheus.NewDesc(name, help, []string{label}, nil), kind: kind, f: f})
}

type funcVec struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	f    func() map[string]float64
}

func (v *funcVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }
func (v *funcVec) Collect(ch chan<- prometheus.Metric) {
	for label, value := range v.f() {
		ch <- prometheus.MustNewConstMetric(v.desc, v.kind, value, label)
	}
}

// Totals are running totals of this node, read by the status page to draw
// rates.
type Totals struct {
	// Emitted and Deliveries are gateway_socket_events_emitted_total (all
	// events) and gateway_socket_deliveries_total.
	Emitted, Deliveries float64
	// Requests is gateway_http_requests_total by route, then code.
	Requests map[string]map[string]float64
	// Publishes and PublishSeconds are the count and sum of
	// gateway_bus_publish_duration_seconds, all outcomes.
	Publishes, PublishSeconds float64
}

// Totals reads the running totals now; zero on a nil *Metrics.
func (m *Metrics) Totals() Totals {
	t := Totals{Requests: map[string]map[string]float64{}}
	if m == nil {
		return t
	}
	each(m.emitted, func(d *dto.Metric) { t.Emitted += d.GetCounter().GetValue() })
	each(m.deliveries, func(d *dto.Metric) { t.Deliveries += d.GetCounter().GetValue() })
	each(m.busPublish, func(d *dto.Metric) {
		t.Publishes += float64(d.GetHistogram().GetSampleCount())
		t.PublishSeconds += d.GetHistogram().GetSampleSum()
	})
	each(m.httpRequests, func(d *dto.Metric) {
		var route, code string
		for _, l := range d.GetLabel() {
			switch l.GetName() {
			case "route":
				route = l.GetValue()
			case "code":
				code = l.GetValue()
			}
		}
		if t.Requests[route] == nil {
			t.Requests[route] = map[string]float64{}
		}
		t.Requests[route][code] += d.GetCounter().GetValue()
	})
	return t
}

// each calls f with every metric c collects now.
func each(c prometheus.Collector, f func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for pm := range ch {
		var d dto.Metric
		if pm.Write(&d) == nil {
			f(&d)
		}
	}
}

// Register serves /metrics on e.
func (m *Metrics) Register(e *echo.Echo) { e.GET(Path, echo.WrapHandler(m.Handler())) }

// Handler serves the metrics (on metrics-addr, its own listener).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ClientEvent counts one client event.
func (m *Metrics) ClientEvent(name string) {
	if m != nil {
		m.clientEvents.WithLabelValues(name).Inc()
	}
}

// Emitted counts one event emitted to rooms (or to everyone) of this node,
// from the bus or the Flask queue.
func (m *Metrics) Emitted(name string) {
	if m != nil {
		m.emitted.WithLabelValues(name).Inc()
	}
}

// Delivered counts n deliveries: an emitted event written to n clients.
func (m *Metrics) Delivered(n int) {
	if m != nil && n > 0 {
		m.deliveries.Add(float64(n))
	}
}

// Disconnected counts one client disconnect. reason is the library's
// Socket.IO reason, a short fixed set ("transport close", "ping timeout",
// "server shutting down", ...).
func (m *Metrics) Disconnected(reason string) {
	if m != nil {
		m.disconnects.WithLabelValues(reason).Inc()
	}
}

// Consumed records a consumed event's lag since its publish and, for
// events that came from a webhook, the time since its receipt.
func (m *Metrics) Consumed(e event.Event, now time.Time) {
	if m == nil {
		return
	}
	if !e.PublishedAt.IsZero() {
		m.busConsumeLag.Observe(max(0, now.Sub(e.PublishedAt).Seconds()))
	}
	if !e.ReceivedAt.IsZero() {
		m.webhookToEmit.Observe(max(0, now.Sub(e.ReceivedAt).Seconds()))
	}
}

// AuthConnect counts one connect checked by a jwt or backend policy:
// outcome is "ok" or the refusal's reason.
func (m *Metrics) AuthConnect(outcome string) {
	if m != nil {
		m.authConnects.WithLabelValues(outcome).Inc()
	}
}

// AuthJoin counts one authorized join of kind: outcome is "ok" or the
// refusal's reason.
func (m *Metrics) AuthJoin(kind, outcome string) {
	if m != nil {
		m.authJoins.WithLabelValues(kind, outcome).Inc()
	}
}

// AuthExpired counts one client closed at its credentials' expiry.
func (m *Metrics) AuthExpired() {
	if m != nil {
		m.authExpired.Inc()
	}
}

// AuthBackendCall records one call to the auth backend.
func (m *Metrics) AuthBackendCall(call, outcome string, d time.Duration) {
	if m != nil {
		m.authBackend.WithLabelValues(call, outcome).Observe(d.Seconds())
	}
}

// HTTPRefused counts one producer request refused before its handler.
func (m *Metrics) HTTPRefused(route, reason string) {
	if m != nil {
		m.httpRefusals.WithLabelValues(route, reason).Inc()
	}
}

// LimitHit counts one refusal (or disconnect) by the named bound.
func (m *Metrics) LimitHit(limit string) {
	if m != nil {
		m.limitHits.WithLabelValues(limit).Inc()
	}
}

// Recovery counts one recovery attempt by outcome.
func (m *Metrics) Recovery(outcome string) {
	if m != nil {
		m.recoveries.WithLabelValues(outcome).Inc()
	}
}

// Replayed counts events replayed to a recovered client.
func (m *Metrics) Replayed(n int) {
	if m != nil {
		m.replayed.Add(float64(n))
	}
}

// SessionError counts one failed write of a recovery session.
func (m *Metrics) SessionError(op string) {
	if m != nil {
		m.sessionErrors.WithLabelValues(op).Inc()
	}
}

// JoinState counts one state-on-join decision by source.
func (m *Metrics) JoinState(source string) {
	if m != nil {
		m.joinStates.WithLabelValues(source).Inc()
	}
}

// LogSuppressed counts one log line left out past the log rate.
func (m *Metrics) LogSuppressed() {
	if m != nil {
		m.logSuppressed.Inc()
	}
}

// ReplicaTimeout counts a write the Redis replicas did not confirm in time
// (bus.RedisOptions.OnReplicaTimeout).
func (m *Metrics) ReplicaTimeout() {
	if m != nil {
		m.replicaTimeouts.Inc()
	}
}

// RedisReconnected counts one recovery of the bus consumer.
func (m *Metrics) RedisReconnected() {
	if m != nil {
		m.redisReconnects.Inc()
	}
}

// HTTPMiddleware counts producer requests by route and status code.
func (m *Metrics) HTTPMiddleware(routes ...string) echo.MiddlewareFunc {
	known := map[string]bool{}
	for _, r := range routes {
		known[r] = true
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			if m == nil || !known[c.Path()] {
				return err
			}
			code := c.Response().Status
			var he *echo.HTTPError
			if err != nil {
				code = http.StatusInternalServerError
				if errors.As(err, &he) {
					code = he.Code
				}
			}
			m.httpRequests.WithLabelValues(c.Path(), strconv.Itoa(code)).Inc()
			return err
		}
	}
}

// Publisher wraps pub, timing every publish by outcome.
func (m *Metrics) Publisher(pub bus.Publisher) bus.Publisher {
	if m == nil {
		return pub
	}
	return &timedPublisher{pub: pub, h: m.busPublish}
}

type timedPublisher struct {
	pub bus.Publisher
	h   *prometheus.HistogramVec
}

func (t *timedPublisher) Publish(ctx context.Context, e event.Event) error {
	start := time.Now()
	err := t.pub.Publish(ctx, e)
	t.h.WithLabelValues(outcome(err)).Observe(time.Since(start).Seconds())
	return err
}

// outcome classifies a publish result for the publish histogram.
func outcome(err error) string {
	var unavailable *bus.UnavailableError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, bus.ErrDuplicate):
		return "duplicate"
	case errors.As(err, &unavailable):
		return "unavailable"
	default:
		return "error"
	}
}
