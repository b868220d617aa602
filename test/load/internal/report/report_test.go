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
