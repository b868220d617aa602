package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgen/gateway/retry"
)

func init() {
	register(attack{"polling_stalled_100mb", "a long-polling client joins a room and stops polling while the room gets ~100 MB: bytes held, heap, its next poll", pollingStalled})
	register(attack{"binary_attachments", "20 sockets each send 9 binary attachments of 999 KB and hold back the 10th: RSS", binaryAttachments})
}

// pollingConnect opens a polling session, joins the namespace and
// subscribes to project_<project>.
func pollingConnect(g *gwProc, project string) (*polling, error) {
	p := newPolling(g, 30*time.Second)
	if st, err := p.handshake(); err != nil || st != 200 {
		return nil, fmt.Errorf("polling handshake: %d %v", st, err)
	}
	if st, err := p.post("40"); err != nil || st != 200 {
		return nil, fmt.Errorf("polling connect: %d %v", st, err)
	}
	if st, b, err := p.get(); err != nil || st != 200 || !bytes.Contains(b, []byte("40")) {
		return nil, fmt.Errorf("polling connect reply: %d %v %q", st, err, trunc(b, 80))
	}
	if st, err := p.post(`42["subscribe_project",{"project_id":"` + project + `"}]`); err != nil || st != 200 {
		return nil, fmt.Errorf("polling subscribe: %d %v", st, err)
	}
	if st, b, err := p.get(); err != nil || st != 200 || !bytes.Contains(b, []byte("subscribed_project")) {
		return nil, fmt.Errorf("polling subscribe reply: %d %v %q", st, err, trunc(b, 80))
	}
	return p, nil
}

// pollingStalled: 1,000 webhooks of 100 KB to a room (the honest
// client's baseline), then 1,000 more once a polling client has joined it
// and stopped polling.
func pollingStalled(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	h, err := startHonest(ctx, g)
	if err != nil {
		return nil, err
	}
	// A WebSocket client in the flooded room: does the room keep flowing?
	watcher, _, err := dialWS(ctx, g, nil, "")
	if err != nil {
		return nil, err
	}
	defer watcher.close()
	if refused, err := watcher.connect(nil); err != nil || refused != "" {
		return nil, fmt.Errorf("watcher connect: %v %s", err, refused)
	}
	var watched atomic.Int64
	watcher.onEvent = func(name string, _ json.RawMessage) {
		if name == "job_completed" {
			watched.Add(1)
		}
	}
	watcher.start()
	_ = watcher.emit("subscribe_project", map[string]any{"project_id": "flood"})

	const n, size = 1000, 100_000
	pad := strings.Repeat("x", size)
	statuses := map[int]int{}
	// flood sends n webhooks of 100 KB to project_flood on 4 connections.
	flood := func() time.Duration {
		var next atomic.Int64
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := newProducer(g)
				for {
					i := next.Add(1) - 1
					if i >= n || ctx.Err() != nil || time.Since(start) > 30*time.Second {
						return
					}
					body := fmt.Appendf(nil, `{"job_id":"f-%d-%d","status":"completed","project_id":"flood","result":{"blob":"%s"}}`, start.UnixNano(), i, pad)
					st, _, _ := p.webhook(body)
					mu.Lock()
					statuses[st]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	e.rec.begin(g)
	// The baseline: the same flood without the stalled poller.
	flood()
	retry.Sleep(ctx, 2*time.Second)
	poller, err := pollingConnect(g, "flood")
	if err != nil {
		return nil, err
	}
	h.setPhase("attack")
	sent := flood()
	retry.Sleep(ctx, 3*time.Second)
	// The poller comes back once.
	st, b, perr := poller.get()
	nextPoll := map[string]any{"status": st, "bytes": len(b)}
	if perr != nil {
		nextPoll["error"] = perr.Error()
	}
	if len(b) > 0 && len(b) < 200 {
		nextPoll["body"] = string(b)
	}
	e.endWithHonest(g, h, 3*time.Second)
	return map[string]any{
		"webhooks": n, "bytes_to_room_mb": round(float64(n*size)/1e6, 1), "sent_in_s": round(sent.Seconds(), 1),
		"baseline":         "the same flood before the poller joined",
		"webhook_statuses": statuses, "websocket_client_in_room_received": watched.Load(), "stalled_poller_next_poll": nextPoll,
	}, nil
}

// binaryAttachments: a BINARY_EVENT announcing 10 attachments (the
// library's most), 9 sent.
func binaryAttachments(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	const sockets, parts, partSize = 20, 9, 999_000
	// Ten placeholders: the library refuses more than ten attachments.
	header := `4510-["upload"`
	for i := range parts + 1 {
		header += fmt.Sprintf(`,{"_placeholder":true,"num":%d}`, i)
	}
	header += "]"
	part := bytes.Repeat([]byte{0xAB}, partSize)
	var conns []*sioConn
	sentParts, refused := 0, 0
	for range sockets {
		c, _, err := dialWS(ctx, g, nil, "")
		if err != nil {
			refused++
			continue
		}
		conns = append(conns, c)
		if r, err := c.connect(nil); err != nil || r != "" {
			refused++
			continue
		}
		c.start()
		// After the handshake race (README): the connection handler runs
		// just after the CONNECT reply.
		retry.Sleep(ctx, 100*time.Millisecond)
		if c.send(header) != nil {
			continue
		}
		for range parts {
			if c.sendBinary(part) != nil {
				break
			}
			sentParts++
		}
	}
	retry.Sleep(ctx, 10*time.Second)
	closed := 0
	reasons := map[string]int{}
	for _, c := range conns {
		if c.isClosed() {
			closed++
			reasons[closeReason(c.closeErr)]++
		}
		c.close()
	}
	e.rec.end(g, 3*time.Second)
	return map[string]any{
		"sockets": sockets, "attachments_sent": sentParts, "bytes_sent_mb": round(float64(sentParts*partSize)/1e6, 1),
		"closed_by_server": closed, "close_reasons": reasons, "refused": refused,
	}, nil
}
