package soak

import (
	"bufio"
	"context"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meshgen/gateway/test/load/internal/procstat"
)

// F is a figure that may be unknown (NaN), written as null in JSON.
type F float64

// MarshalJSON writes null for NaN and infinities.
func (f F) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', 6, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (f *F) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = F(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*f = F(v)
	return err
}

// NodeSample is one reading of one gateway node.
type NodeSample struct {
	RSSMB      F `json:"rss_mb"`
	FDs        F `json:"fds"`        // entries of /proc/<pid>/fd
	Goroutines F `json:"goroutines"` // go_goroutines of /metrics
	OpenFDs    F `json:"open_fds"`   // process_open_fds of /metrics
	Clients    F `json:"clients"`    // sum of gateway_socket_clients
	Reconnects F `json:"redis_reconnects"`
	Ready      F `json:"ready"`
	// BusDuplicates counts publishes the bus refused as duplicates
	// (gateway_bus_publish_duration_seconds{outcome="duplicate"}).
	BusDuplicates F `json:"bus_duplicates"`
	CPUSeconds    F `json:"cpu_seconds"`
}

// Sample is one reading of the whole soak, every interval.
type Sample struct {
	T           float64      `json:"t"` // seconds since the traffic began
	Nodes       []NodeSample `json:"nodes"`
	RedisMemMB  F            `json:"redis_used_memory_mb"`
	RedisKeys   F            `json:"redis_keys"`
	P99MS       F            `json:"p99_ms"`      // deliveries received in the interval
	Deliveries  int64        `json:"deliveries"`  // in the interval
	Acked       int64        `json:"acked_total"` // events acknowledged so far
	Sessions    int          `json:"open_sessions"`
	GenRSSMB    F            `json:"generator_rss_mb"`
	OtherCPUPct F            `json:"other_cpu_percent"`
	RedisUp     bool         `json:"redis_up"`
}

// scrape reads the named series of a Prometheus text answer (summing
// every label set of a name).
func scrape(ctx context.Context, c *http.Client, url string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body, names...)
}

// parseMetrics sums the series named in names; a name written
// `name|label="value"` sums only the series of name carrying that label.
func parseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	labelled := map[string][]string{} // name -> its "name|label" keys
	for _, n := range names {
		if base, _, ok := strings.Cut(n, "|"); ok {
			labelled[base] = append(labelled[base], n)
			continue
		}
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		keys := labelled[name]
		if !want[name] && len(keys) == 0 {
			continue
		}
		rest := line[len(name):]
		if strings.HasPrefix(rest, "{") {
			rest = rest[strings.LastIndexByte(rest, '}')+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || math.IsNaN(v) {
			continue
		}
		if want[name] {
			out[name] += v
		}
		for _, k := range keys {
			_, label, _ := strings.Cut(k, "|")
			if strings.Contains(line[len(name):len(line)-len(rest)], label) {
				out[k] += v
			}
		}
	}
	return out, sc.Err()
}

func countFDs(pid int) float64 {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return math.NaN()
	}
	return float64(len(ents))
}

const busDup = `gateway_bus_publish_duration_seconds_count|outcome="duplicate"`

func readNode(ctx context.Context, c *http.Client, url string, pid int) NodeSample {
	nan := F(math.NaN())
	n := NodeSample{RSSMB: nan, FDs: F(countFDs(pid)), Goroutines: nan, OpenFDs: nan, Clients: nan, Reconnects: nan, Ready: nan, BusDuplicates: nan}
	if ps, err := procstat.Read(pid); err == nil {
		n.RSSMB = F(float64(ps.RSS) / (1 << 20))
		n.CPUSeconds = F(ps.CPU.Seconds())
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := scrape(cctx, c, url+"/metrics", "go_goroutines", "process_open_fds", "gateway_socket_clients",
		"gateway_redis_reconnects_total", "gateway_ready", busDup)
	if err == nil {
		n.Goroutines = F(m["go_goroutines"])
		n.OpenFDs = F(m["process_open_fds"])
		n.Clients = F(m["gateway_socket_clients"])
		n.Reconnects = F(m["gateway_redis_reconnects_total"])
		n.Ready = F(m["gateway_ready"])
		n.BusDuplicates = F(m[busDup])
	}
	return n
}
