package validate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	liveOnce    sync.Once
	liveMetrics Metrics
	liveErr     error
)

// live returns the /metrics of the real binary run as a cluster node
// (once per test binary).
func live(t *testing.T) Metrics {
	t.Helper()
	gw := gateway(t)
	liveOnce.Do(func() { liveMetrics, liveErr = gw.LiveMetrics(t.Context()) })
	if liveErr != nil {
		t.Fatalf("running the gateway for its /metrics: %v", liveErr)
	}
	return liveMetrics
}

// TestMonitoring: every query of deploy/monitoring's dashboard and alert
// rules parses and selects series the binary really exports.
func TestMonitoring(t *testing.T) {
	m := live(t)
	dir := filepath.Join(deployDir(t), "monitoring")
	if p := CheckMonitoring(dir, m); len(p) > 0 {
		t.Fatalf("deploy/monitoring:\n  %s", strings.Join(p, "\n  "))
	}
	dash, err := DashboardQueries(filepath.Join(dir, DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	rules, p := RuleQueries(filepath.Join(dir, AlertsFile))
	if len(p) > 0 {
		t.Fatal(p)
	}
	// What the issue asks the dashboard and the rules to cover.
	all := func(qs []Query) string {
		var b strings.Builder
		for _, q := range qs {
			b.WriteString(q.Expr + "\n")
		}
		return b.String()
	}
	for _, name := range []string{"gateway_socket_clients", "gateway_socket_rooms", "gateway_socket_deliveries_total", "gateway_http_requests_total", "gateway_bus_publish_duration_seconds_bucket", "gateway_bus_consume_lag_seconds_bucket", "gateway_bus_lag_seconds", "gateway_ready"} {
		if !strings.Contains(all(dash), name) {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
	for _, name := range []string{"gateway_ready", "gateway_bus_lag_seconds", `code=~"5.."`, `outcome="unsafe"`} {
		if !strings.Contains(all(rules), name) {
			t.Errorf("no alert rule uses %s", name)
		}
	}
}

// TestLiveMetrics: the binary's answer holds the Redis-only and the
// labelled series the checks rely on, histograms split into their series.
func TestLiveMetrics(t *testing.T) {
	m := live(t)
	for _, name := range []string{"gateway_bus_lag_seconds", "gateway_ready", "gateway_bus_publish_duration_seconds_bucket", "gateway_bus_publish_duration_seconds_count", "gateway_status_limited_total"} {
		if m[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if !m["gateway_flask_queue_messages_total"]["outcome"]["unsafe"] || !m["gateway_http_requests_total"]["route"]["/api/webhooks/modal"] {
		t.Errorf("labelled series missing: %v %v", m["gateway_flask_queue_messages_total"], m["gateway_http_requests_total"])
	}
	if m["gateway_bus_publish_duration_seconds_bucket"]["le"] == nil {
		t.Error("a histogram's _bucket series lacks le")
	}
}

// TestMonitoringBroken: each case of testdata/monitoring holds one defect
// that exactly one problem names.
func TestMonitoringBroken(t *testing.T) {
	m := live(t)
	cases := map[string]string{
		"unknown-metric":       `panel "p" target A: gateway_clients is not in the binary's /metrics`,
		"dashboard-bad-promql": `panel "p" target A: PromQL does not parse`,
		"unknown-label":        `gateway_http_requests_total has no label "path"`,
		"unknown-value":        `gateway_flask_queue_messages_total{outcome="unsafe_pickle"} is not a series of the binary`,
		"rule-bad-promql":      `alerts.yaml: 5:15: group "g", rule 1, "A": could not parse expression`,
		"rule-unknown-field":   `field severity not found`,
		"rule-bad-for":         `unknown unit " minutes" in duration "2 minutes"`,
		"rule-no-name":         `one of 'record' or 'alert' must be set`,
		"rule-bad-template":    `template: __alert_A`,
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "monitoring"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		dirs = append(dirs, e.Name())
		if _, ok := cases[e.Name()]; !ok {
			t.Errorf("testdata/monitoring/%s is not a case of TestMonitoringBroken", e.Name())
		}
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			if !slices.Contains(dirs, name) {
				t.Fatalf("no folder testdata/monitoring/%s", name)
			}
			p := CheckMonitoring(filepath.Join("testdata", "monitoring", name), m)
			if len(p) != 1 || !strings.Contains(p[0], want) {
				t.Fatalf("problems %q\nwant exactly one containing %q", p, want)
			}
		})
	}
}
