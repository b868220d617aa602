package app

import (
	"context"
	"log/slog"
	"strings"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/gateway"
	"github.com/meshgen/gateway/health"
	"github.com/meshgen/gateway/metrics"
	"github.com/meshgen/gateway/status"
	"github.com/meshgen/gateway/webhook"
)

// statusProbe reads this node's state for the status page, off package
// health, gateway and metrics.
type statusProbe struct {
	health  *health.Checker
	gw      *gateway.Server // nil on a webhook-only node
	metrics *metrics.Metrics
	lag     func() float64 // bus lag in seconds; nil without Redis
}

var _ status.Probe = (*statusProbe)(nil)

func (p *statusProbe) Node(ctx context.Context) status.Node {
	failures := p.health.Ready(ctx)
	n := status.Node{Ready: len(failures) == 0, Clients: map[string]int{}}
	if len(failures) > 0 {
		n.Failures = failures
	}
	if p.gw != nil {
		n.Clients = p.gw.ClientsByTransport()
		n.Rooms, _ = p.gw.Rooms(0)
	}
	if p.lag != nil {
		n.BusLag = p.lag()
	}
	return n
}

func (p *statusProbe) Counters() status.Counters {
	t := p.metrics.Totals()
	c := status.Counters{Emitted: t.Emitted, Deliveries: t.Deliveries, Publishes: t.Publishes, PublishSeconds: t.PublishSeconds, Webhooks: map[string]float64{}}
	for code, n := range t.Requests[webhook.Path] {
		if code != "" {
			c.Webhooks[code[:1]+"xx"] += n
		}
	}
	return c
}

func (p *statusProbe) TopRooms(n int) []status.Room {
	if p.gw == nil {
		return nil
	}
	_, sizes := p.gw.Rooms(n)
	out := make([]status.Room, len(sizes))
	for i, r := range sizes {
		out[i] = status.Room{Name: r.Name, Members: r.Members}
	}
	return out
}

// newStatus builds the status page of this node, or nil when the
// configuration does not serve it (production without a token).
func (a *App) newStatus(node, version string, m *metrics.Metrics, rb *bus.Redis) *status.Server {
	cfg := a.cfg
	if !cfg.ServesStatus() {
		a.log.Info("status page off: set GATEWAY_STATUS_TOKEN to serve /status in production")
		return nil
	}
	probe := &statusProbe{health: a.health, gw: a.gw, metrics: m}
	var cluster status.Cluster
	if rb != nil {
		probe.lag = func() float64 { return rb.Lag().Seconds() }
		cluster = status.NewRedisCluster(rb.Client(), cfg.RedisStream)
	}
	s := status.New(status.Options{
		NodeID: node, Role: cfg.Role, Version: version, Token: cfg.StatusToken,
		Probe: probe, Cluster: cluster, Recent: status.NewRecent(cfg.StatusRecent, nil),
		Interval: cfg.StatusInterval, MaxStreams: cfg.StatusMaxStreams, LoginAttempts: cfg.StatusLoginAttempts,
		Logger: a.log.With(slog.String("component", "status")),
	})
	m.CounterVec("gateway_status_limited_total", "Times a bound of the status page tripped, by limit: streams (live streams per node), recent (an event pushed out of the latest-events list), login_body (login form too large), login_attempts (a login refused after too many wrong tokens).", "limit", s.Limits().Map)
	if cfg.StatusToken == "" {
		a.log.Warn("status page served WITHOUT a token (development): set GATEWAY_STATUS_TOKEN to require one")
	}
	return s
}

// isStatusPath reports whether p is a route of the status page (not
// logged per request: the page's assets and its stream).
func isStatusPath(p string) bool {
	return p == status.EventsPath || strings.HasPrefix(p, status.AssetsPath)
}
