// Command attack runs the attacks of docs/security.md against a gateway
// binary it starts itself on 127.0.0.1, measures what each does to the
// process, and prints one JSON line per attack.
//
//	go run ./test/attack -gateway bin/gateway -label after
//	go run ./test/attack -gateway /tmp/gw-before/bin/gateway -label before -only slow_http,rooms_200k
//
// Every attack starts its own gateway (and, when it needs one, its own
// redis-server on a free port in a temporary directory), with the
// configuration it needs, and stops them. Every loop is bounded in count
// and time, and each attack in total (about a minute at most). Traffic goes
// to loopback only: -host must be a loopback address.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// attack is one scripted attack.
type attack struct {
	name string
	// about is one line for -list.
	about string
	run   func(ctx context.Context, e *env) (map[string]any, error)
}

// attacks; the files attack_*.go register them, and they run in the
// order of docs/security.md (runOrder).
var attacks []attack

func register(a attack) { attacks = append(attacks, a) }

// runOrder is the order of docs/security.md; an attack not listed runs
// last.
var runOrder = []string{
	"slow_http", "slow_bodies_5000", "slow_bodies_5000_unsigned", "idle_keepalive_fd256", "stalled_webhooks_unsigned", "stalled_webhooks_wrong_sig", "sigterm_slow_body",
	"polling_stalled_100mb", "binary_attachments",
	"rooms_200k", "follows_20k", "handshakes_20k", "handshakes_20k_200addrs", "max_clients_default",
	"invalid_subscribe_20k", "request_id_900k",
	"eio_close_ws", "polling_post_over_limit", "origin_403_body", "metrics_port",
	"cross_project", "replay", "shared_secret", "dns_rebinding_origin",
	"connect_cycles", "malformed_packets", "flask_pickle",
}

func position(name string) int {
	if i := slices.Index(runOrder, name); i >= 0 {
		return i
	}
	return len(runOrder)
}

// env is what an attack gets: where the binaries are and where to report.
type env struct {
	gateway string // gateway binary
	redis   string // redis-server binary
	host    string // loopback address everything listens on
	label   string
	// rec collects the figures of the attack that runs now.
	rec *record
}

func main() {
	var (
		gw    = flag.String("gateway", "bin/gateway", "gateway binary to attack")
		redis = flag.String("redis-server", "redis-server", "redis-server binary (attacks that need Redis)")
		host  = flag.String("host", "127.0.0.1", "loopback address the gateway listens on (anything else is refused)")
		label = flag.String("label", "", "label of the build in every JSON line (before, after)")
		only  = flag.String("only", "", "comma-separated attack names (default: all)")
		skip  = flag.String("skip", "", "comma-separated attack names to leave out")
		list  = flag.Bool("list", false, "list the attacks and exit")
	)
	flag.Parse()
	slices.SortStableFunc(attacks, func(a, b attack) int { return position(a.name) - position(b.name) })
	if *list {
		for _, a := range attacks {
			fmt.Printf("%-24s %s\n", a.name, a.about)
		}
		return
	}
	if err := loopbackOnly(*host); err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(2)
	}
	bin, err := exists(*gw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(2)
	}
	names := split(*only)
	for _, n := range append(split(*skip), names...) {
		if !slices.ContainsFunc(attacks, func(a attack) bool { return a.name == n }) {
			fmt.Fprintf(os.Stderr, "attack: no attack %q (-list lists them)\n", n)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	failed := 0
	for _, a := range attacks {
		if (len(names) > 0 && !slices.Contains(names, a.name)) || slices.Contains(split(*skip), a.name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		e := &env{gateway: bin, redis: *redis, host: *host, label: *label, rec: newRecord()}
		fmt.Fprintf(os.Stderr, "attack: %s (%s)\n", a.name, *label)
		load := loadAverage()
		start := time.Now()
		// Each attack bounds itself; this is the backstop.
		actx, cancel := context.WithTimeout(ctx, 150*time.Second)
		outcome, err := a.run(actx, e)
		cancel()
		line := map[string]any{
			"attack":     a.name,
			"build":      *label,
			"duration_s": round(time.Since(start).Seconds(), 1),
			// The machine is shared: its load when the attack began.
			"loadavg_1m": load,
		}
		for k, v := range e.rec.figures() {
			line[k] = v
		}
		if outcome != nil {
			line["outcome"] = outcome
		}
		if err != nil {
			line["error"] = err.Error()
			failed++
		}
		b, _ := json.Marshal(line)
		fmt.Println(string(b))
	}
	if failed > 0 {
		os.Exit(1)
	}
}

// loopbackOnly refuses any target that is not a loopback address.
func loopbackOnly(host string) error {
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing target %q: only a loopback address (127.0.0.0/8, ::1) may be attacked", host)
	}
	return nil
}

func exists(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("gateway binary: %w", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("gateway binary %s is not an executable file", path)
	}
	return path, nil
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadAverage is the machine's 1-minute load average (-1 when unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
