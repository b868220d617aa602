package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/meshgen/gateway/retry"
)

// Attacks that found nothing before the work on bounds; rerun to show
// they still find nothing.

func init() {
	register(attack{"connect_cycles", "4,000 WebSocket connect / subscribe / disconnect cycles from 40 addresses: goroutines and RSS back to where they were", connectCycles})
	register(attack{"malformed_packets", "malformed Engine.IO and Socket.IO packets over WebSocket and polling: crashes, /livez, what each does", malformedPackets})
	register(attack{"flask_pickle", "pickles on the Flask-SocketIO queue that would run a command, and a deep one (Redis): nothing runs, the node stays up", flaskPickle})
}

func connectCycles(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	const cycles, addrs, workers = 4000, 40, 8
	sources := loopbackAddrs(addrs)
	var ok, failed atomic.Int64
	var mu sync.Mutex
	failures := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := w; a < addrs; a += workers {
				d := *wsDialer
				d.NetDialContext = localDialer(sources[a]).DialContext
				for range cycles / addrs {
					if ctx.Err() != nil || time.Since(start) > 45*time.Second {
						return
					}
					err := cycle(ctx, g, &d)
					if err != nil {
						failed.Add(1)
						mu.Lock()
						failures[trunc([]byte(err.Error()), 80)]++
						mu.Unlock()
						continue
					}
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	e.rec.end(g, 5*time.Second)
	return map[string]any{"cycles": cycles, "source_addresses": addrs, "completed": ok.Load(), "failed": failed.Load(), "failures": failures, "took_s": round(took.Seconds(), 1), "process_alive": !g.exited()}, nil
}

// cycle connects, subscribes, waits for the reply and closes.
func cycle(ctx context.Context, g *gwProc, d *websocket.Dialer) error {
	ws, _, err := d.DialContext(ctx, "ws://"+g.addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil {
		return err
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte("40"))
	if _, m, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(m), "40") {
		return fmt.Errorf("connect: %v %q", err, m)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`42["subscribe_project",{"project_id":"c"}]`))
	for {
		_, m, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		if strings.Contains(string(m), "subscribed_project") {
			return nil
		}
	}
}

func localDialer(ip net.IP) *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
}

func malformedPackets(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	g.log.watch("panic", "fatal error")
	e.rec.begin(g)
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	ws := []string{
		"", "4", "42", "42[", "42[]", "42[1]", "42[null]", `42["subscribe_project"`, `42["subscribe_project",`,
		`42{"a":1}`, "4/", `4/nonexistent,["x"]`, `40/admin,`, "49", "45", "45-[]", "451-", `451-["x"]`, "46", "47", "4x",
		"0", "3", "5", "6", "7", "9", "3probe", "5probe", `4299999999999999999999999["subscribe_project",{"project_id":"1"}]`,
		`42-1["x"]`, "42" + deep, `40{"token":` + strings.Repeat("a", 100_000) + `}`, `42["subscribe_project",{"project_id":"` + strings.Repeat("\\u0000", 1000) + `"}]`,
		`42["subscribe_project",{"project_id":1e308}]`, `42["subscribe_project",{"project_id":-1}]`, `42["subscribe_project",{"project_id":"\ud800"}]`,
		`42["__proto__",{}]`, `42["connect",{}]`, `42["disconnect"]`, "4" + strings.Repeat("x", 999_990),
	}
	results := map[string]int{}
	for i, pkt := range ws {
		if ctx.Err() != nil {
			break
		}
		c, _, err := dialWS(ctx, g, nil, "")
		if err != nil {
			results["dial_error"]++
			continue
		}
		c.start()
		if i > 0 { // the first ones also before the namespace connect
			_ = c.send("40")
			retry.Sleep(ctx, 50*time.Millisecond)
		}
		_ = c.send(pkt)
		_ = c.sendBinary([]byte(pkt))
		select {
		case <-c.closed:
			results["closed"]++
		case <-time.After(300 * time.Millisecond):
			results["still_open"]++
		}
		c.close()
	}
	// Polling bodies.
	polling := []string{"\x1e\x1e", "1:a", "4\x1e", "42[\x1e42]", "b" + strings.Repeat("A", 1000), "bnotbase64!!", "40\x1e" + strings.Repeat("42[]\x1e", 10_000)}
	pollStatus := map[string]int{}
	for _, body := range polling {
		p := newPolling(g, 5*time.Second)
		if st, err := p.handshake(); err != nil || st != 200 {
			pollStatus[fmt.Sprintf("handshake %d", st)]++
			continue
		}
		st, err := p.post(body)
		key := fmt.Sprint(st)
		if err != nil {
			key = "error"
		}
		pollStatus[key]++
	}
	alive := !g.exited()
	ok, _ := probeLivez(g.addr)
	e.rec.end(g, time.Second)
	return map[string]any{
		"websocket_packets": len(ws), "websocket_outcomes": results, "polling_bodies": len(polling), "polling_statuses": pollStatus,
		"process_alive": alive, "livez_after": ok, "log_panics": g.log.count("panic") + g.log.count("fatal error"),
	}, nil
}

// Pickles (protocol 2) that would run a command if loaded by Python's
// pickle.loads: os.system through GLOBAL+REDUCE, and
// subprocess.check_output through STACK_GLOBAL (protocol 4).
func pickles(marker string) map[string][]byte {
	cmd := "touch " + marker
	system := []byte("\x80\x02cos\nsystem\nq\x00X" + le32(len(cmd)) + cmd + "q\x01\x85q\x02Rq\x03.")
	args := "touch"
	sub := []byte("\x80\x04\x8c\nsubprocess\x94\x8c\x0ccheck_output\x94\x93\x94]\x94(\x8c" + string(rune(len(args))) + args + "\x94\x8c" + string(rune(len(marker))) + marker + "\x94e\x85\x94R\x94.")
	deep := []byte("\x80\x02" + strings.Repeat("]", 200_000) + ".")
	return map[string][]byte{"os_system": system, "subprocess_check_output": sub, "deep_lists_200k": deep}
}

func le32(n int) string {
	return string([]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)})
}

func flaskPickle(ctx context.Context, e *env) (map[string]any, error) {
	r, err := startRedis(ctx, e)
	if err != nil {
		return nil, err
	}
	defer r.stop()
	g, err := startGateway(ctx, e, gwOpts{env: map[string]string{"REDIS_URL": r.url}})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	g.log.watch("panic", "fatal error")
	e.rec.begin(g)
	dir, err := os.MkdirTemp("", "attack-pickle-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	marker := filepath.Join(dir, "pwned")
	sent := map[string]int64{}
	for name, p := range pickles(marker) {
		n, err := r.client.Publish(ctx, "flask-socketio", p).Result()
		if err != nil {
			return nil, err
		}
		sent[name] = n
	}
	retry.Sleep(ctx, 2*time.Second)
	_, statErr := os.Stat(marker)
	st, b, _ := httpGet(g.base+"/metrics", 5*time.Second)
	var counted []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "gateway_flask_queue_messages_total") && !strings.HasSuffix(line, " 0") {
			counted = append(counted, line)
		}
	}
	ok, _ := probeLivez(g.addr)
	e.rec.end(g, time.Second)
	return map[string]any{
		"published_to_subscribers": sent, "command_ran": statErr == nil, "process_alive": !g.exited(), "livez_after": ok,
		"metrics_status": st, "queue_metrics": counted, "log_panics": g.log.count("panic") + g.log.count("fatal error"),
	}, nil
}
