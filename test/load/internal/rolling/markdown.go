package rolling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/meshgen/gateway/test/load/internal/report"
)

// Markers of the generated section in docs/benchmarks.md.
const (
	BeginMarker = "<!-- rolling-restart:begin -->"
	EndMarker   = "<!-- rolling-restart:end -->"
	heading     = "## Rolling restart"
)

// Report is results/rolling.json: every server's record of one
// invocation.
type Report struct {
	Command  string         `json:"command"`
	Machine  report.Machine `json:"machine"`
	Started  string         `json:"started"`
	Finished string         `json:"finished"`
	Runs     []Result       `json:"runs"`
}

// AdapterVersion is the installed @socket.io/redis-streams-adapter's
// version, or "".
func AdapterVersion(moduleDir string) string {
	var pkg struct {
		Version string `json:"version"`
	}
	b, err := os.ReadFile(filepath.Join(moduleDir, "peers/node/node_modules/@socket.io/redis-streams-adapter/package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

// Section renders the markdown between the markers (markers excluded).
func Section(rep Report, adapterVersion string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := rep.Machine
	target := "make bench-rolling"
	if strings.Contains(rep.Command, "-smoke") {
		target += " SMOKE=1"
	}
	w("\nGenerated %s by `cd test/load && %s` (`%s`), CPU %s (%d cores, shared with other work), gateway commit %s",
		rep.Finished, rep.Command, target, m.CPUModel, m.CPUs, m.GatewayCommit)
	if v := m.Versions["socket.io (node)"]; v != "" {
		w(", socket.io %s", v)
	}
	if adapterVersion != "" {
		w(" with @socket.io/redis-streams-adapter %s", adapterVersion)
	}
	w(".\n\n")
	if len(rep.Runs) == 0 {
		w("No run.\n\n")
		return b.String()
	}
	r0 := rep.Runs[0]
	w("Each server runs as %d processes sharing one real `redis-server` (the gateway with `REDIS_URL`; node socket.io with `@socket.io/redis-streams-adapter` and `connectionStateRecovery` of %s). %d clients (the harness's Engine.IO client, `internal/eio`, taking part in connection state recovery as socket.io-client v4 does: it keeps the CONNECT reply's `pid` and the last string argument of each event, sends `{pid, offset}` in its next CONNECT, rejoins its room only when the reply's `pid` differs) are spread over the nodes, one of %d project rooms each; the producer posts %.0f signed %s events/s to a live node, each room's posts in sequence. After %s, each node in turn is taken out of the live set (as readiness takes it out of a load balancer), gets SIGTERM (paced drain over %s: clients closed at the transport level, they reconnect to a live node after socket.io-client's randomized reconnection delay) and is started again on its port. **Lost** = acknowledged (2xx) events of a client's room that it never received.\n\n",
		r0.Nodes, r0.RecoveryWindow, r0.Clients, r0.Rooms, r0.Rate, r0.Source, r0.DrainWindow, r0.DrainWindow)

	w("| figure |")
	for _, r := range rep.Runs {
		w(" %s |", serverTitle(r.Server))
	}
	w("\n|---|")
	for range rep.Runs {
		w("---:|")
	}
	w("\n")
	row := func(name string, f func(r Result) string) {
		w("| %s |", name)
		for _, r := range rep.Runs {
			w(" %s |", f(r))
		}
		w("\n")
	}
	counts := func(c Counts) string {
		return fmt.Sprintf("%d (%d clients; %.2f per client, max %d)", c.Total, c.ClientsWith, c.PerClient, c.Max)
	}
	row("clients connected / requested", func(r Result) string { return fmt.Sprintf("%d / %d", r.Connected, r.Clients) })
	row("events posted / acknowledged (2xx)", func(r Result) string { return fmt.Sprintf("%d / %d", r.Posted, r.Acknowledged) })
	row("deliveries expected / made", func(r Result) string { return fmt.Sprintf("%d / %d", r.Expected, r.Delivered) })
	row("**lost** (acknowledged, never received)", func(r Result) string { return "**" + counts(r.Lost) + "**" })
	row("duplicates", func(r Result) string { return counts(r.Duplicates) })
	row("out of order", func(r Result) string { return counts(r.OutOfOrder) })
	row("reconnects", func(r Result) string { return counts(r.Reconnects) })
	row("**recovered** reconnects (same `pid`)", func(r Result) string { return "**" + counts(r.Recovered) + "**" })
	row("not recovered (fresh session, room rejoined)", func(r Result) string { return counts(r.NotRecovered) })
	row("failed connect attempts", func(r Result) string { return counts(r.FailedDials) })
	row("clients that gave up / not connected at the end", func(r Result) string { return fmt.Sprintf("%d / %d", r.GaveUp, r.NotConnectedAtEnd) })
	row("received but not acknowledged", func(r Result) string { return fmt.Sprintf("%d", r.UnackedSeen) })
	row("producer run (s)", func(r Result) string { return fmt.Sprintf("%.1f", r.Seconds) })
	row("server CPU-seconds, all processes (per 1,000 deliveries)", func(r Result) string {
		return fmt.Sprintf("%.1f (%.3f)", r.ServerCPUSecs, perK(r))
	})
	row("SIGTERM to exit (s), per node", func(r Result) string {
		var parts []string
		for _, d := range r.Drains {
			s := fmt.Sprintf("%.1f", d.ExitSeconds)
			if d.ExitError != "" {
				s += " (" + d.ExitError + ")"
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ", ")
	})
	row("clients on the node at SIGTERM", func(r Result) string {
		var parts []string
		for _, d := range r.Drains {
			parts = append(parts, fmt.Sprintf("%d", d.Clients))
		}
		return strings.Join(parts, ", ")
	})
	// The Redis commands that took the most time, over every run.
	busy := map[string]float64{}
	for _, r := range rep.Runs {
		for cmd, stat := range r.RedisCommands {
			_, us := redisStat(stat)
			busy[cmd] += float64(us)
		}
	}
	cmds := make([]string, 0, len(busy))
	for cmd := range busy {
		cmds = append(cmds, cmd)
	}
	sort.Slice(cmds, func(i, j int) bool { return busy[cmds[i]] > busy[cmds[j]] })
	for _, cmd := range cmds[:min(len(cmds), 8)] {
		row("Redis "+strings.ToUpper(cmd)+": calls, busy s", func(r Result) string { return redisCalls(r.RedisCommands[cmd]) })
	}
	if len(rep.Runs) == 2 && perK(rep.Runs[1]) > 0 {
		w("\n%s / %s server CPU per delivery (connects, reconnects and recoveries included): %.2f×.\n", serverTitle(rep.Runs[0].Server), serverTitle(rep.Runs[1].Server),
			perK(rep.Runs[0])/perK(rep.Runs[1]))
	}
	for _, r := range rep.Runs {
		if len(r.ErrorSamples) == 0 {
			continue
		}
		w("\nFirst distinct errors, %s (up to 12 with their counts in `rolling.json`):\n\n```\n", serverTitle(r.Server))
		for _, e := range r.ErrorSamples[:min(len(r.ErrorSamples), 5)] {
			w("%s\n", e)
		}
		w("```\n")
	}
	w("\nRaw records: `rolling.json` in the results directory (`test/load/results/`, `results-smoke/` for the smoke), server logs in its `logs/rolling-*`.\n\n")
	return b.String()
}

// redisCalls renders "calls=12,usec=3400,…" as "12, 0.00".
func redisCalls(stat string) string {
	if stat == "" {
		return "–"
	}
	calls, usec := redisStat(stat)
	return fmt.Sprintf("%d, %.2f", calls, float64(usec)/1e6)
}

// redisStat parses the calls and usec of an INFO commandstats value.
func redisStat(stat string) (calls, usec int64) {
	for _, kv := range strings.Split(stat, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "calls":
			fmt.Sscan(v, &calls)
		case "usec":
			fmt.Sscan(v, &usec)
		}
	}
	return calls, usec
}

// perK is the server CPU-seconds per 1,000 deliveries.
func perK(r Result) float64 {
	if r.Delivered == 0 {
		return 0
	}
	return 1000 * r.ServerCPUSecs / float64(r.Delivered)
}

func serverTitle(s string) string {
	switch s {
	case "gateway":
		return "gateway (Go)"
	case "node":
		return "node socket.io + redis-streams-adapter"
	}
	return s
}

// WriteSection rewrites the part of path between the markers with rep;
// without markers it adds a "Rolling restart" section holding them before
// "## Reproduce" (or at the end).
func WriteSection(path string, rep Report) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("rolling: %w", err)
	}
	moduleDir, _ := os.Getwd()
	next := ReplaceSection(old, Section(rep, AdapterVersion(moduleDir)))
	return os.WriteFile(path, next, 0o644)
}

// ReplaceSection returns doc with the text between the markers replaced
// by body; without markers, a "Rolling restart" section holding them is
// added before "## Reproduce", or at the end.
func ReplaceSection(doc []byte, body string) []byte {
	i := bytes.Index(doc, []byte(BeginMarker))
	j := bytes.Index(doc, []byte(EndMarker))
	if i >= 0 && j > i {
		var out bytes.Buffer
		out.Write(doc[:i+len(BeginMarker)])
		out.WriteString(body)
		out.Write(doc[j:])
		return out.Bytes()
	}
	block := heading + "\n\n" + BeginMarker + body + EndMarker + "\n\n"
	if k := bytes.Index(doc, []byte("\n## Reproduce")); k >= 0 {
		var out bytes.Buffer
		out.Write(doc[:k+1])
		out.WriteString(block)
		out.Write(doc[k+1:])
		return out.Bytes()
	}
	return append(append(bytes.TrimRight(doc, "\n"), "\n\n"...), block...)
}
