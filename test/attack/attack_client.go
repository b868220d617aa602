package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgen/gateway/retry"
	"github.com/redis/go-redis/v9"
)

func init() {
	register(attack{"rooms_200k", "one socket emits subscribe_project for 200,000 rooms over 15 s (and one at 15/s for 150): rooms joined, RSS, when cut", rooms200k})
	register(attack{"follows_20k", "one client emits subscribe_logs for 20,000 jobs (Redis): follows stored, first/last control events on disconnect", follows20k})
	register(attack{"handshakes_20k", "20,000 polling handshakes over 8 keep-alive sockets from one address: goroutines, heap", func(ctx context.Context, e *env) (map[string]any, error) {
		return handshakes(ctx, e, 1)
	}})
	register(attack{"handshakes_20k_200addrs", "the same from 200 loopback addresses (100 each): what the per-address rate leaves to the node-wide bounds", func(ctx context.Context, e *env) (map[string]any, error) {
		return handshakes(ctx, e, 200)
	}})
	register(attack{"max_clients_default", "900 polling sessions from 9 addresses against 1,024 open files: is the documented default max-clients (limit minus 256 = 768) applied", maxClientsDefault})
}

// flooder is one attacking WebSocket client counting what it gets back.
type flooder struct {
	c      *sioConn
	counts *eventCounter
	start  time.Time
}

func newFlooder(ctx context.Context, g *gwProc, auth any) (*flooder, error) {
	c, _, err := dialWS(ctx, g, nil, "")
	if err != nil {
		return nil, err
	}
	if refused, err := c.connect(auth); err != nil || refused != "" {
		c.close()
		return nil, fmt.Errorf("connect: %v %s", err, refused)
	}
	f := &flooder{c: c, counts: newEventCounter(), start: time.Now()}
	c.onEvent = f.counts.add
	c.start()
	retry.Sleep(ctx, 100*time.Millisecond) // past the handshake race
	return f, nil
}

// emitPaced emits n events (payload(i)) spread over d in batches every
// 50 ms, until the server closes the connection.
func (f *flooder) emitPaced(ctx context.Context, n int, d time.Duration, event string, payload func(i int) any) int {
	ticks := int(d / (50 * time.Millisecond))
	per := max(1, (n+ticks-1)/ticks)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	sent := 0
	for sent < n {
		for range per {
			if sent == n {
				break
			}
			if f.c.emit(event, payload(sent)) != nil {
				return sent
			}
			sent++
		}
		select {
		case <-ctx.Done():
			return sent
		case <-f.c.closed:
			return sent
		case <-t.C:
		}
	}
	return sent
}

// settle waits until the replies stop changing for 2 s (at most limit).
func (f *flooder) settle(ctx context.Context, limit time.Duration) {
	end := time.Now().Add(limit)
	last, same := -1, 0
	for time.Now().Before(end) && ctx.Err() == nil {
		total := 0
		for _, v := range f.counts.snapshot() {
			total += v
		}
		if total == last {
			if same++; same >= 4 {
				return
			}
		} else {
			last, same = total, 0
		}
		if f.c.isClosed() {
			return
		}
		retry.Sleep(ctx, 500*time.Millisecond)
	}
}

func (f *flooder) closedAfter() any {
	if !f.c.isClosed() {
		return nil
	}
	return round(f.c.closedAt.Sub(f.start).Seconds(), 1)
}

