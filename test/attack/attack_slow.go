package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/meshgen/gateway/retry"
)

func init() {
	register(attack{"slow_http", "a body at one byte per 5 s (producer and polling route), an idle keep-alive, slow headers: when does the server let go (65 s)", slowHTTP})
	register(attack{"slow_bodies_5000", "5,000 webhook bodies (well-formed signature header, 1,000 bytes announced) at one byte per 5 s, held 25 s: goroutines, statuses", func(ctx context.Context, e *env) (map[string]any, error) {
		return slowBodies5000(ctx, e, wellFormedSignature)
	}})
	register(attack{"slow_bodies_5000_unsigned", "the same without a signature header (refused 401 before the body is read)", func(ctx context.Context, e *env) (map[string]any, error) {
		return slowBodies5000(ctx, e, "")
	}})
	register(attack{"idle_keepalive_fd256", "300 idle keep-alives against a process limited to 256 open files: does /livez answer", idleKeepaliveFD256})
	register(attack{"stalled_webhooks_unsigned", "300 unsigned webhooks stalled 960 KiB into a 1 MiB body: RSS", func(ctx context.Context, e *env) (map[string]any, error) {
		return stalledWebhooks(ctx, e, "")
	}})
	register(attack{"stalled_webhooks_wrong_sig", "the same with a well-formed, wrong signature header (passes the header check, so the body is read)", func(ctx context.Context, e *env) (map[string]any, error) {
		return stalledWebhooks(ctx, e, wellFormedSignature)
	}})
	register(attack{"sigterm_slow_body", "SIGTERM while a slow body is in flight: exit code and time to exit", sigtermSlowBody})
}

// drip sends one byte of body every interval to each open conn until ctx
// ends or limit passes.
func drip(ctx context.Context, conns []*rawConn, interval, limit time.Duration) {
	every(ctx, interval, limit, func() {
		for _, c := range conns {
			if !c.isClosed() {
				_ = c.write([]byte("x"), time.Second)
			}
		}
	})
}

// slowHTTP: one connection of each kind, watched for 65 s.
func slowHTTP(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	// A polling session for the non-producer body.
	p := newPolling(g, 10*time.Second)
	if st, err := p.handshake(); err != nil || st != 200 {
		return nil, fmt.Errorf("polling handshake: %d %v", st, err)
	}
	e.rec.begin(g)

	const watch = 65 * time.Second
	kinds := []struct {
		name string
		head []byte
	}{
		{"producer_body", postHead(g.addr, "/api/webhooks/modal", 1000, wellFormedSignature)},
		{"polling_body", postHead(g.addr, "/socket.io/?EIO=4&transport=polling&sid="+p.sid, 1000)},
		{"idle_keepalive", []byte("GET /livez HTTP/1.1\r\nHost: " + g.addr + "\r\n\r\n")},
		{"slow_headers", []byte("GET /livez HTTP/1.1\r\n")},
	}
	conns := make([]*rawConn, len(kinds))
	for i, k := range kinds {
		c, err := dialRaw(ctx, g.addr, nil)
		if err != nil {
			return nil, err
		}
		defer c.close()
		if err := c.write(k.head, 5*time.Second); err != nil {
			return nil, err
		}
		conns[i] = c
	}
	// Bodies and headers one byte per 5 s.
	every(ctx, 5*time.Second, watch, func() {
		for i, k := range kinds {
			c := conns[i]
			if c.isClosed() {
				continue
			}
			switch k.name {
			case "producer_body", "polling_body":
				_ = c.write([]byte("x"), time.Second)
			case "slow_headers":
				_ = c.write([]byte("X"), time.Second)
			}
		}
	})
	out := map[string]any{"watched_s": watch.Seconds(), "interval_s": 5}
	for i, k := range kinds {
		out[k.name] = conns[i].result()
		conns[i].close()
	}
	e.rec.end(g, 2*time.Second)
	return out, nil
}

// slowBodies5000: 5,000 slow webhook bodies opened over 5 s and held 25 s.
func slowBodies5000(ctx context.Context, e *env, sigHeader string) (map[string]any, error) {
	g, h, err := startWithHonest(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()

	const n = 5000
	var extra []string
	if sigHeader != "" {
		extra = append(extra, sigHeader)
	}
	head := postHead(g.addr, "/api/webhooks/modal", 1000, extra...)
	conns := make([]*rawConn, 0, n)
	dialErrs := 0
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		c, err := dialRaw(ctx, g.addr, nil)
		if err != nil {
			dialErrs++
			continue
		}
		if c.write(head, time.Second) == nil {
			_ = c.write([]byte("{"), time.Second)
		}
		conns = append(conns, c)
		if i%1000 == 999 { // 1,000 a second
			retry.Sleep(ctx, time.Until(start.Add(time.Duration(i/1000+1)*time.Second)))
		}
	}
	opened := time.Since(start)
	drip(ctx, conns, 5*time.Second, 25*time.Second)
	counts, closed := statusCounts(conns)
	stillOpen := len(conns) - closed
	times := closeTimes(conns)
	for _, c := range conns {
		c.close()
	}
	e.endWithHonest(g, h, 3*time.Second)
	return map[string]any{
		"connections": len(conns), "signature_header": sigHeader != "", "dial_errors": dialErrs, "opened_in_s": round(opened.Seconds(), 1), "held_s": 25,
		"statuses": counts, "closed_by_server": closed, "open_at_end": stillOpen, "close_times": times,
	}, nil
}

