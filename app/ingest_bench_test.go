package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/meshgen/gateway/signature"
	"github.com/meshgen/gateway/webhook"
)

// ingestSecret is the webhook secret of the ingest benchmark.
const ingestSecret = "bench-secret-of-at-least-32-bytes-long"

// ingestBody is the load harness's ingest webhook (test/load
// internal/source Webhook.Body) for job seq: a completed job of a project
// nobody is in, every job id new.
func ingestBody(seq int64) []byte {
	b := make([]byte, 0, 512)
	b = append(b, `{"job_id":"lg-ingest-nobody-`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","status":"completed","project_id":"ingest-nobody","result":{"ts":1764690000000000000,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"st":0,"success":true,"s3_output_path":"s3://bench/ingest-nobody/`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `.msh","strategy":"Tetrahedral (Delaunay)","quality_metrics":{"sicn_avg":0.85,"total_elements":125032},"metrics":{"total_time_seconds":45.2}}}`...)
	return b
}

// ingestApp serves an app as the load harness starts the gateway
// (development, in-process bus, the webhook secret set, text log at warn)
// until the benchmark ends: the bus consumer runs, so publishes never wait
// for a full queue.
func ingestApp(b *testing.B) (*App, string) {
	b.Helper()
	cfg := devConfig()
	cfg.ModalWebhookSecrets = []string{ingestSecret}
	cfg.HandshakeRate, cfg.HandshakeRatePerIP = 0, 0
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := New(cfg, log, "bench")
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	return a, ln.Addr().String()
}

// BenchmarkWebhookIngest is one verified webhook through the app's whole
// HTTP stack in process (the middleware chain, the per-client in-flight
// share, the signed body, the handler, the in-process bus with dedupe):
// the ingest scenario of the load harness without the network.
func BenchmarkWebhookIngest(b *testing.B) {
	a, _ := ingestApp(b)
	h := a.Handler()
	secret := []byte(ingestSecret)
	var seq int64
	b.ReportAllocs()
	for b.Loop() {
		seq++
		body := ingestBody(seq)
		req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webhook.SignatureHeader, signature.Header(string(secret), body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("answer %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkWebhookIngestHTTP is BenchmarkWebhookIngest over a loopback
// keep-alive connection to the app's listener (the server's connection
// handling, the connection bounds and the read deadlines included; the
// client's work is in the figures too).
func BenchmarkWebhookIngestHTTP(b *testing.B) {
	_, addr := ingestApp(b)
	url := "http://" + addr + webhook.Path
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	b.Cleanup(client.CloseIdleConnections)
	var seq int64
	b.ReportAllocs()
	for b.Loop() {
		seq++
		body := ingestBody(seq)
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webhook.SignatureHeader, signature.Header(ingestSecret, body))
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		answer, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("answer %d %s: %v", resp.StatusCode, answer, err)
		}
	}
}
