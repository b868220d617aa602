package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/meshgen/gateway/retry"
)

func init() {
	register(attack{"eio_close_ws", "an Engine.IO close packet \"1\" (then no pongs) and an invalid UTF-8 text frame (pongs answered) over WebSocket: time until the server closes (50 s)", eioCloseWS})
	register(attack{"polling_post_over_limit", "a chunked polling POST over the message size (and one with Content-Length): status", pollingPostOverLimit})
	register(attack{"origin_403_body", "a handshake from a refused Origin: status and body", origin403})
	register(attack{"metrics_port", "GET /metrics on the main port, with and without GATEWAY_METRICS_ADDR", metricsPort})
}

func eioCloseWS(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	type probe struct {
		name string
		send func(c *sioConn) error
	}
	probes := []probe{
		{"close_packet_1", func(c *sioConn) error {
			// A client that has closed answers no more pings.
			c.noPong.Store(true)
			return c.send("1")
		}},
		{"invalid_utf8_text_frame", func(c *sioConn) error {
			c.wmu.Lock()
			defer c.wmu.Unlock()
			return c.ws.WriteMessage(websocket.TextMessage, []byte{'4', '2', '[', '"', 0xff, 0xfe, '"', ']'})
		}},
	}
	conns := make([]*sioConn, len(probes))
	sentAt := make([]time.Time, len(probes))
	for i, p := range probes {
		c, _, err := dialWS(ctx, g, nil, "")
		if err != nil {
			return nil, err
		}
		defer c.close()
		if r, err := c.connect(nil); err != nil || r != "" {
			return nil, fmt.Errorf("connect: %v %s", err, r)
		}
		c.start()
		retry.Sleep(ctx, 100*time.Millisecond)
		sentAt[i] = time.Now()
		if err := p.send(c); err != nil {
			return nil, err
		}
		conns[i] = c
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Second)
	defer cancel()
	for _, c := range conns {
		select {
		case <-c.closed:
		case <-wctx.Done():
		}
	}
	out := map[string]any{"watched_s": 50}
	for i, p := range probes {
		c := conns[i]
		r := map[string]any{"closed": c.isClosed()}
		if c.isClosed() {
			r["closed_after_s"] = round(c.closedAt.Sub(sentAt[i]).Seconds(), 1)
			r["how"] = closeReason(c.closeErr)
		}
		out[p.name] = r
	}
	e.rec.end(g, time.Second)
	return out, nil
}

// unsized hides a reader's length, so the request is sent chunked.
type unsized struct{ io.Reader }

func pollingPostOverLimit(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	out := map[string]any{"limit_bytes": 1_000_000}
	for _, chunked := range []bool{true, false} {
		// 50 s: past the session's ping timeout (45 s).
		p := newPolling(g, 50*time.Second)
		if st, err := p.handshake(); err != nil || st != 200 {
			return nil, fmt.Errorf("polling handshake: %d %v", st, err)
		}
		start := time.Now()
		payload := "4" + strings.Repeat("x", 1_000_100)
		var body io.Reader = strings.NewReader(payload)
		if chunked {
			body = unsized{body}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url(), body)
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		key := "content_length"
		if chunked {
			key = "chunked"
		}
		resp, err := p.c.Do(req)
		if err != nil {
			out[key] = map[string]any{"error": trunc([]byte(err.Error()), 160), "after_s": round(time.Since(start).Seconds(), 1)}
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		out[key] = map[string]any{"status": resp.StatusCode, "body": trunc(b, 200), "bytes": len(payload), "after_s": round(time.Since(start).Seconds(), 1)}
	}
	e.rec.end(g, time.Second)
	return out, nil
}

func origin403(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{env: map[string]string{"CORS_ORIGINS": "https://app.example.com"}})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	out := map[string]any{"cors_origins": "https://app.example.com"}
	req := fmt.Sprintf("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\nOrigin: http://evil.test\r\nConnection: close\r\n\r\n", g.addr)
	st, resp, err := rawExchange(g.addr, []byte(req), 5*time.Second)
	if err != nil {
		return nil, err
	}
	out["polling_handshake"] = map[string]any{"status": st, "body": trunc(bodyOf(resp), 300)}
	_, code, err := dialWS(ctx, g, http.Header{"Origin": {"http://evil.test"}}, "")
	r := map[string]any{"status": code}
	if err != nil {
		r["error"] = trunc([]byte(err.Error()), 200)
	}
	out["websocket_handshake"] = r
	e.rec.end(g, time.Second)
	return out, nil
}

func metricsPort(ctx context.Context, e *env) (map[string]any, error) {
	out := map[string]any{}
	for _, separate := range []bool{false, true} {
		env := map[string]string{}
		mport := 0
		if separate {
			p, err := freePort(e.host)
			if err != nil {
				return nil, err
			}
			mport = p
			env["GATEWAY_METRICS_ADDR"] = fmt.Sprintf("%s:%d", e.host, p)
		}
		g, err := startGateway(ctx, e, gwOpts{env: env, noDebug: true})
		if err != nil {
			return nil, err
		}
		st, b, err := httpGet(g.base+"/metrics", 5*time.Second)
		r := map[string]any{"main_port_status": st, "main_port_bytes": len(b)}
		if err != nil {
			r["main_port_error"] = err.Error()
		}
		key := "default"
		if separate {
			key = "with_GATEWAY_METRICS_ADDR"
			st, b, err := httpGet(fmt.Sprintf("http://%s:%d/metrics", e.host, mport), 5*time.Second)
			r["metrics_port_status"] = st
			r["metrics_port_bytes"] = len(b)
			if err != nil {
				r["metrics_port_error"] = trunc([]byte(err.Error()), 120)
			}
		}
		out[key] = r
		g.stop()
	}
	return out, nil
}
