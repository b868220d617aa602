package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meshgen/gateway/test/load/internal/stats"
)

// serverOrder is the column order of every table.
var serverOrder = []string{"gateway", "node", "flask"}

var serverTitle = map[string]string{
	"gateway": "gateway (Go)",
	"node":    "node socket.io",
	"flask":   "Flask-SocketIO",
}

// otherReports are results files of commands with their own report
// (cmd/rolling, cmd/soak), not ScenarioResults.
var otherReports = map[string]bool{"rolling.json": true, "soak.json": true}

// Load reads every results/<scenario>.json and machine.json (not those of
// otherReports).
func Load(dir string) (map[string]*ScenarioResults, *Machine, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	all := map[string]*ScenarioResults{}
	var m *Machine
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		if otherReports[filepath.Base(f)] {
			continue // written and reported by their own commands
		}
		if filepath.Base(f) == "machine.json" {
			m = &Machine{}
			if err := json.Unmarshal(b, m); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", f, err)
			}
			continue
		}
		var sr ScenarioResults
		if err := json.Unmarshal(b, &sr); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		deriveMarginalRSS(&sr)
		deriveBestPerCPU(&sr)
		all[sr.Scenario] = &sr
	}
	if len(all) == 0 {
		return nil, nil, fmt.Errorf("no results in %s", dir)
	}
	return all, m, nil
}

// deriveMarginalRSS adds rss_marginal_per_conn_kb@N (the RSS growth of a
// wave divided by its clients) from the rss_mb@N figures of results that
// predate that figure.
func deriveMarginalRSS(sr *ScenarioResults) {
	if sr.Scenario != "idle" {
		return
	}
	for _, srv := range sr.Servers {
		changed := false
		for i := range srv.Runs {
			f := srv.Runs[i].Figures
			type stage struct {
				n   float64
				rss float64
			}
			var st []stage
			for k, v := range f {
				if n, ok := strings.CutPrefix(k, "rss_mb@"); ok {
					if x, err := strconv.ParseFloat(n, 64); err == nil {
						st = append(st, stage{x, v})
					}
				}
			}
			sort.Slice(st, func(a, b int) bool { return st[a].n < st[b].n })
			for j := 1; j < len(st); j++ {
				k := "rss_marginal_per_conn_kb@" + strconv.FormatFloat(st[j].n, 'f', -1, 64)
				if _, ok := f[k]; !ok && st[j].n > st[j-1].n {
					f[k] = (st[j].rss - st[j-1].rss) * 1e6 / (st[j].n - st[j-1].n) / 1024
					changed = true
				}
			}
		}
		if changed {
			var vs = map[string][]float64{}
			for _, r := range srv.Runs {
				for k, v := range r.Figures {
					if strings.HasPrefix(k, "rss_marginal_per_conn_kb@") {
						vs[k] = append(vs[k], v)
					}
				}
			}
			for k, v := range vs {
				srv.Figures[k] = stats.SpreadOf(v)
			}
		}
	}
}

// marginalKeys are the marginal-RSS stages after the first wave (the first
// wave's growth is already rss_per_conn_kb).
func marginalKeys(all map[string]*ScenarioResults) []string {
	ks := stageKeys(all, "idle", "rss_marginal_per_conn_kb")
	first := stageKeys(all, "idle", "rss_per_conn_kb")
	if len(first) > 0 && len(ks) > 0 && at(ks[0]) == at(first[0]) {
		ks = ks[1:]
	}
	return ks
}

// deriveBestPerCPU adds best_deliveries_per_cpu_sec: per run, the best
// deliveries per server CPU-second over the steps of a stepped scenario
// (whatever their latency), for results that predate it.
func deriveBestPerCPU(sr *ScenarioResults) {
	for _, srv := range sr.Servers {
		var vs []float64
		for i := range srv.Runs {
			f := srv.Runs[i].Figures
			best, ok := 0.0, false
			for k, v := range f {
				if strings.HasPrefix(k, "deliveries_per_cpu_sec@") && v > best {
					best, ok = v, true
				}
			}
			if ok {
				f["best_deliveries_per_cpu_sec"] = best
				vs = append(vs, best)
			}
		}
		if len(vs) > 0 {
			srv.Figures["best_deliveries_per_cpu_sec"] = stats.SpreadOf(vs)
		}
	}
}

