package soak

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Markers delimit the soak's section of docs/reliability.md; other
// sections belong to other tools.
const (
	BeginMarker = "<!-- soak:begin -->"
	EndMarker   = "<!-- soak:end -->"
)

// ReplaceSection puts section between the markers of doc (appending the
// markers when absent) and leaves the rest untouched.
func ReplaceSection(doc, section string) (string, error) {
	block := BeginMarker + "\n" + strings.TrimRight(section, "\n") + "\n" + EndMarker
	i := strings.Index(doc, BeginMarker)
	j := strings.Index(doc, EndMarker)
	switch {
	case i < 0 && j < 0:
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		if doc != "" {
			doc += "\n"
		}
		return doc + block + "\n", nil
	case i < 0 || j < i:
		return "", fmt.Errorf("soak: %s and %s out of order", BeginMarker, EndMarker)
	}
	return doc[:i] + block + doc[j+len(EndMarker):], nil
}

// WriteSection rewrites the soak section of the markdown file at path
// (created with a title when absent).
func WriteSection(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	doc := string(b)
	if doc == "" {
		doc = "# Reliability: faults and long runs, with figures\n"
	}
	out, err := ReplaceSection(doc, section)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

// Markdown is the soak's section: the run, the flatness table, the delivery
// accounting, the plot.
func Markdown(s *Summary, command, cpu, plot string) string {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	verdict := "**passed**"
	if !s.Pass {
		verdict = "**failed**: " + strings.Join(s.Failures, "; ")
	}
	fitLen := s.FitWindow[1] - s.FitWindow[0]
	w("## Soak: %s of churn and a Redis restart\n\n", fmtDur(s.DurationS))
	w("`%s` (test/load/cmd/soak) on %s, started %s UTC, %s of traffic: %s.\n\n", command, cpu, s.StartedAt.Format("2006-01-02 15:04"), fmtDur(s.DurationS), verdict)
	w("- **Clients**: %d (%.0f%% long-polling, the rest websocket from 127.0.0.2-9) over %d project rooms, connected in %.1f s; %.0f%% of them closed and reconnected per minute (%d churns: a new connection to the other node that subscribes to its room again; %d connect errors).\n",
		s.Clients, 100*s.PollingShare, s.Rooms, s.ConnectSec, 100*s.ChurnPerMin, s.Churned, s.ConnectErrors)
	w("- **Producer**: %.0f events/s to random rooms: %.0f%% as signed `POST /api/events` batches (an `id` per event, so a retried batch is safe), %.0f%% as signed Modal webhooks, each sent **again** to the other node 0.2-2 s after its acknowledgement (%d copies, all answered 200). %s Failed requests (the 503s while Redis was down) were retried with backoff: %d retries.\n",
		s.Rate, 100*(1-s.WebhookShare), 100*s.WebhookShare, s.Resent, busDups(s), s.Retries)
	w("- **Servers**: %d gateway nodes (it fits: the nodes used %.0f%% of one core, the generator %.0f%%, everything else on the machine, Redis and other work included, %.0f%%) on one real `redis-server` with AOF (`appendfsync everysec`). Redis was stopped (SIGTERM) at %.0f s and started again %.1f s later; every node's `/readyz` (Redis, consumer, and a canary through the stream) answered 200 again %.1f s after Redis was back; the nodes counted %v Redis reconnects.\n",
		s.Nodes, s.NodesCPU, s.GeneratorCPU, math.Max(0, s.OtherCPU), s.Redis.DownAt, s.Redis.UpAt-s.Redis.DownAt, s.Redis.RecoverySec, s.Redis.ReconnectsSeen)
	w("- **Retention during the soak**: dedupe and recovery windows %s, stream max length %d (a twelfth of the run, from 15 s to 5 min; `GATEWAY_DEDUPE_WINDOW`, `GATEWAY_RECOVERY_MAX_DISCONNECTION`, `GATEWAY_REDIS_STREAM_MAX_LEN`), so that every expiring population reaches its steady state (rate x window) before the fit window. Production keeps dedupe keys 24 h: their count then grows for 24 h by design. `DBSIZE` also counts keys that have expired but that Redis's active expiry has not reclaimed yet (it stops sampling while under about a tenth of the sampled keys are stale): the sawtooth of the keys panel. Keys at the end, by a `SCAN` (which skips expired keys): %s.\n\n",
		fmtDur(s.RetentionS), s.StreamMaxLen, census(s.KeysByPrefix))

	churns := churnsPerNode(s, fitLen)
	memRel := BoundsFor(time.Duration(s.DurationS * float64(time.Second)))["rss_mb"].Rel
	gBound := math.Max(BoundsFor(time.Duration(s.DurationS * float64(time.Second)))["goroutines"].Rel*meanOf(s, "node0.goroutines"), countFloor)
	catch := fmt.Sprintf("a leak of one goroutine, descriptor or key per churn would drift %.0f, %.1f times the bound", churns, churns/math.Max(gBound, 1))
	if churns < gBound {
		catch += " (too short a run to catch that: it catches gross leaks only)"
	}
	w("**Flatness.** Sampled every %.0f s; a least-squares line is fitted over the second half (%.0f-%.0f s: after the warm-up and after the restart). The **drift** is the line's rise over the fit window (slope x %s); it must stay within the bound. Memory (RSS, Redis used_memory): %.0f%% of the mean (10%%; 25%% in runs under 20 min, whose heaps are still growing towards their steady state as the retained windows fill); a Go heap breathes with its GC cycle by several percent, and with %.0f connections churned per node in the fit window, %.0f%% of node 0's RSS is %.1f KB per churn, so a per-connection leak of that size fails. Counts (goroutines, descriptors, keys): 5%% of the mean (10%% in runs under 20 min: DBSIZE's stale-key sawtooth, and polling sessions moving between the nodes), and goroutines and descriptors at least 100 (with the lean engine session a WebSocket client holds no goroutine, so a node's count is mostly its long-polling sessions, which random-walk between the nodes as clients churn), for node 0 %.0f goroutines: %s. p99 latency per interval: 50%% of the mean or 5 ms, whichever is larger (the noisiest figure on a shared 2-core machine).\n\n",
		s.IntervalS, s.FitWindow[0], s.FitWindow[1], fmtDur(fitLen), 100*memRel, churns, 100*memRel, memRel*meanOf(s, "node0.rss_mb")*1024/math.Max(1, churns), gBound, catch)
	w("| figure | mean | slope per hour | drift over the fit window | bound | flat |\n|---|---:|---:|---:|---:|:---:|\n")
	for _, f := range s.Fits {
		w("| %s | %s | %+.3g | %+.3g (%+.1f%%) | ±%.3g | %s |\n", f.Metric, sig(f.Mean), f.SlopePerHour, f.Drift, f.DriftPct, f.Bound, yes(f.Pass))
	}
	v := s.Verdict
	w("\n**Delivery.** An event is **owed** to a client session when the session was in the room (its `subscribed_project` reply had arrived) before the event's first POST began, and stayed in it until at least %s after the event was acknowledged (200), or to the end of the run. So a session's **churn window**, not owed, is the last %s before the harness began to close it; an event not acknowledged is owed to nobody (there was none). Every receipt is checked against the session's set of sequence numbers (duplicate) and its room (foreign); a session the server or the network ended counts as dropped: its owed events up to the drop are accounted like a churned session's (it reconnects), and more than 1%% of the sessions dropped fails the run. After the traffic the harness waits until deliveries stop (at most 30 s).\n\n",
		fmtDur(float64(v.ChurnGraceMS)/1000), fmtDur(float64(v.ChurnGraceMS)/1000))
	w("| events sent | acknowledged | sessions | owed deliveries | delivered of those | lost | duplicates | foreign | dropped sessions | latency p50 / p99 / max, ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	dropped := strconv.Itoa(v.Unexpected)
	if v.DroppedPolling > 0 {
		dropped += fmt.Sprintf(" (%d polling)", v.DroppedPolling)
	}
	w("| %d | %d | %d | %d | %d | **%d** | **%d** | %d | %s | %.1f / %.0f / %.0f |\n\n",
		v.Events, v.Acknowledged, v.Sessions, v.Owed, v.DeliveredOwed, v.Lost, v.Duplicates, v.Foreign, dropped,
		v.LatencyOverall.P50, v.LatencyOverall.P99, v.LatencyOverall.Max)
	w("Latency is from the event's scheduled send time to the client's receipt, so the events posted while Redis was down carry the outage and the retries' backoff (the spike in the plot; the whole-run p99 above includes it, the table's p99 line is the second half).\n\n")
	w("![soak: RSS, goroutines, fds per node, Redis memory and keys, p99 latency](%s)\n", plot)
	return b.String()
}

func busDups(s *Summary) string {
	if s.BusDuplicates == 0 && s.Resent > 0 {
		return "(The bus's own duplicate count was not read in this run.)"
	}
	return fmt.Sprintf("The nodes' bus refused %.0f publishes as duplicates (the copies, plus first attempts stored although their answer was lost).", s.BusDuplicates)
}

func churnsPerNode(s *Summary, window float64) float64 {
	return s.ChurnPerMin * float64(s.Clients) * window / 60 / math.Max(1, float64(s.Nodes))
}

func sig(v float64) string {
	if math.Abs(v) >= 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func census(m map[string]int) string {
	if len(m) == 0 {
		return "not read"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("`%s` %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func meanOf(s *Summary, metric string) float64 {
	for _, f := range s.Fits {
		if f.Metric == metric {
			return f.Mean
		}
	}
	return math.NaN()
}
