package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() {
	register(attack{"invalid_subscribe_20k", "20,000 invalid subscribe_project from one client in 3 s, then 50 clients within their rate: log lines written", invalidSubscribe})
	register(attack{"request_id_900k", "an unsigned webhook with a 900 KB X-Request-Id (and one of 60 KB, under the header limit): status, log bytes", requestID})
}

// logDelta runs f and returns the log lines and bytes the gateway wrote
// meanwhile (and in the next 500 ms).
func logDelta(g *gwProc, f func()) (int64, int64) {
	l0, b0 := g.log.snapshot()
	f()
	time.Sleep(500 * time.Millisecond)
	l1, b1 := g.log.snapshot()
	return l1 - l0, b1 - b0
}

func invalidSubscribe(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	invalid := func(int) any { return map[string]any{"project_id": map[string]any{"x": 1}} }

	one, err := newFlooder(ctx, g, nil)
	if err != nil {
		return nil, err
	}
	var sent int
	lines1, bytes1 := logDelta(g, func() {
		sent = one.emitPaced(ctx, 20_000, 3*time.Second, "subscribe_project", invalid)
		one.settle(ctx, 10*time.Second)
	})
	one.c.close()

	// 50 clients, each at 19 events a second (within the default 20) for
	// 10 s.
	var clients []*flooder
	for range 50 {
		f, err := newFlooder(ctx, g, nil)
		if err != nil {
			break
		}
		clients = append(clients, f)
	}
	var wg sync.WaitGroup
	lines2, bytes2 := logDelta(g, func() {
		for _, f := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.emitPaced(ctx, 190, 10*time.Second, "subscribe_project", invalid)
			}()
		}
		wg.Wait()
		time.Sleep(time.Second)
	})
	replies := map[string]int{}
	for _, f := range clients {
		for k, v := range f.counts.snapshot() {
			replies[k] += v
		}
		f.c.close()
	}
	e.rec.end(g, time.Second)
	return map[string]any{
		"one_client":             map[string]any{"emitted": sent, "replies": one.counts.snapshot(), "log_lines": lines1, "log_bytes": bytes1},
		"clients_50_within_rate": map[string]any{"clients": len(clients), "emitted": len(clients) * 190, "replies": replies, "log_lines": lines2, "log_bytes": bytes2},
	}, nil
}

func requestID(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	body := `{"job_id":"rid","status":"completed","project_id":"1"}`
	out := map[string]any{}
	for _, size := range []int{900_000, 60_000, 36} {
		id := strings.Repeat("a", size)
		req := fmt.Sprintf("POST /api/webhooks/modal HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n%s", g.addr, len(body), id, body)
		var status int
		var resp []byte
		var rerr error
		lines, bytes := logDelta(g, func() {
			status, resp, rerr = rawExchange(g.addr, []byte(req), 10*time.Second)
		})
		r := map[string]any{"status": status, "log_lines": lines, "log_bytes": bytes}
		if rerr != nil {
			r["error"] = rerr.Error()
		}
		// Whether the answer echoes the id as sent.
		r["answer_echoes_id"] = strings.Contains(string(resp), "X-Request-Id: "+id)
		out["x_request_id_"+strconv.Itoa(size)+"_bytes"] = r
	}
	e.rec.end(g, time.Second)
	return out, nil
}
