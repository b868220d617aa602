package memprobe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"testing"
)

// The Go profiler's answers (a real net/http/pprof handler).
func TestReadPprof(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s, err := Read(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if s.HeapBytes <= 0 || s.Goroutines <= 0 {
		t.Fatalf("got %+v, want a heap and goroutines", s)
	}
}

// The node peer's /_bench/mem (process.memoryUsage()).
func TestReadNode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_bench/mem" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"rss":1,"heapTotal":2,"heapUsed":1000,"external":24,"arrayBuffers":3}`))
	}))
	defer srv.Close()
	s, err := Read(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if s.HeapBytes != 1024 || s.Goroutines != -1 {
		t.Fatalf("got %+v, want heap 1024 (heapUsed + external), goroutines -1", s)
	}
}
