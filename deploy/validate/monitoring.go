package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// Monitoring files under deploy/monitoring.
const (
	DashboardFile = "dashboard.json"
	AlertsFile    = "alerts.yaml"
)

// ScrapeLabels are the labels Prometheus adds to every series when it
// scrapes (ServiceMonitor target labels); a query may select on them
// although /metrics does not print them.
var ScrapeLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

// grafanaVars are the Grafana variables the dashboard's queries may use,
// replaced by a value of their kind before the query is parsed as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h")

// Metrics are the series names of a /metrics answer, each with its label
// names and the values seen of each.
type Metrics map[string]map[string]map[string]bool

// ParseMetrics reads a Prometheus text exposition. A histogram or summary
// family gives its _bucket, _sum and _count series (with le or quantile).
func ParseMetrics(text string) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m := Metrics{}
	add := func(name string, ls map[string]string) {
		if m[name] == nil {
			m[name] = map[string]map[string]bool{}
		}
		for k, v := range ls {
			if m[name][k] == nil {
				m[name][k] = map[string]bool{}
			}
			m[name][k][v] = true
		}
	}
	for name, fam := range families {
		for _, metric := range fam.GetMetric() {
			ls := map[string]string{}
			for _, l := range metric.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			add(name, ls)
			switch {
			case metric.Histogram != nil:
				add(name+"_sum", ls)
				add(name+"_count", ls)
				withLe := map[string]string{"le": "+Inf"}
				for k, v := range ls {
					withLe[k] = v
				}
				add(name+"_bucket", withLe)
			case metric.Summary != nil:
				add(name+"_sum", ls)
				add(name+"_count", ls)
			}
		}
	}
	return m, nil
}

// Query is one PromQL expression of the dashboard or the rules, and where
// it is.
type Query struct {
	Where string
	Expr  string
}

