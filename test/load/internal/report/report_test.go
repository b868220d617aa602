package report

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshgen/gateway/test/load/internal/scenario"
	"github.com/meshgen/gateway/test/load/internal/stats"
)

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	mk := func(vals map[string][]float64) *ServerResults {
		s := &ServerResults{OK: true, Figures: map[string]stats.Spread{}}
		for k, v := range vals {
			s.Figures[k] = stats.SpreadOf(v)
		}
		s.Runs = []scenario.Result{{Type: "result", OK: true, Totals: &scenario.Totals{}}}
		return s
	}
	write := func(name string, v any) {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("fanout.json", ScenarioResults{Scenario: "fanout", LoadgenArgs: []string{"-clients", "1000"}, Runs: 3,
		Servers: map[string]*ServerResults{
			"gateway": mk(map[string][]float64{"knee_deliveries_per_sec": {40000, 42000, 39000}, "knee_deliveries_per_cpu_sec": {30000, 31000, 29000}, "knee_p99_ms": {30, 35, 40}}),
			"node":    mk(map[string][]float64{"knee_deliveries_per_sec": {80000, 81000, 79000}, "knee_deliveries_per_cpu_sec": {90000, 91000, 89000}, "knee_p99_ms": {20, 25, 30}}),
			"flask":   mk(map[string][]float64{"knee_deliveries_per_sec": {5000, 5000, 5000}}),
		}})
	write("idle.json", ScenarioResults{Scenario: "idle", Runs: 3, Servers: map[string]*ServerResults{
		"gateway": mk(map[string][]float64{"rss_per_conn_kb@1000": {40, 41, 42}, "rss_per_conn_kb@10000": {30, 31, 32}}),
	}})
	write("machine.json", Machine{CPUs: 2, CPUModel: "test cpu", Versions: map[string]string{"go": "go1.26.8"}})
	out := filepath.Join(dir, "out")
	if err := Write(dir, out); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"test cpu", "40,000 (39,000–42,000)", "0.50×", "8.00× ✓", "Idle: server RSS per connection at 10k clients (KB)", "benchmarks.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	f, err := os.Open(filepath.Join(out, "benchmarks.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 400 {
		t.Errorf("chart is %v", b)
	}
}

func TestKeepRolling(t *testing.T) {
	old := []byte("# B\n\n## Loss\n\n## Rolling restart\n\n<!-- rolling-restart:begin -->\nfigures\n<!-- rolling-restart:end -->\n\nnotes\n\n## Reproduce\n\nold\n")
	md := "# B\n\n## Loss\n\nnew\n\n## Reproduce\n\nnew\n"
	got := KeepRolling(md, old)
	want := "# B\n\n## Loss\n\nnew\n\n## Rolling restart\n\n<!-- rolling-restart:begin -->\nfigures\n<!-- rolling-restart:end -->\n\nnotes\n\n## Reproduce\n\nnew\n"
	if got != want {
		t.Fatalf("KeepRolling =\n%s\nwant\n%s", got, want)
	}
	if KeepRolling(md, []byte("# B\n")) != md {
		t.Fatal("a file without the section changed the report")
	}
}

// Load reads the scenario results and skips the files of commands with
// their own report (cmd/rolling, cmd/soak), whose shape differs.
func TestLoadSkipsOtherReports(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("fanout.json", `{"scenario":"fanout","runs":1}`)
	write("rolling.json", `{"runs":[{"server":"gateway"}]}`)
	write("soak.json", `{"scenario":"soak","fits":[]}`)
	all, _, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all["fanout"] == nil {
		t.Fatalf("loaded %v, want fanout only", all)
	}
}

// The rows of issue 13's figures: batch sizes, the batched burst, RSS
// per client under load and the host's syscall cost.
func TestReportIssue13Rows(t *testing.T) {
	dir := t.TempDir()
	mk := func(vals map[string]float64) *ServerResults {
		s := &ServerResults{OK: true, Figures: map[string]stats.Spread{}}
		for k, v := range vals {
			s.Figures[k] = stats.SpreadOf([]float64{v})
		}
		s.Runs = []scenario.Result{{Type: "result", OK: true, Totals: &scenario.Totals{}}}
		return s
	}
	write := func(name string, v any) {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("rooms100.json", ScenarioResults{Scenario: "rooms100", Runs: 1,
		LoadgenArgs: []string{"-scenario", "e2e", "-clients", "1000", "-rooms", "100", "-rates", "1000", "-batch", "100"},
		Servers: map[string]*ServerResults{
			"gateway": mk(map[string]float64{"p99_ms@1000": 5, "mean_batch_events@1000": 100, "server_mean_batch_events@1000": 100}),
			"node":    mk(map[string]float64{"p99_ms@1000": 9, "mean_batch_events@1000": 100}),
		}})
	write("burstbatch.json", ScenarioResults{Scenario: "burstbatch", Runs: 1,
		LoadgenArgs: []string{"-scenario", "burst", "-clients", "1000", "-burst-events", "1000", "-burst-batch", "1000"},
		Servers: map[string]*ServerResults{
			"gateway": mk(map[string]float64{"deliveries_per_sec": 900000, "mean_batch_events": 1000}),
			"node":    mk(map[string]float64{"deliveries_per_sec": 300000, "mean_batch_events": 1000}),
		}})
	write("fanout10k.json", ScenarioResults{Scenario: "fanout10k", Runs: 1,
		LoadgenArgs: []string{"-scenario", "fanout", "-clients", "10000"},
		Servers: map[string]*ServerResults{
			"gateway": mk(map[string]float64{"rss_per_client_kb@1": 12.5, "rss_per_client_kb@2": 13, "knee_rss_per_client_kb": 14}),
			"node":    mk(map[string]float64{"rss_per_client_kb@1": 25, "rss_per_client_kb@2": 26}),
		}})
	write("machine.json", Machine{CPUs: 2, CPUModel: "test cpu",
		SyscallCost: &SyscallCost{WriteNs: 1400, WritevPerBufferNs: 95, BufferBytes: 128, WritevBuffers: 16, Conns: 32, Rounds: 8}})
	out := filepath.Join(dir, "out")
	if err := Write(dir, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"| syscall cost: CPU per 128-byte `write` on loopback TCP | 1400 ns",
		"| syscall cost: CPU per buffer of a 16 × 128-byte `writev` | 95 ns",
		"1000 events/s in batches of exactly 100 (10k deliveries/s): p50 (ms)",
		"| Rooms100 1000/s: mean events per request posted | 100 | 100 | – |",
		"| Rooms100 1000/s: mean events per request, as the server counted them | 100 | – | – |",
		"| Batched burst, 1k clients, 1000 events as fast as possible, in requests of 1000 (gateway: publish API; peers: /_bench/emit): deliveries/s | 900,000 | 300,000 | 3.00× ✓ |",
		"| Fan-out 10k: server RSS per client under load, 10k deliveries/s (KB; RSS growth since before any client, highest reading of the step) | 12.5 | 25.0 | 0.50× ✓ |",
		"| Fan-out 10k: server RSS per client at the knee (KB) | 14.0 | no knee",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
