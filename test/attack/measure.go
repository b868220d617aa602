package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// record collects the figures every attack reports: the gateway's RSS,
// goroutines and heap before, at their peak during, and after the attack;
// whether /livez kept answering; and the honest client's latencies.
type record struct {
	mu      sync.Mutex
	rss     triple
	gor     triple
	heap    triple
	livez   *livezStats
	honest  map[string]any
	logs    map[string]any
	stopped []func()
}

// triple is a figure before, at its peak during, and after an attack; -1
// where it could not be read.
type triple struct {
	before, peak, after float64
	set                 bool
}

func (t triple) json(digits int) map[string]any {
	if !t.set {
		return nil
	}
	r := func(x float64) any {
		if x < 0 {
			return nil
		}
		return round(x, digits)
	}
	return map[string]any{"before": r(t.before), "peak": r(t.peak), "after": r(t.after)}
}

func newRecord() *record { return &record{} }

// figures is what the record adds to the attack's JSON line.
func (r *record) figures() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]any{}
	if m := r.rss.json(1); m != nil {
		out["rss_mb"] = m
	}
	if m := r.gor.json(0); m != nil {
		out["goroutines"] = m
	}
	if m := r.heap.json(1); m != nil {
		out["heap_mb"] = m
	}
	if r.livez != nil {
		out["livez"] = r.livez.json()
	}
	if r.honest != nil {
		out["honest"] = r.honest
	}
	if r.logs != nil {
		out["log"] = r.logs
	}
	return out
}

// sample is one reading of the process.
type sample struct {
	rssMB, heapMB float64
	goroutines    float64
}

// read reads the process now: RSS from /proc, goroutines and heap from the
// profiler (-1 when it does not answer).
func read(g *gwProc) sample {
	s := sample{rssMB: rssMB(g.pid), heapMB: -1, goroutines: -1}
	if g.debug != "" {
		s.goroutines = goroutines(g.debug)
		s.heapMB = heapMB(g.debug)
	}
	return s
}

// begin takes the "before" figures and starts sampling (RSS every 100 ms,
// goroutines and heap every 500 ms) and probing /livez every 100 ms, until
// end.
func (r *record) begin(g *gwProc) {
	s := read(g)
	r.mu.Lock()
	r.rss = triple{before: s.rssMB, peak: s.rssMB, after: -1, set: true}
	r.gor = triple{before: s.goroutines, peak: s.goroutines, after: -1, set: g.debug != ""}
	r.heap = triple{before: s.heapMB, peak: s.heapMB, after: -1, set: g.debug != ""}
	r.livez = &livezStats{}
	r.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // RSS
		defer wg.Done()
		every(ctx, 100*time.Millisecond, 0, func() {
			v := rssMB(g.pid)
			r.mu.Lock()
			r.rss.peak = max(r.rss.peak, v)
			r.mu.Unlock()
		})
	}()
	go func() { // goroutines and heap
		defer wg.Done()
		if g.debug == "" {
			return
		}
		every(ctx, 500*time.Millisecond, 0, func() {
			n, h := goroutines(g.debug), heapMB(g.debug)
			r.mu.Lock()
			r.gor.peak = max(r.gor.peak, n)
			r.heap.peak = max(r.heap.peak, h)
			r.mu.Unlock()
		})
	}()
	go func() { // /livez
		defer wg.Done()
		every(ctx, 100*time.Millisecond, 0, func() { r.livez.probe(g.addr) })
	}()
	r.stopped = append(r.stopped, func() { cancel(); wg.Wait() })
}

// end stops sampling, waits settle, and takes the "after" figures.
func (r *record) end(g *gwProc, settle time.Duration) {
	for _, f := range r.stopped {
		f()
	}
	r.stopped = nil
	if g.exited() {
		return
	}
	time.Sleep(settle)
	s := read(g)
	r.mu.Lock()
	r.rss.after = s.rssMB
	r.gor.after = s.goroutines
	r.heap.after = s.heapMB
	r.rss.peak = max(r.rss.peak, s.rssMB)
	r.gor.peak = max(r.gor.peak, s.goroutines)
	r.heap.peak = max(r.heap.peak, s.heapMB)
	r.mu.Unlock()
}