// DashboardQueries returns the expr of every panel target of a Grafana
// dashboard (rows' nested panels included).
func DashboardQueries(file string) ([]Query, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var dash struct {
		Title  string  `json:"title"`
		Panels []panel `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&dash); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	var out []Query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, Query{Where: fmt.Sprintf("%s panel %q target %s", filepath.Base(file), p.Title, t.RefID), Expr: t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no panel has a query", filepath.Base(file))
	}
	return out, nil
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// RuleQueries parses a Prometheus rule file strictly (unknown fields, bad
// durations, bad PromQL, templates that do not parse are errors) and
// returns every rule's expr.
func RuleQueries(file string) ([]Query, Problems) {
	groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	var p Problems
	for _, err := range errs { // the parser names the file itself, and may say one thing twice
		if msg := err.Error(); !containsString(p, msg) {
			p = append(p, msg)
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	var out []Query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			out = append(out, Query{Where: fmt.Sprintf("%s group %s rule %s", filepath.Base(file), g.Name, name), Expr: r.Expr})
		}
	}
	if len(out) == 0 {
		return nil, Problems{filepath.Base(file) + ": no rule"}
	}
	return out, nil
}

// CheckQueries parses each query and checks that every series it selects
// is in m, with every label it matches on (scrape labels aside) and, for an
// equality matcher, the value.
func CheckQueries(queries []Query, m Metrics) Problems {
	var p Problems
	pp := parser.NewParser(parser.Options{})
	for _, q := range queries {
		expr, err := pp.ParseExpr(grafanaVars.Replace(q.Expr))
		if err != nil {
			p = append(p, fmt.Sprintf("%s: PromQL does not parse: %v", q.Where, err))
			continue
		}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			series, known := m[vs.Name]
			if !known {
				p = append(p, fmt.Sprintf("%s: %s is not in the binary's /metrics", q.Where, vs.Name))
				return nil
			}
			for _, lm := range vs.LabelMatchers {
				if lm.Name == labels.MetricName || containsString(ScrapeLabels, lm.Name) {
					continue
				}
				values, has := series[lm.Name]
				switch {
				case !has:
					p = append(p, fmt.Sprintf("%s: %s has no label %q", q.Where, vs.Name, lm.Name))
				case lm.Type == labels.MatchEqual && !values[lm.Value]:
					p = append(p, fmt.Sprintf("%s: %s{%s=%q} is not a series of the binary (values: %s)", q.Where, vs.Name, lm.Name, lm.Value, strings.Join(sortedSet(values), ", ")))
				}
			}
			return nil
		})
	}
	return p
}

// CheckMonitoring checks the dashboard and the rule file in dir against m.
func CheckMonitoring(dir string, m Metrics) Problems {
	var p Problems
	var queries []Query
	if _, err := os.Stat(filepath.Join(dir, DashboardFile)); err == nil {
		q, err := DashboardQueries(filepath.Join(dir, DashboardFile))
		if err != nil {
			p = append(p, err.Error())
		}
		queries = append(queries, q...)
	}
	if _, err := os.Stat(filepath.Join(dir, AlertsFile)); err == nil {
		q, problems := RuleQueries(filepath.Join(dir, AlertsFile))
		p = append(p, problems...)
		queries = append(queries, q...)
	}
	return append(p, CheckQueries(queries, m)...)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedSet(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, strconv.Quote(k))
	}
	sort.Strings(out)
	return out
}

// LiveMetrics runs the binary as a node of a cluster (a real redis-server
// on a free loopback port, so the Redis-only metrics exist; a status token,
// so the status page's do), drives one signed-off development webhook and
// one Socket.IO session (connect, subscribe_project, disconnect) through it
// so that the labelled counters have series, and returns its /metrics.
func (g *Gateway) LiveMetrics(ctx context.Context) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	redisPort, err := freePort()
	if err != nil {
		return nil, err
	}
	redis := exec.CommandContext(ctx, "redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", os.TempDir())
	if err := redis.Start(); err != nil {
		return nil, fmt.Errorf("redis-server (apt-get install redis-server): %w", err)
	}
	defer func() { _ = redis.Process.Kill(); _ = redis.Wait() }()

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	gw := exec.CommandContext(ctx, g.Bin)
	var logs bytes.Buffer
	gw.Stdout, gw.Stderr = &logs, &logs
	gw.Env = []string{"PATH=" + os.Getenv("PATH"), "GATEWAY_ENV=development", "GATEWAY_HOST=127.0.0.1", "PORT=" + strconv.Itoa(port),
		"REDIS_URL=redis://127.0.0.1:" + strconv.Itoa(redisPort) + "/0", "GATEWAY_STATUS_TOKEN=deploy-check-status-token",
		"GATEWAY_LOG_LEVEL=warn", "GATEWAY_DRAIN_WINDOW=0s"}
	if err := gw.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", g.Bin, err)
	}
	defer func() { _ = gw.Process.Signal(syscall.SIGTERM); _ = gw.Wait() }()
	fail := func(err error) (Metrics, error) { return nil, fmt.Errorf("%w\n%s", err, logs.String()) }

	if err := poll(ctx, func() bool {
		code, _, _ := httpDo(ctx, http.MethodGet, base+"/readyz", "")
		return code == http.StatusOK
	}); err != nil {
		return fail(fmt.Errorf("the gateway did not become ready: %w", err))
	}
	if code, body, err := httpDo(ctx, http.MethodPost, base+"/api/webhooks/modal", `{"job_id":"deploy-check","status":"completed","project_id":"1"}`); err != nil || code != http.StatusOK {
		return fail(fmt.Errorf("webhook: %d %s %v", code, body, err))
	}
	if err := socketSession(ctx, base); err != nil {
		return fail(err)
	}
	var text string
	err = poll(ctx, func() bool {
		_, body, err := httpDo(ctx, http.MethodGet, base+"/metrics", "")
		text = body
		return err == nil && strings.Contains(body, "gateway_socket_events_emitted_total{") && strings.Contains(body, "gateway_socket_disconnects_total{")
	})
	if err != nil {
		return fail(fmt.Errorf("/metrics never showed the session's counters: %w", err))
	}
	return ParseMetrics(text)
}

// socketSession is one Socket.IO session over Engine.IO long-polling:
// connect, subscribe_project, disconnect.
func socketSession(ctx context.Context, base string) error {
	code, body, err := httpDo(ctx, http.MethodGet, base+"/socket.io/?EIO=4&transport=polling", "")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "0") {
		return fmt.Errorf("socket.io handshake: %d %q %v", code, body, err)
	}
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil {
		return fmt.Errorf("socket.io handshake %q: %w", body, err)
	}
	url := base + "/socket.io/?EIO=4&transport=polling&sid=" + open.SID
	for _, packet := range []string{"40", `42["subscribe_project",{"project_id":"1"}]`, "41"} {
		if packet != "40" {
			if code, body, err := httpDo(ctx, http.MethodGet, url, ""); err != nil || code != http.StatusOK {
				return fmt.Errorf("socket.io poll: %d %q %v", code, body, err)
			}
		}
		if code, body, err := httpDo(ctx, http.MethodPost, url, packet); err != nil || code != http.StatusOK {
			return fmt.Errorf("socket.io send %s: %d %q %v", packet, code, body, err)
		}
	}
	return nil
}

func httpDo(ctx context.Context, method, url, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		if strings.HasPrefix(body, "{") {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	return res.StatusCode, string(b), err
}

// poll calls cond every 50 ms until it holds, for at most 15 s.
func poll(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out after 15 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
