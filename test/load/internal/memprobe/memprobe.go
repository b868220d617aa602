// Package memprobe reads a server's live heap and goroutine count after a
// forced garbage collection, for the idle scenario's per-connection
// figures: the gateway through Go's profiler (its debug-addr listener,
// /debug/pprof/heap?gc=1 and /debug/pprof/goroutine), node through the
// peer's bench-only GET /_bench/mem (process.memoryUsage() after gc()).
package memprobe

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sample is one reading. Goroutines is -1 where the runtime has none.
type Sample struct {
	HeapBytes  int64 `json:"heap_bytes"`
	Goroutines int64 `json:"goroutines"`
}

var client = &http.Client{Timeout: 20 * time.Second}

// Read samples base (the profiler's or the node peer's base URL).
func Read(ctx context.Context, base string) (Sample, error) {
	base = strings.TrimRight(base, "/")
	if s, err := readPprof(ctx, base); err == nil {
		return s, nil
	}
	return readNode(ctx, base)
}

func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("memprobe: %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("memprobe: %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("memprobe: %s: status %d", url, resp.StatusCode)
	}
	return body, nil
}

// readPprof parses "# HeapAlloc = N" of the text heap profile (after the
// profiler's forced GC) and "goroutine profile: total N".
func readPprof(ctx context.Context, base string) (Sample, error) {
	heap, err := get(ctx, base+"/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return Sample{}, err
	}
	s := Sample{HeapBytes: -1, Goroutines: -1}
	sc := bufio.NewScanner(strings.NewReader(string(heap)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			s.HeapBytes, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			break
		}
	}
	g, err := get(ctx, base+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		return Sample{}, err
	}
	line, _, _ := strings.Cut(string(g), "\n")
	if v, ok := strings.CutPrefix(line, "goroutine profile: total "); ok {
		s.Goroutines, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	}
	if s.HeapBytes < 0 {
		return Sample{}, fmt.Errorf("memprobe: %s: no HeapAlloc in the heap profile", base)
	}
	return s, nil
}

// readNode reads the node peer's GET /_bench/mem.
func readNode(ctx context.Context, base string) (Sample, error) {
	body, err := get(ctx, base+"/_bench/mem")
	if err != nil {
		return Sample{}, err
	}
	var m struct {
		HeapUsed int64 `json:"heapUsed"`
		External int64 `json:"external"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return Sample{}, fmt.Errorf("memprobe: %s/_bench/mem: %w", base, err)
	}
	// V8's heap plus the buffers it owns outside it, the counterpart of
	// Go's heap (where every buffer lives).
	return Sample{HeapBytes: m.HeapUsed + m.External, Goroutines: -1}, nil
}