func rooms200k(ctx context.Context, e *env) (map[string]any, error) {
	g, h, err := startWithHonest(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()

	fast, err := newFlooder(ctx, g, nil)
	if err != nil {
		return nil, err
	}
	polite, err := newFlooder(ctx, g, nil)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	var politeSent int
	wg.Add(1)
	go func() {
		defer wg.Done()
		politeSent = polite.emitPaced(ctx, 150, 10*time.Second, "subscribe_project", func(i int) any {
			return map[string]any{"project_id": "polite-" + strconv.Itoa(i)}
		})
	}()
	sent := fast.emitPaced(ctx, 200_000, 15*time.Second, "subscribe_project", func(i int) any {
		return map[string]any{"project_id": "r" + strconv.Itoa(i)}
	})
	wg.Wait()
	fast.settle(ctx, 20*time.Second)
	polite.settle(ctx, 5*time.Second)
	out := map[string]any{
		"flood":          map[string]any{"emitted": sent, "replies": fast.counts.snapshot(), "rooms_joined": fast.counts.get("subscribed_project"), "closed_by_server_after_s": fast.closedAfter(), "close": closeReason(fast.c.closeErr)},
		"paced_15_per_s": map[string]any{"emitted": politeSent, "replies": polite.counts.snapshot(), "rooms_joined": polite.counts.get("subscribed_project"), "closed_by_server_after_s": polite.closedAfter()},
	}
	fast.c.close()
	polite.c.close()
	e.endWithHonest(g, h, 3*time.Second)
	return out, nil
}

// controlEvent is the part of the logs channel's messages counted here.
type controlEvent struct {
	Action string `json:"action"`
	JobID  any    `json:"job_id"`
	First  bool   `json:"first"`
	Last   bool   `json:"last"`
	SID    string `json:"sid"`
}

func follows20k(ctx context.Context, e *env) (map[string]any, error) {
	r, err := startRedis(ctx, e)
	if err != nil {
		return nil, err
	}
	defer r.stop()
	sub := r.client.Subscribe(ctx, "gateway:logs-control")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	first, last := map[string]bool{}, map[string]bool{}
	var messages atomic.Int64
	go func() {
		for m := range sub.Channel(redis.WithChannelSize(100_000)) {
			messages.Add(1)
			var ev controlEvent
			if json.Unmarshal([]byte(m.Payload), &ev) != nil {
				continue
			}
			job := fmt.Sprint(ev.JobID)
			mu.Lock()
			if ev.First {
				first[job] = true
			}
			if ev.Last {
				last[job] = true
			}
			mu.Unlock()
		}
	}()
	g, err := startGateway(ctx, e, gwOpts{env: map[string]string{"REDIS_URL": r.url}})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	f, err := newFlooder(ctx, g, nil)
	if err != nil {
		return nil, err
	}
	sent := f.emitPaced(ctx, 20_000, 15*time.Second, "subscribe_logs", func(i int) any {
		return map[string]any{"job_id": "atk-" + strconv.Itoa(i)}
	})
	f.settle(ctx, 15*time.Second)
	keys, err := r.scanCount(ctx, "gateway:events:follows:*")
	if err != nil {
		return nil, err
	}
	mu.Lock()
	firsts := len(first)
	mu.Unlock()
	closedByServer := f.closedAfter()
	disconnect := time.Now()
	f.c.close()
	// Wait for the releases: up to 15 s, until every first has its last.
	for time.Since(disconnect) < 15*time.Second {
		mu.Lock()
		done := len(last) >= len(first)
		mu.Unlock()
		if done {
			break
		}
		retry.Sleep(ctx, 250*time.Millisecond)
	}
	mu.Lock()
	missing := 0
	for job := range first {
		if !last[job] {
			missing++
		}
	}
	lasts := len(last)
	mu.Unlock()
	keysAfter, _ := r.scanCount(ctx, "gateway:events:follows:*")
	e.rec.end(g, 2*time.Second)
	return map[string]any{
		"emitted": sent, "replies": f.counts.snapshot(), "closed_by_server_after_s": closedByServer,
		"follow_keys_in_redis": keys, "first_true_events": firsts,
		"after_disconnect": map[string]any{"last_true_events": lasts, "firsts_without_last": missing, "follow_keys_in_redis": keysAfter, "waited_s": round(time.Since(disconnect).Seconds(), 1)},
		"control_messages": messages.Load(),
	}, nil
}

// handshakes: 20,000 polling handshakes from addrs source addresses over
// 8 workers, each on one keep-alive connection per address.
func handshakes(ctx context.Context, e *env, addrs int) (map[string]any, error) {
	g, h, err := startWithHonest(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()

	const total, workers = 20_000, 8
	var sources []net.IP
	if addrs > 1 {
		sources = loopbackAddrs(addrs)
	} else {
		sources = []net.IP{nil}
	}
	perAddr := total / len(sources)
	var mu sync.Mutex
	statuses := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One address: every worker on it, with its own connection.
			first, n := w, perAddr
			if len(sources) == 1 {
				first, n = 0, total/workers
			}
			for a := first; a < len(sources); a += workers {
				client := keepAliveClient(sources[a])
				for range n {
					if ctx.Err() != nil || time.Since(start) > 40*time.Second {
						return
					}
					resp, err := client.Get(g.base + "/socket.io/?EIO=4&transport=polling")
					key := "error"
					if err == nil {
						key = strconv.Itoa(resp.StatusCode)
						drain(resp)
					}
					mu.Lock()
					statuses[key]++
					mu.Unlock()
				}
				client.CloseIdleConnections()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	retry.Sleep(ctx, 3*time.Second)
	e.endWithHonest(g, h, 2*time.Second)
	return map[string]any{
		"handshakes": total, "source_addresses": len(sources), "sent_in_s": round(took.Seconds(), 1), "statuses": statuses,
	}, nil
}

// keepAliveClient is an HTTP client on one keep-alive connection from
// local (nil: any).
func keepAliveClient(local net.IP) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
}

func drain(resp *http.Response) {
	buf := make([]byte, 4096)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
}

// maxClientsDefault: with 1,024 open files the README's default
// max-clients is 768; 900 polling sessions from 9 addresses (100 each,
// within the per-address burst).
func maxClientsDefault(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{nofile: 1024})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	statuses := map[string]int{}
	for _, ip := range loopbackAddrs(9) {
		c := keepAliveClient(ip)
		for range 100 {
			resp, err := c.Get(g.base + "/socket.io/?EIO=4&transport=polling")
			key := "error"
			if err == nil {
				key = strconv.Itoa(resp.StatusCode)
				drain(resp)
			}
			statuses[key]++
		}
		c.CloseIdleConnections()
	}
	e.rec.end(g, time.Second)
	return map[string]any{"nofile": 1024, "documented_default_max_clients": 1024 - 256, "sessions_tried": 900, "statuses": statuses}, nil
}