// Write renders benchmarks.md and benchmarks.png from the results in
// resultsDir into outDir.
func Write(resultsDir, outDir string) error {
	all, m, err := Load(resultsDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	servers := presentServers(all)
	md := markdown(all, m, servers)
	path := filepath.Join(outDir, "benchmarks.md")
	if old, err := os.ReadFile(path); err == nil {
		md = KeepRolling(md, old)
	}
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	return writeChart(filepath.Join(outDir, "benchmarks.png"), all, servers)
}

// rollingHeading and rollingEnd delimit the rolling-restart section that
// cmd/rolling writes into the same file (between its markers, with notes
// after the end marker up to the next heading).
const (
	rollingHeading = "## Rolling restart\n"
	rollingEnd     = "<!-- rolling-restart:end -->"
)

// KeepRolling returns md with the rolling-restart section of old (the
// file it replaces) carried over, before "## Reproduce": the section
// comes from cmd/rolling, not from results/*.json.
func KeepRolling(md string, old []byte) string {
	o := string(old)
	h := strings.Index(o, rollingHeading)
	e := strings.Index(o, rollingEnd)
	if h < 0 || e < h || strings.Contains(md, rollingEnd) {
		return md
	}
	end := len(o)
	if k := strings.Index(o[e:], "\n## "); k >= 0 {
		end = e + k + 1
	}
	section := strings.TrimRight(o[h:end], "\n") + "\n\n"
	if k := strings.Index(md, "\n## Reproduce"); k >= 0 {
		return md[:k+1] + section + md[k+1:]
	}
	return strings.TrimRight(md, "\n") + "\n\n" + section
}

func presentServers(all map[string]*ScenarioResults) []string {
	seen := map[string]bool{}
	for _, sr := range all {
		for s := range sr.Servers {
			seen[s] = true
		}
	}
	var out []string
	for _, s := range serverOrder {
		if seen[s] {
			out = append(out, s)
			delete(seen, s)
		}
	}
	var rest []string
	for s := range seen {
		rest = append(rest, s)
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func title(s string) string {
	if t, ok := serverTitle[s]; ok {
		return t
	}
	return s
}

// figure returns a server's spread of key in scenario.
func figure(all map[string]*ScenarioResults, scen, server, key string) (stats.Spread, bool) {
	sr := all[scen]
	if sr == nil || sr.Servers[server] == nil {
		return stats.Spread{}, false
	}
	s, ok := sr.Servers[server].Figures[key]
	return s, ok && s.N > 0
}

// num formats a figure for a table.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return thousands(int64(math.Round(v)))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func spreadCell(s stats.Spread) string {
	if s.N <= 1 || s.Min == s.Max {
		return num(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.Median), num(s.Min), num(s.Max))
}

type row struct {
	label  string
	scen   string
	key    string
	higher bool // higher is better
}

// contextKeys are figures about the run, not a server's merit: no ratio.
var contextKeys = map[string]bool{
	"knee_generator_cpu_percent":  true,
	"other_processes_cpu_percent": true,
	// Bounded by the stop rule (the search stops past the knee): no ratio.
	"max_deliveries_per_sec": true,
}

func isContext(key string) bool {
	// The events per request are the generator's doing, the same for
	// every server: no ratio.
	return contextKeys[key] || strings.HasPrefix(key, "other_cpu_percent@") ||
		strings.HasPrefix(key, "mean_batch_events") || strings.HasPrefix(key, "server_mean_batch_events")
}

// anyHas reports whether some server of scen has the figure key (a row
// for a figure older results lack would read "no knee").
func anyHas(all map[string]*ScenarioResults, scen, key string) bool {
	if all[scen] == nil {
		return false
	}
	for s := range all[scen].Servers {
		if _, ok := figure(all, scen, s, key); ok {
			return true
		}
	}
	return false
}

// rssKeyAt returns the rss_per_client_kb@<events/s> key of a one-room
// scenario whose rate is deliveries deliveries/s (events/s × the
// clients connected, within 1%), or "".
func rssKeyAt(all map[string]*ScenarioResults, scen string, deliveries float64) string {
	n, err := strconv.ParseFloat(argOf(all, scen, "-clients"), 64)
	if err != nil || n <= 0 {
		return ""
	}
	for _, k := range stageKeys(all, scen, "rss_per_client_kb") {
		if ev, err := strconv.ParseFloat(at(k), 64); err == nil && math.Abs(ev*n-deliveries) <= deliveries/100 {
			return k
		}
	}
	return ""
}

// stageKeys returns the keys prefix@N present in a scenario, sorted by N.
func stageKeys(all map[string]*ScenarioResults, scen, prefix string) []string {
	sr := all[scen]
	if sr == nil {
		return nil
	}
	set := map[string]float64{}
	for _, s := range sr.Servers {
		for k := range s.Figures {
			if strings.HasPrefix(k, prefix+"@") {
				n, err := strconv.ParseFloat(strings.TrimPrefix(k, prefix+"@"), 64)
				if err == nil {
					set[k] = n
				}
			}
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return set[keys[i]] < set[keys[j]] })
	return keys
}

func at(k string) string { _, n, _ := strings.Cut(k, "@"); return n }

func clientsOf(all map[string]*ScenarioResults, scen string) string {
	sr := all[scen]
	if sr == nil {
		return "?"
	}
	for i, a := range sr.LoadgenArgs {
		if a == "-clients" && i+1 < len(sr.LoadgenArgs) {
			return shortCount(sr.LoadgenArgs[i+1])
		}
	}
	return "?"
}

// kneeLimit is the p99 bound of scen's knee: its -p99-limit, else the
// loadgen's default, 50 ms.
func kneeLimit(all map[string]*ScenarioResults, scen string) string {
	if l := argOf(all, scen, "-p99-limit"); l != "" {
		if d, err := time.ParseDuration(l); err == nil {
			return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
		}
		return l
	}
	return "50 ms"
}

func argOf(all map[string]*ScenarioResults, scen, flag string) string {
	sr := all[scen]
	if sr == nil {
		return ""
	}
	for i, a := range sr.LoadgenArgs {
		if a == flag && i+1 < len(sr.LoadgenArgs) {
			return sr.LoadgenArgs[i+1]
		}
	}
	return ""
}

func shortCount(s string) string {
	n, err := strconv.Atoi(s)
	if err != nil {
		return s
	}
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	if n >= 1000 {
		return strconv.FormatFloat(float64(n)/1000, 'f', 1, 64) + "k"
	}
	return s
}

func headlineRows(all map[string]*ScenarioResults) []row {
	var rows []row
	for _, fan := range []string{"fanout", "fanout10k"} {
		if all[fan] == nil {
			continue
		}
		c := clientsOf(all, fan)
		rows = append(rows,
			row{"Fan-out, " + c + " clients in one room: deliveries/s at the knee (p99 ≤ " + kneeLimit(all, fan) + ")", fan, "knee_deliveries_per_sec", true},
			row{"Fan-out " + c + ": deliveries per server CPU-second at the knee", fan, "knee_deliveries_per_cpu_sec", true},
			row{"Fan-out " + c + ": p99 latency at the knee (ms)", fan, "knee_p99_ms", false},
			row{"Fan-out " + c + ": server CPU at the knee (%)", fan, "knee_cpu_percent", false},
			row{"Fan-out " + c + ": highest deliveries/s reached before the search stopped (any latency)", fan, "max_deliveries_per_sec", true},
			row{"Fan-out " + c + ": best deliveries per server CPU-second over the steps", fan, "best_deliveries_per_cpu_sec", true},
			row{"Fan-out " + c + ": load generator CPU at the knee (%)", fan, "knee_generator_cpu_percent", false},
			row{"Fan-out " + c + ": other processes' CPU during the steps, median (% of a core)", fan, "other_processes_cpu_percent", false},
		)
		if ks := stageKeys(all, fan, "p99_ms"); len(ks) > 0 {
			ev, _ := strconv.ParseFloat(at(ks[0]), 64)
			n, _ := strconv.ParseFloat(argOf(all, fan, "-clients"), 64)
			rows = append(rows, row{fmt.Sprintf("Fan-out %s: p99 at the lowest rate, %s events/s = %s deliveries/s (ms)", c, at(ks[0]), short(ev*n)), fan, ks[0], false})
		}
		if k := rssKeyAt(all, fan, 10000); k != "" {
			rows = append(rows, row{"Fan-out " + c + ": server RSS per client under load, 10k deliveries/s (KB; RSS growth since before any client, highest reading of the step)", fan, k, false})
		}
		if anyHas(all, fan, "knee_rss_per_client_kb") {
			rows = append(rows, row{"Fan-out " + c + ": server RSS per client at the knee (KB)", fan, "knee_rss_per_client_kb", false})
		}
	}
	for _, b := range []string{"burst", "burstbatch"} {
		if all[b] == nil {
			continue
		}
		c := clientsOf(all, b)
		how := "one webhook per event"
		if n := argOf(all, b, "-burst-batch"); n != "" {
			how = "in requests of " + n + " (gateway: publish API; peers: /_bench/emit)"
		}
		name := "Burst"
		if b == "burstbatch" {
			name = "Batched burst"
		}
		rows = append(rows,
			row{name + ", " + c + " clients, " + argOf(all, b, "-burst-events") + " events as fast as possible, " + how + ": deliveries/s", b, "deliveries_per_sec", true},
			row{name + " " + c + ": deliveries per server CPU-second", b, "deliveries_per_cpu_sec", true},
			row{name + " " + c + ": p99 latency (ms)", b, "p99_ms", false},
		)
		if anyHas(all, b, "mean_batch_events") {
			rows = append(rows, row{name + " " + c + ": mean events per request posted", b, "mean_batch_events", true})
		}
		if anyHas(all, b, "server_mean_batch_events") {
			rows = append(rows, row{name + " " + c + ": mean events per request, as the server counted them", b, "server_mean_batch_events", true})
		}
	}
	for _, k := range stageKeys(all, "idle", "rss_per_conn_kb") {
		rows = append(rows, row{"Idle: server RSS per connection at " + shortCount(at(k)) + " clients (KB)", "idle", k, false})
	}
	for _, k := range marginalKeys(all) {
		rows = append(rows, row{"Idle: marginal server RSS per connection, wave up to " + shortCount(at(k)) + " (KB)", "idle", k, false})
	}
	for _, k := range stageKeys(all, "idle", "connects_per_sec") {
		rows = append(rows, row{"Idle: connect + subscribe rate, wave up to " + shortCount(at(k)) + " (clients/s)", "idle", k, true})
	}
	for _, k := range stageKeys(all, "idle", "idle_cpu_percent") {
		rows = append(rows, row{"Idle: server CPU with " + shortCount(at(k)) + " idle clients (%)", "idle", k, false})
	}
	if all["rooms"] != nil {
		c := clientsOf(all, "rooms")
		r := shortCount(argOf(all, "rooms", "-rooms"))
		rows = append(rows,
			row{"Rooms, " + c + " clients in " + r + " rooms, mixed traffic: webhooks/s at the knee", "rooms", "knee_events_per_sec", true},
			row{"Rooms: deliveries per server CPU-second at the knee", "rooms", "knee_deliveries_per_cpu_sec", true},
			row{"Rooms: p99 latency at the knee (ms)", "rooms", "knee_p99_ms", false},
		)
	}
	if all["rooms100"] != nil {
		c := clientsOf(all, "rooms100")
		batches := "in batches of exactly " + argOf(all, "rooms100", "-batch")
		if argOf(all, "rooms100", "-batch") == "" {
			batches = "in batches of up to 100 (what was due at each tick)"
		}
		for _, k := range stageKeys(all, "rooms100", "p99_ms") {
			r := at(k)
			d := r
			if n, err := strconv.ParseFloat(r, 64); err == nil {
				d = shortCount(strconv.FormatFloat(n*10, 'f', 0, 64))
			}
			rows = append(rows,
				row{"Rooms100, " + c + " clients in 100 rooms, " + r + " events/s " + batches + " (" + d + " deliveries/s): p50 (ms)", "rooms100", "p50_ms@" + r, false},
				row{"Rooms100 " + r + "/s: p99 (ms)", "rooms100", "p99_ms@" + r, false},
				row{"Rooms100 " + r + "/s: p99.9 (ms)", "rooms100", "p999_ms@" + r, false},
				row{"Rooms100 " + r + "/s: deliveries per server CPU-second", "rooms100", "deliveries_per_cpu_sec@" + r, true},
			)
			if anyHas(all, "rooms100", "mean_batch_events@"+r) {
				rows = append(rows, row{"Rooms100 " + r + "/s: mean events per request posted", "rooms100", "mean_batch_events@" + r, true})
			}
			if anyHas(all, "rooms100", "server_mean_batch_events@"+r) {
				rows = append(rows, row{"Rooms100 " + r + "/s: mean events per request, as the server counted them", "rooms100", "server_mean_batch_events@" + r, true})
			}
		}
		rows = append(rows, row{"Rooms100: lost deliveries (must be 0)", "rooms100", "lost", false})
	}
	if all["e2e"] != nil {
		for _, k := range stageKeys(all, "e2e", "p99_ms") {
			r := at(k)
			rows = append(rows,
				row{"E2E, signed webhook -> client, " + r + " webhooks/s: p50 (ms)", "e2e", "p50_ms@" + r, false},
				row{"E2E " + r + "/s: p99 (ms)", "e2e", "p99_ms@" + r, false},
				row{"E2E " + r + "/s: p99.9 (ms)", "e2e", "p999_ms@" + r, false},
				row{"E2E " + r + "/s: other processes' CPU during the step (% of a core)", "e2e", "other_cpu_percent@" + r, false},
			)
		}
		rows = append(rows, row{"E2E: lost deliveries (must be 0)", "e2e", "lost", false})
	}
	if all["ingest"] != nil {
		rows = append(rows,
			row{"Ingest: verified webhooks/s per node (" + argOf(all, "ingest", "-ingest-conns") + " keep-alive connections)", "ingest", "requests_per_sec", true},
			row{"Ingest: webhooks per server CPU-second", "ingest", "requests_per_cpu_sec", true},
			row{"Ingest: p99 request latency (ms)", "ingest", "p99_ms", false},
		)
	}
	return rows
}

func ratio(all map[string]*ScenarioResults, r row, a, b string) string {
	if isContext(r.key) {
		return "–"
	}
	x, ok1 := figure(all, r.scen, a, r.key)
	y, ok2 := figure(all, r.scen, b, r.key)
	if !ok1 || !ok2 || y.Median == 0 {
		return "–"
	}
	q := x.Median / y.Median
	s := strconv.FormatFloat(q, 'f', 2, 64) + "×"
	better := (q > 1) == r.higher
	if q == 1 {
		return s
	}
	if better {
		return s + " ✓"
	}
	return s
}

func markdown(all map[string]*ScenarioResults, m *Machine, servers []string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Load benchmarks: the gateway and its peers side by side\n\n")
	w("Generated %s by the load harness in `test/load` (`go run ./cmd/bench`). ", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	w("Every figure is the **median of the runs, with the min–max in brackets**; ")
	w("the ratio columns divide the gateway's median by the peer's (✓ marks where the gateway is better).\n\n")

	if m != nil {
		w("## Machine and software\n\n")
		w("| | |\n|---|---|\n")
		w("| CPUs (`nproc`) | %d |\n| CPU model | %s |\n| memory | %s |\n| kernel | %s |\n", m.CPUs, m.CPUModel, m.MemTotal, m.Kernel)
		w("| open files (`ulimit -n`) | %s |\n| ephemeral ports | %s |\n", m.OpenFilesLimit, m.PortRange)
		if sc := m.SyscallCost; sc != nil {
			w("| syscall cost: CPU per %d-byte `write` on loopback TCP | %s |\n", sc.BufferBytes, syscallCell(sc, sc.WriteNs))
			w("| syscall cost: CPU per buffer of a %d × %d-byte `writev` | %s |\n", sc.WritevBuffers, sc.BufferBytes, syscallCell(sc, sc.WritevPerBufferNs))
		}
		keys := make([]string, 0, len(m.Versions))
		for k := range m.Versions {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w("| %s | %s |\n", k, m.Versions[k])
		}
		w("| gateway commit | %s |\n| profile | %s |\n| started / finished | %s / %s |\n\n", m.GatewayCommit, m.Profile, m.Started, m.Finished)
		w("Commands (in `test/load`, through `./run.sh`, which runs `bin/bench` built from `cmd/bench`):\n\n```sh\n")
		cmds := m.Commands
		if len(cmds) == 0 {
			cmds = []string{m.Command}
		}
		for _, c := range cmds {
			w("%s\n", strings.Replace(c, "go run ./cmd/bench", "./run.sh", 1))
		}
		w("```\n\n")
		for _, n := range m.Notes {
			w("- Note: %s\n", n)
		}
		if len(m.Notes) > 0 {
			w("\n")
		}
	}

	w("## Headline figures\n\n")
	w("| figure |")
	for _, s := range servers {
		w(" %s |", title(s))
	}
	var peersPresent []string
	for _, p := range []string{"node", "flask"} {
		if contains(servers, p) && contains(servers, "gateway") {
			peersPresent = append(peersPresent, p)
			w(" gateway / %s |", p)
		}
	}
	w("\n|---|")
	for range servers {
		w("---:|")
	}
	for range peersPresent {
		w("---:|")
	}
	w("\n")
	for _, r := range headlineRows(all) {
		w("| %s |", r.label)
		for _, s := range servers {
			if f, ok := figure(all, r.scen, s, r.key); ok {
				runs := len(all[r.scen].Servers[s].Runs)
				if f.N < runs {
					w(" %s [%d of %d runs] |", spreadCell(f), f.N, runs)
				} else {
					w(" %s |", spreadCell(f))
				}
			} else if strings.HasPrefix(r.key, "knee_") && all[r.scen] != nil && all[r.scen].Servers[s] != nil {
				w(" no knee: p99 > %s from the lowest rate |", kneeLimit(all, r.scen))
			} else {
				w(" – |")
			}
		}
		for _, p := range peersPresent {
			w(" %s |", ratio(all, r, "gateway", p))
		}
		w("\n")
	}
	w("\n![deliveries per CPU-second and p99 latency per server and scenario](benchmarks.png)\n\n")

	w("## Loss and errors\n\n")
	w("Summed over all runs. *lost* = a delivery a subscribed client never received although the server accepted the event (HTTP 200); ")
	w("*dup* = a delivery received twice; *disc* = a client disconnected by the server or the network mid-run; ")
	w("*proto* = a protocol error (unexpected packet, CONNECT_ERROR, an `error` reply); *conn* = a client that failed to connect and subscribe; ")
	w("*http* = an event post the server did not accept.\n\n")
	w("| scenario | server | runs | ok | lost | dup | disc | proto | conn | http |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, scen := range scenarioOrder(all) {
		for _, s := range servers {
			sr := all[scen].Servers[s]
			if sr == nil {
				continue
			}
			var lost, dup, disc, proto, conn, httpE int64
			for _, r := range sr.Runs {
				if t := r.Totals; t != nil {
					lost += t.Lost
					dup += t.Duplicates
					disc += t.Disconnects
					proto += t.ProtocolErrors
					conn += t.ConnectErrors
					httpE += t.HTTPErrors
				}
			}
			ok := "yes"
			if !sr.OK {
				ok = "**no**"
			}
			w("| %s | %s | %d | %s | %d | %d | %d | %d | %d | %d |\n", scen, s, len(sr.Runs), ok, lost, dup, disc, proto, conn, httpE)
		}
	}
	w("\n")

	w("## What each figure means\n\n")
	b.WriteString(methodText)

	w("## Every figure, per scenario\n\n")
	for _, scen := range scenarioOrder(all) {
		sr := all[scen]
		w("### %s\n\n", scen)
		w("`loadgen %s`, %d run(s) per server.\n\n", strings.Join(sr.LoadgenArgs, " "), sr.Runs)
		keys := map[string]bool{}
		for _, s := range sr.Servers {
			for k := range s.Figures {
				keys[k] = true
			}
		}
		var ks []string
		for k := range keys {
			ks = append(ks, k)
		}
		sort.Slice(ks, func(i, j int) bool { return keyLess(ks[i], ks[j]) })
		w("| figure |")
		for _, s := range servers {
			if sr.Servers[s] != nil {
				w(" %s |", title(s))
			}
		}
		w("\n|---|")
		for _, s := range servers {
			if sr.Servers[s] != nil {
				w("---:|")
			}
		}
		w("\n")
		for _, k := range ks {
			w("| %s |", k)
			for _, s := range servers {
				if sr.Servers[s] == nil {
					continue
				}
				if f, ok := sr.Servers[s].Figures[k]; ok && f.N > 0 {
					w(" %s |", spreadCell(f))
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
		var notes []string
		for _, s := range servers {
			if sr.Servers[s] == nil {
				continue
			}
			seen := map[string]bool{}
			for _, r := range sr.Servers[s].Runs {
				for _, n := range r.Notes {
					if !seen[n] {
						seen[n] = true
						notes = append(notes, s+": "+n)
					}
				}
			}
		}
		if len(notes) > 0 {
			w("\n")
			for _, n := range notes {
				w("- %s\n", n)
			}
		}
		w("\n")
	}
	w("## Reproduce\n\n")
	w("```sh\ncd test/load\n./run.sh                      # everything: 3 runs x every scenario x gateway, node, flask, then this report\n")
	w("./run.sh -scenarios fanout -runs 5   # one scenario\n./run.sh -smoke                # the CI smoke (gateway only, < 60 s)\n")
	w("go run ./cmd/bench report -results results -out out   # this report again from results/*.json\n```\n\n")
	w("Raw records (one JSON line per step or stage) are in `results/raw/`, server logs in `results/logs/`.\n")
	return b.String()
}

const methodText = `- **Load generator**: ` + "`cmd/loadgen`" + `, one Go process speaking Engine.IO v4 / Socket.IO v5 itself
  (gorilla/websocket frames, one read goroutine per client, no socket.io client library). Each client
  opens ` + "`/socket.io/?EIO=4&transport=websocket`" + ` (or HTTP long-polling for the *polling share*), sends
  CONNECT, and emits ` + "`subscribe_project`" + ` right on the CONNECT reply, as the React app does inside
  ` + "`on('connect')`" + `; it counts as connected when ` + "`subscribed_project`" + ` comes back. It answers pings.
- **Events**: signed Modal webhooks (` + "`POST /api/webhooks/modal`" + `, ` + "`X-Modal-Signature: sha256=<hmac>`" + `),
  one webhook = one ` + "`job_completed`" + ` to one ` + "`project_<id>`" + ` room. The webhook's ` + "`result`" + ` carries
  ` + "`ts`" + ` (unix nanos, the *scheduled* send time: open loop, so a backlog shows as latency), ` + "`seq`" + `
  (per room) and ` + "`st`" + ` (the step). Every client checks every seq: loss, duplicates, foreign rooms.
- **Latency** = client receipt time − ts, same clock (one machine). p50/p99/p99.9 over every delivery of a step.
- **Server CPU** = the server threads' scheduler time from ` + "`/proc/<pid>/task/<tid>/schedstat`" + ` (ns; utime+stime from ` + "`/proc/<pid>/stat`" + ` if a thread ended) over the step (from its first send
  until its last delivery or the drain timeout); **deliveries per CPU-second** = deliveries / that CPU time.
  The generator's own CPU is read the same way (` + "`/proc/self/stat`" + `) and reported next to it.
- **fanout**: one room of N clients; steps of increasing target rates (deliveries/s = events/s × N), 4 s each.
  The **knee** is the last step whose p99 ≤ 50 ms, with every delivery made and the target rate reached;
  the run stops after the first step past it.
- **burst**: the same room, 200 webhooks posted as fast as 64 concurrent posters allow; deliveries/s from the
  first post to the last receipt. **burstbatch**: the same room, 1000 events in one request (the gateway's
  publish API ` + "`POST /api/events`" + `, the peers' bench-only ` + "`/_bench/emit`" + `): a batched producer.
  *mean events per request* is counted by the generator over the requests it posted; *as the server counted
  them*: the gateway's ` + "`/metrics`" + ` (accepted ` + "`/api/events`" + ` requests, ` + "`job_completed`" + ` emitted), the node
  peer's ` + "`GET /_bench/emits`" + ` (the flask peer does not count).
- **idle**: clients connected in waves (1k, then up to 10k…); after each wave and 2 s of settling, RSS (VmRSS)
  and CPU over a 10 s idle window. RSS per connection = (RSS − RSS before any client) / clients.
  Connect rate = clients connected *and subscribed* per second with 200 handshakes in flight.
- **rooms**: 10k clients over 1k project rooms (5% on long-polling, every client also joins a batch room);
  80% of webhooks go to the hottest 20% of rooms, 10% carry a ~2 KB result, 10% are ` + "`job_failed`" + `; steps of
  increasing webhook rates, knee as above.
- **rooms100**: 1k websocket clients over 100 rooms, 1000 to 5000 events/s in requests of exactly 100 events
  (one request every 100 ms at 1000/s, every 20 ms at 5000/s; every event of a request carries the request's
  scheduled time), so the figure is fan-out and not a request per event.
- **RSS per client under load** (stepped scenarios): (the server's highest VmRSS during a step, sampled every
  250 ms − its RSS before any client connected) / clients.
- **e2e**: 1k clients over 100 rooms (5% polling), webhooks at fixed rates; latency from the scheduled HTTP
  request to the client's receipt, loss must be 0.
- **ingest**: verified webhooks per second into a room nobody is in (HTTP only): 32 keep-alive connections
  posting in a closed loop for 5 s, real HMAC signatures.
- The generator and the server share the machine's cores: read the generator CPU column before
  blaming a server for a ceiling. The machine is shared with other work too: each step records the
  other processes' CPU (` + "`/proc/stat`" + ` minus server and generator); before each run the harness waits
  (bounded) until they use less than half a core, and a step that fails the knee test is retried after
  the machine calms down.

`

// syscallCell is one syscall-cost figure for the machine table.
func syscallCell(sc *SyscallCost, ns float64) string {
	if ns <= 0 {
		return "not measured: " + sc.Error
	}
	cell := strconv.FormatFloat(ns, 'f', 0, 64) + " ns (median of " + strconv.Itoa(sc.Rounds) + " rounds, calls round-robin over " + strconv.Itoa(sc.Conns) + " connections)"
	if sc.Error != "" {
		cell += "; " + sc.Error
	}
	return cell
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

var scenarioRank = map[string]int{"fanout": 0, "fanout10k": 1, "burst": 2, "burstbatch": 3, "idle": 4, "rooms": 5, "rooms100": 6, "e2e": 7, "ingest": 8}

func scenarioOrder(all map[string]*ScenarioResults) []string {
	var out []string
	for k := range all {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		ri, iok := scenarioRank[out[i]]
		rj, jok := scenarioRank[out[j]]
		if iok && jok {
			return ri < rj
		}
		if iok != jok {
			return iok
		}
		return out[i] < out[j]
	})
	return out
}

// keyLess sorts "name@rate" keys by name, then numerically by rate.
func keyLess(a, b string) bool {
	an, ar, _ := strings.Cut(a, "@")
	bn, br, _ := strings.Cut(b, "@")
	if an != bn {
		return an < bn
	}
	x, e1 := strconv.ParseFloat(ar, 64)
	y, e2 := strconv.ParseFloat(br, 64)
	if e1 == nil && e2 == nil {
		return x < y
	}
	return ar < br
}
