package soak

import (
	"fmt"
	"math"
	"os"
	"strings"
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
	verdict := "passed"
	if !s.Pass {
		verdict = "**failed**: " + strings.Join(s.Failures, "; ")
	}
	w("## Soak: %s of churn, a Redis restart and no leak\n\n", fmtDur(s.DurationS))
	w("`%s` on %s, started %s UTC: %s.\n\n", command, cpu, s.StartedAt.Format("2006-01-02 15:04"), verdict)
	w("- **Load**: %d clients (%.0f%% long-polling, the rest websocket) over %d project rooms, %.0f%% of them closed and reconnected per minute (%d churned: a new connection that subscribes to its room again, on the other node); %.0f events/s to random rooms, %.0f%% as signed Modal webhooks each sent **twice** (the copy to the other node, 0.2-2 s after the first was acknowledged: %d copies, none may reach a client), the rest as signed `POST /api/events` batches with an `id` per event.\n",
		s.Clients, 100*s.PollingShare, s.Rooms, 100*s.ChurnPerMin, s.Churned, s.Rate, 100*s.WebhookShare, s.Resent)
	w("- **Servers**: %d gateway nodes on one real `redis-server` (AOF, `appendfsync everysec`), restarted (SIGTERM, down %.0f s) at %.0f s; Redis was back at %.1f s and every node's `/readyz` answered 200 again %.1f s later (readiness includes the canary through the stream). Each node counted %v Redis reconnects.\n",
		s.Nodes, s.Redis.UpAt-s.Redis.DownAt, s.Redis.DownAt, s.Redis.UpAt, s.Redis.RecoverySec, s.Redis.ReconnectsSeen)
	w("- **Retention during the soak**: dedupe window and recovery window %.0f s, stream max length %d (a twelfth of the run, at least 15 s, at most 5 min): every expiring key population reaches its steady state (rate x window) before the fit window. With production's 24 h dedupe window the keys grow for 24 h, by design; the soak shows that they do expire and nothing else grows.\n",
		s.RetentionS, s.StreamMaxLen)
	w("- **CPU** over the traffic: gateway nodes %.0f%%, generator %.0f%%, everything else (Redis, other processes) %.0f%% of one core.\n\n", s.NodesCPU, s.GeneratorCPU, s.OtherCPU)

	w("Sampled every %.0f s; a least-squares line is fitted over the second half (%.0f-%.0f s, after the warm-up and after the restart). **Drift** = slope x the fit window's length; it must stay within the bound: 10%% of the mean for memory (a Go heap breathes with its GC cycle; 10%% of ~%.0f MB over half an hour is a leak of more than a few KB per churned connection), 5%% for counts (goroutines, descriptors, keys: far less than one leaked per churned client, who are %.0f per node in the fit window), and for p99 50%% of the mean or 5 ms (latency on a shared 2-core machine is the noisiest figure).\n\n",
		s.IntervalS, s.FitWindow[0], s.FitWindow[1], meanOf(s, "node0.rss_mb"), float64(s.Churned)/2/math.Max(1, float64(s.Nodes)))
	w("| figure | mean | slope per hour | drift over the fit window | bound | flat |\n|---|---:|---:|---:|---:|:---:|\n")
	for _, f := range s.Fits {
		w("| %s | %.4g | %+.3g | %+.3g (%+.1f%%) | ±%.3g | %s |\n", f.Metric, f.Mean, f.SlopePerHour, f.Drift, f.DriftPct, f.Bound, yes(f.Pass))
	}
	v := s.Verdict
	w("\nDelivery accounting. An event is **owed** to a client session when the session was in the room (its `subscribed_project` reply had arrived) before the event's first POST began, and stayed at least %d ms after the event's acknowledgement (200), or to the end of the run; events of a session's last %d ms (its churn window) are not owed, and a session's events before it joined never are. Every receipt is checked against the session's set of sequence numbers (duplicates) and its room (foreign).\n\n", v.ChurnGraceMS, v.ChurnGraceMS)
	w("| events sent | acknowledged | producer retries (503s and errors) | sessions | owed deliveries | delivered (owed) | lost | duplicates | foreign | dropped sessions | p50 / p99 / max ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	w("| %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %.1f / %.1f / %.0f |\n\n",
		v.Events, v.Acknowledged, s.Retries, v.Sessions, v.Owed, v.DeliveredOwed, v.Lost, v.Duplicates, v.Foreign, v.Unexpected,
		v.LatencyOverall.P50, v.LatencyOverall.P99, v.LatencyOverall.Max)
	w("![soak](%s)\n", plot)
	return b.String()
}

func meanOf(s *Summary, metric string) float64 {
	for _, f := range s.Fits {
		if f.Metric == metric {
			return f.Mean
		}
	}
	return math.NaN()
}