// setLogs records the log the gateway wrote during the attack.
func (r *record) setLogs(lines, bytes int64) {
	r.mu.Lock()
	r.logs = map[string]any{"lines": lines, "bytes": bytes}
	r.mu.Unlock()
}

// livezStats: a probe on a new connection every 100 ms, 2 s timeout.
type livezStats struct {
	mu       sync.Mutex
	probes   int
	failures int
	maxMS    float64
	firstErr string
}

const livezTimeout = 2 * time.Second

func (l *livezStats) probe(addr string) {
	start := time.Now()
	ok, err := probeLivez(addr)
	ms := float64(time.Since(start).Microseconds()) / 1000
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probes++
	l.maxMS = max(l.maxMS, ms)
	if !ok {
		l.failures++
		if l.firstErr == "" && err != nil {
			l.firstErr = err.Error()
		}
	}
}

func (l *livezStats) json() map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]any{"probes": l.probes, "failures": l.failures, "max_ms": round(l.maxMS, 1)}
	if l.firstErr != "" {
		m["first_error"] = l.firstErr
	}
	return m
}

// kubeletAddr is the loopback address the probes come from: a kubelet's
// is the node's, not an attacker's.
var kubeletAddr = net.IPv4(127, 0, 0, 3)

// probeLivez is what a kubelet does: a new connection (from kubeletAddr),
// GET /livez, 200. It probes the main port, as a deployment without
// metrics-addr does (the manifests probe the metrics listener, outside the
// main port's connection bounds).
func probeLivez(addr string) (bool, error) {
	d := net.Dialer{Timeout: livezTimeout, LocalAddr: &net.TCPAddr{IP: kubeletAddr}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(livezTimeout))
	if _, err := c.Write([]byte("GET /livez HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")); err != nil {
		return false, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return false, fmt.Errorf("livez: %w", err)
	}
	return strings.HasPrefix(line, "HTTP/1.1 200"), nil
}

// rssMB is VmRSS of pid in MB (10^6 bytes), -1 when unreadable.
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb * 1024 / 1e6
			}
		}
	}
	return -1
}

// goroutines reads the total of the profiler's goroutine profile; -1 when
// it does not answer.
func goroutines(debug string) float64 {
	_, b, err := httpGet("http://"+debug+"/debug/pprof/goroutine?debug=1", 5*time.Second)
	if err != nil {
		return -1
	}
	return parseGoroutines(b)
}

func parseGoroutines(b []byte) float64 {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	rest, ok := bytes.CutPrefix(line, []byte("goroutine profile: total "))
	if !ok {
		return -1
	}
	n, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64)
	if err != nil {
		return -1
	}
	return n
}

// heapMB is HeapAlloc (live and not yet collected heap) in MB, from the
// runtime.MemStats the heap profile ends with; -1 when unreadable.
func heapMB(debug string) float64 {
	_, b, err := httpGet("http://"+debug+"/debug/pprof/heap?debug=1", 5*time.Second)
	if err != nil {
		return -1
	}
	return parseMemStat(b, "HeapAlloc") / 1e6
}

func parseMemStat(b []byte, name string) float64 {
	key := []byte("# " + name + " = ")
	i := bytes.Index(b, key)
	if i < 0 {
		return -1e6
	}
	rest := b[i+len(key):]
	if j := bytes.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	n, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64)
	if err != nil {
		return -1e6
	}
	return n
}

// latencies summarizes durations.
type latencies []time.Duration

func (l latencies) json(sent int) map[string]any {
	m := map[string]any{"sent": sent, "received": len(l)}
	if len(l) == 0 {
		return m
	}
	s := append(latencies(nil), l...)
	sortLat(s)
	m["p50_ms"] = round(ms(s.quantile(0.50)), 2)
	m["p99_ms"] = round(ms(s.quantile(0.99)), 2)
	m["max_ms"] = round(ms(s[len(s)-1]), 2)
	return m
}

// quantile of sorted durations (nearest rank).
func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(l)))) - 1
	return l[min(max(i, 0), len(l)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