// idleKeepaliveFD256: 300 idle keep-alives (each after one GET /livez)
// against a gateway limited to 256 open files; held 10 s, then 10 s more
// reopening each within 10 ms of the server closing it.
func idleKeepaliveFD256(ctx context.Context, e *env) (map[string]any, error) {
	g, h, err := startWithHonest(ctx, e, gwOpts{nofile: 256})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	g.log.watch("too many open files")

	const n = 300
	req := []byte("GET /livez HTTP/1.1\r\nHost: " + g.addr + "\r\n\r\n")
	open := func() *rawConn {
		c, err := dialRaw(ctx, g.addr, nil)
		if err != nil {
			return nil
		}
		_ = c.write(req, time.Second)
		return c
	}
	// Phase 1: 300 opened once and held.
	ph1 := &livezStats{}
	slots := make([]*rawConn, n)
	for i := range slots {
		slots[i] = open()
	}
	probeFor(ctx, g, ph1, 10*time.Second, nil)
	var all []*rawConn
	all = append(all, slots...)
	answered1, closed1 := 0, 0
	for _, c := range slots {
		if c == nil {
			continue
		}
		if r := c.result(); r["status"] == 200 {
			answered1++
		}
		if c.isClosed() {
			closed1++
		}
	}
	// Phase 2: each slot reopened within 10 ms of being closed (at most
	// 50 times per slot), the probes as before.
	ph2 := &livezStats{}
	reopened := 0
	reopen := make([]int, n)
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for retry.Sleep(pctx, 10*time.Millisecond) {
			for i, c := range slots {
				if (c == nil || c.isClosed()) && reopen[i] < 50 {
					reopen[i]++
					reopened++
					if slots[i] = open(); slots[i] != nil {
						all = append(all, slots[i])
					}
				}
			}
		}
	}()
	probeFor(ctx, g, ph2, 10*time.Second, nil)
	cancel()
	<-done
	held := 0
	for _, c := range slots {
		if c != nil && !c.isClosed() {
			held++
		}
	}
	for _, c := range all {
		if c != nil {
			c.close()
		}
	}
	e.endWithHonest(g, h, 2*time.Second)
	return map[string]any{
		"nofile": 256, "keepalives": n,
		"held_phase":              map[string]any{"answered_200": answered1, "closed_by_server": closed1, "livez": ph1.json()},
		"reopen_phase":            map[string]any{"reopened": reopened, "held_at_end": held, "livez": ph2.json()},
		"log_too_many_open_files": g.log.count("too many open files"), "log_lines_not_json": g.log.nonJSONLines(),
	}, nil
}

// probeFor probes /livez every 100 ms for d into l, calling each (when
// set) before every probe.
func probeFor(ctx context.Context, g *gwProc, l *livezStats, d time.Duration, each func()) {
	every(ctx, 100*time.Millisecond, d, func() {
		if each != nil {
			each()
		}
		l.probe(g.addr)
	})
}

// stalledWebhooks: 300 webhooks announcing 1 MiB, stalled after 960 KiB,
// held 12 s (the new build's body timeout is 10 s).
func stalledWebhooks(ctx context.Context, e *env, sigHeader string) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	const n, length, sent = 300, 1 << 20, 960 << 10
	var extra []string
	if sigHeader != "" {
		extra = append(extra, sigHeader)
	}
	head := postHead(g.addr, "/api/webhooks/modal", length, extra...)
	chunk := []byte("{\"job_id\":\"stall\",\"pad\":\"" + strings.Repeat("a", sent-25))
	conns := make([]*rawConn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range conns {
		c, err := dialRaw(ctx, g.addr, nil)
		if err != nil {
			continue
		}
		conns[i] = c
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if c.write(head, 5*time.Second) == nil {
				_ = c.write(chunk, 5*time.Second)
			}
		}()
	}
	wg.Wait()
	retry.Sleep(ctx, 12*time.Second)
	var live []*rawConn
	total := 0
	for _, c := range conns {
		if c != nil {
			live = append(live, c)
			total += c.sentLen
		}
	}
	counts, closed := statusCounts(live)
	for _, c := range live {
		c.close()
	}
	e.rec.end(g, 3*time.Second)
	return map[string]any{
		"requests": n, "announced_bytes": length, "stalled_at_bytes": sent, "signature_header": sigHeader != "",
		"bytes_written_mb": round(float64(total)/1e6, 1), "statuses": counts, "closed_by_server": closed,
	}, nil
}

// sigtermSlowBody: SIGTERM 2 s into a slow body on the webhook, on a
// polling POST, and with nothing in flight (the control).
func sigtermSlowBody(ctx context.Context, e *env) (map[string]any, error) {
	out := map[string]any{}
	for _, kind := range []string{"none", "producer_body", "polling_body"} {
		g, err := startGateway(ctx, e, gwOpts{noDebug: true})
		if err != nil {
			return nil, err
		}
		var c *rawConn
		if kind != "none" {
			head := postHead(g.addr, "/api/webhooks/modal", 1000, wellFormedSignature)
			if kind == "polling_body" {
				p := newPolling(g, 10*time.Second)
				if st, err := p.handshake(); err != nil || st != 200 {
					g.kill()
					return nil, fmt.Errorf("polling handshake: %d %v", st, err)
				}
				head = postHead(g.addr, "/socket.io/?EIO=4&transport=polling&sid="+p.sid, 1000)
			}
			if c, err = dialRaw(ctx, g.addr, nil); err != nil {
				g.kill()
				return nil, err
			}
			_ = c.write(head, time.Second)
			dctx, cancel := context.WithCancel(ctx)
			go drip(dctx, []*rawConn{c}, 5*time.Second, 50*time.Second)
			defer cancel()
			retry.Sleep(ctx, 2*time.Second)
		}
		code, took := g.stop()
		r := map[string]any{"exit_code": code, "exit_after_s": round(took.Seconds(), 1)}
		if c != nil {
			r["slow_request"] = c.result()
			c.close()
		}
		out[kind] = r
	}
	return out, nil
}
