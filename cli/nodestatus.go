package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshgen/gateway/health"
	"github.com/meshgen/gateway/metrics"
	"github.com/meshgen/gateway/webhook"
)

// probeTimeout bounds each request of `gateway status`.
const probeTimeout = 5 * time.Second

func statusCommand(fs *pflag.FlagSet, opts Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Readiness and key figures of one or more nodes, one line each (exit 1 when any is not ready or unreadable)",
		Example: "  gateway status\n  gateway status --url http://gw-1:5000 --url http://gw-2:5000\n  gateway status --url http://gw-1:5000 --metrics-port 9090",
		Args:    cobra.NoArgs,
	}
	cmd.Flags().StringSlice("url", nil, "base URL of a node (repeat, or comma-separate; default http://127.0.0.1:<port of the configuration>)")
	cmd.Flags().Int("metrics-port", 0, "port of the nodes' metrics listener, on the same host as --url (default: the port of the configuration's metrics-addr when set, else /metrics on --url itself)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := clientConfig(fs)
		if err != nil {
			return err
		}
		metricsPort, _ := cmd.Flags().GetInt("metrics-port")
		if metricsPort == 0 {
			metricsPort = portOf(cfg.MetricsAddr)
		}
		urls, _ := cmd.Flags().GetStringSlice("url")
		if len(urls) == 0 {
			urls = []string{defaultURL(cfg)}
		}
		w := tabwriter.NewWriter(opts.Stdout, 0, 0, 2, ' ', 0)
		healthy := true
		for _, u := range urls {
			n := probeNode(cmd.Context(), strings.TrimSuffix(u, "/"), metricsPort)
			healthy = healthy && n.ready && n.err == nil
			fmt.Fprintln(w, n.line())
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if !healthy {
			return exitError{ExitFailure}
		}
		return nil
	}
	return cmd
}

// nodeFigures are what `gateway status` prints of one node.
type nodeFigures struct {
	url      string
	err      error // unreachable, or /metrics unreadable
	ready    bool
	failures map[string]string
	clients  map[string]float64
	rooms    float64
	busLag   float64
	emitted  float64
	delivers float64
	webhooks map[string]float64 // by status class
}

func (n nodeFigures) line() string {
	if n.err != nil {
		return n.url + "\tunreachable: " + n.err.Error()
	}
	ready := "ready"
	if !n.ready {
		var parts []string
		for _, k := range sortedKeys(n.failures) {
			parts = append(parts, k+" ("+n.failures[k]+")")
		}
		ready = "NOT READY: " + strings.Join(parts, ", ")
	}
	total := n.clients["websocket"] + n.clients["polling"]
	return fmt.Sprintf("%s\t%s\tclients %.0f (websocket %.0f, polling %.0f)\trooms %.0f\tbus lag %.3f s\temitted %.0f\tdeliveries %.0f\twebhooks 2xx %.0f, 4xx %.0f, 5xx %.0f",
		n.url, ready, total, n.clients["websocket"], n.clients["polling"], n.rooms, n.busLag, n.emitted, n.delivers,
		n.webhooks["2xx"], n.webhooks["4xx"], n.webhooks["5xx"])
}

// portOf is the port of a host:port listen address; 0 when there is none.
func portOf(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}

// metricsBase is where a node's /metrics is: base itself, or base's host
// on port when port is not 0 (a node with metrics-addr serves /metrics
// only there).
func metricsBase(base string, port int) (string, error) {
	if port == 0 {
		return base, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("--url %q: %w", base, err)
	}
	u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(port))
	return strings.TrimSuffix(u.String(), "/"), nil
}

// probeNode reads a node's /readyz (on base) and /metrics (on base, or on
// metricsPort of its host).
func probeNode(ctx context.Context, base string, metricsPort int) nodeFigures {
	n := nodeFigures{url: base, clients: map[string]float64{}, webhooks: map[string]float64{}}
	var ready struct {
		Status   string            `json:"status"`
		Failures map[string]string `json:"failures"`
	}
	code, body, err := fetch(ctx, base+health.ReadyPath)
	if err != nil {
		n.err = err
		return n
	}
	if err := json.Unmarshal(body, &ready); err != nil {
		n.err = fmt.Errorf("%s answered %d, not JSON", health.ReadyPath, code)
		return n
	}
	n.ready, n.failures = code == http.StatusOK, ready.Failures
	mbase, err := metricsBase(base, metricsPort)
	if err != nil {
		n.err = err
		return n
	}
	code, body, err = fetch(ctx, mbase+metrics.Path)
	switch {
	case err == nil && code == http.StatusNotFound && metricsPort == 0:
		err = fmt.Errorf("%s answered 404: a node with metrics-addr serves it on that listener only; pass --metrics-port", metrics.Path)
	case err == nil && code != http.StatusOK:
		err = fmt.Errorf("%s%s answered %d", mbase, metrics.Path, code)
	}
	if err != nil {
		n.err = err
		return n
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		n.err = fmt.Errorf("%s: %w", metrics.Path, err)
		return n
	}
	sum := func(name string, f func(*dto.Metric)) {
		if fam := families[name]; fam != nil {
			for _, m := range fam.GetMetric() {
				f(m)
			}
		}
	}
	sum("gateway_socket_clients", func(m *dto.Metric) { n.clients[label(m, "transport")] += m.GetGauge().GetValue() })
	sum("gateway_socket_rooms", func(m *dto.Metric) { n.rooms += m.GetGauge().GetValue() })
	sum("gateway_bus_lag_seconds", func(m *dto.Metric) { n.busLag += m.GetGauge().GetValue() })
	sum("gateway_socket_events_emitted_total", func(m *dto.Metric) { n.emitted += m.GetCounter().GetValue() })
	sum("gateway_socket_deliveries_total", func(m *dto.Metric) { n.delivers += m.GetCounter().GetValue() })
	sum("gateway_http_requests_total", func(m *dto.Metric) {
		if code := label(m, "code"); label(m, "route") == webhook.Path && code != "" {
			n.webhooks[code[:1]+"xx"] += m.GetCounter().GetValue()
		}
	})
	return n
}

// fetch GETs url within probeTimeout and returns the status and the body
// (at most 4 MiB: a /metrics answer).
func fetch(ctx context.Context, url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4*maxAnswerBytes))
	return res.StatusCode, body, err
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
