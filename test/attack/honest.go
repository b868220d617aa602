package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/meshgen/gateway/retry"
)

// honestInterval is how often the honest producer sends a webhook to the
// honest client's room.
const honestInterval = 50 * time.Millisecond

// honest is a well-behaved WebSocket client in room project_honest and a
// producer sending it a signed webhook every 50 ms, both from honestAddr; it measures the
// delivery latency (webhook sent -> event received), in a baseline phase
// before the attack and during it.
type honest struct {
	c      *sioConn
	p      *producer
	stopCh chan struct{}
	done   chan struct{}

	mu        sync.Mutex
	phase     string
	sentAt    map[int]time.Time
	phaseOf   map[int]string
	sent      map[string]int
	lat       map[string]latencies
	prodErrs  map[string]int
	lostConn  bool
	lostAfter time.Duration
	started   time.Time
}

// startWithHonest starts a gateway with o and the honest client, begins
// the record and waits the 5 s baseline: the attack comes next, and
// endWithHonest ends it.
func startWithHonest(ctx context.Context, e *env, o gwOpts) (*gwProc, *honest, error) {
	g, err := startGateway(ctx, e, o)
	if err != nil {
		return nil, nil, err
	}
	h, err := startHonest(ctx, g)
	if err != nil {
		g.stop()
		return nil, nil, err
	}
	e.rec.begin(g)
	retry.Sleep(ctx, 5*time.Second)
	h.setPhase("attack")
	return g, h, nil
}

// endWithHonest stops the honest client, records its figures and takes
// the "after" figures settle later.
func (e *env) endWithHonest(g *gwProc, h *honest, settle time.Duration) {
	figures := h.stop()
	e.rec.mu.Lock()
	e.rec.honest = figures
	e.rec.mu.Unlock()
	e.rec.end(g, settle)
}

// startHonest connects the client, subscribes it, and starts the
// producer in the baseline phase.
func startHonest(ctx context.Context, g *gwProc) (*honest, error) {
	d := *wsDialer
	d.NetDialContext = (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: honestAddr}}).DialContext
	c, _, err := dialWSWith(ctx, &d, g, nil, "")
	if err != nil {
		return nil, fmt.Errorf("honest client: %w", err)
	}
	if refused, err := c.connect(nil); err != nil || refused != "" {
		c.close()
		return nil, fmt.Errorf("honest client connect: %v %s", err, refused)
	}
	h := &honest{
		c: c, p: newHonestProducer(g), stopCh: make(chan struct{}), done: make(chan struct{}),
		phase: "baseline", sentAt: map[int]time.Time{}, phaseOf: map[int]string{},
		sent: map[string]int{}, lat: map[string]latencies{}, prodErrs: map[string]int{}, started: time.Now(),
	}
	subscribed := make(chan struct{}, 1)
	c.onEvent = func(name string, data json.RawMessage) {
		now := time.Now()
		switch name {
		case "subscribed_project":
			select {
			case subscribed <- struct{}{}:
			default:
			}
		case "job_completed":
			var ev struct {
				JobID string `json:"job_id"`
			}
			if json.Unmarshal(data, &ev) != nil || len(ev.JobID) < 3 {
				return
			}
			seq, err := strconv.Atoi(ev.JobID[2:])
			if err != nil {
				return
			}
			h.mu.Lock()
			if at, ok := h.sentAt[seq]; ok {
				h.lat[h.phaseOf[seq]] = append(h.lat[h.phaseOf[seq]], now.Sub(at))
				delete(h.sentAt, seq)
			}
			h.mu.Unlock()
		}
	}
	c.start()
	if err := c.emit("subscribe_project", map[string]any{"project_id": "honest"}); err != nil {
		c.close()
		return nil, err
	}
	select {
	case <-subscribed:
	case <-time.After(5 * time.Second):
		c.close()
		return nil, fmt.Errorf("honest client: no subscribed_project within 5 s")
	}
	go h.produce()
	go func() {
		<-c.closed
		h.mu.Lock()
		if !h.isStopped() {
			h.lostConn, h.lostAfter = true, time.Since(h.started)
		}
		h.mu.Unlock()
	}()
	return h, nil
}

func (h *honest) isStopped() bool {
	select {
	case <-h.stopCh:
		return true
	default:
		return false
	}
}

// produce sends one webhook every 50 ms until stop (at most 5 minutes).
func (h *honest) produce() {
	defer close(h.done)
	t := time.NewTicker(honestInterval)
	defer t.Stop()
	for seq := 0; seq < 6000; seq++ {
		select {
		case <-h.stopCh:
			return
		case <-t.C:
		}
		body := fmt.Appendf(nil, `{"job_id":"h-%d","status":"completed","project_id":"honest","result":{"success":true}}`, seq)
		h.mu.Lock()
		phase := h.phase
		h.sentAt[seq] = time.Now()
		h.phaseOf[seq] = phase
		h.sent[phase]++
		h.mu.Unlock()
		status, _, err := h.p.webhook(body)
		if err != nil || status != 200 {
			key := strconv.Itoa(status)
			if err != nil {
				key = "error"
			}
			h.mu.Lock()
			h.prodErrs[key]++
			h.mu.Unlock()
		}
	}
}

// setPhase starts counting the next deliveries in phase.
func (h *honest) setPhase(phase string) {
	h.mu.Lock()
	h.phase = phase
	h.mu.Unlock()
}

// stop ends the producer, waits up to 2 s for what is in flight, closes
// the client and returns the figures of each phase and the ratio of the
// attack's p99 to the baseline's.
func (h *honest) stop() map[string]any {
	close(h.stopCh)
	<-h.done
	for range 20 {
		h.mu.Lock()
		left := len(h.sentAt)
		h.mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.c.close()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]any{}
	for _, phase := range []string{"baseline", "attack"} {
		if h.sent[phase] > 0 {
			out[phase] = h.lat[phase].json(h.sent[phase])
		}
	}
	b, a := h.lat["baseline"], h.lat["attack"]
	if len(b) > 0 && len(a) > 0 {
		sortedB, sortedA := append(latencies(nil), b...), append(latencies(nil), a...)
		sortLat(sortedB)
		sortLat(sortedA)
		if pb := sortedB.quantile(0.99); pb > 0 {
			out["p99_ratio"] = round(float64(sortedA.quantile(0.99))/float64(pb), 2)
		}
	}
	if len(h.prodErrs) > 0 {
		out["producer_errors"] = h.prodErrs
	}
	if h.lostConn {
		out["client_disconnected_after_s"] = round(h.lostAfter.Seconds(), 1)
	}
	return out
}

func sortLat(l latencies) { slices.Sort(l) }
