package flaskbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshgen/gateway/test/redistest"
)

// Integration tests: a real redis-server (redistest), a real Bridge.Run,
// real publishers.

const waitLong = 10 * time.Second

type running struct {
	b    *Bridge
	em   *fakeEmitter
	log  *logBuffer
	pub  *redis.Client
	stop func()
}

// runBridge starts a Bridge on client (or on srv's address) and waits for
// its first subscription.
func runBridge(t *testing.T, srv *redistest.Server, client redis.UniversalClient, em *fakeEmitter, mod ...func(*Options)) *running {
	t.Helper()
	if client == nil {
		c := srv.Client()
		t.Cleanup(func() { _ = c.Close() })
		client = c
	}
	log, lb := newLogger(t)
	o := Options{Client: client, Emitter: em, Logger: log, PingInterval: time.Second, MaxRetryDelay: 500 * time.Millisecond}
	for _, m := range mod {
		m(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after cancel, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5 s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	pub := srv.Client()
	t.Cleanup(func() { _ = pub.Close() })
	r := &running{b: b, em: em, log: lb, pub: pub, stop: stop}
	waitFor(t, "first subscription", waitLong, func() bool { return b.Health(context.Background()) == nil })
	return r
}

// publish sends raw bytes on the channel and checks that Redis counted
// this many subscribers.
func (r *running) publish(t *testing.T, payload []byte, subscribers int64) {
	t.Helper()
	n, err := r.pub.Publish(context.Background(), r.b.channel, payload).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != subscribers {
		t.Fatalf("PUBLISH reached %d subscribers, want %d", n, subscribers)
	}
}

func (r *running) waitReceived(t *testing.T, n uint64) {
	t.Helper()
	// Received counts a message on arrival; wait until n have also been
	// handled (each is counted in exactly one outcome after the Emitter
	// call), so the fake Emitter's calls are complete.
	waitFor(t, "messages handled", waitLong, func() bool {
		s := r.b.Stats()
		return s.Received >= n && s.Emitted+s.Applied+s.Ignored+s.Dropped.Total() >= n
	})
}

// (a) JSON exactly as python-socketio >= 5.14 publishes it.
func TestIntegrationJSONMessages(t *testing.T) {
	srv := redistest.Start(t)
	em := newFake("sid_abc")
	r := runBridge(t, srv, nil, em)
	msgs := []string{"emit_room.json", "emit_rooms_list.json", "emit_skip_sids.json", "emit_tuple_args.json", "emit_broadcast.json", "enter_room.json", "leave_room.json", "close_room.json", "disconnect.json", "callback.json"}
	for _, f := range msgs {
		r.publish(t, fixture(t, f), 1)
	}
	broadcast := `{"method": "emit", "event": "batch_status", "data": [{"batch_id": "9", "status": "completed", "completed_jobs": 3, "total_jobs": 3}], "binary": false, "namespace": "/", "room": null, "skip_sid": null, "callback": null, "host_id": "4f1c0e0e7a3b4d2c9e8f7a6b5c4d3e2f"}`
	r.publish(t, []byte(broadcast), 1)
	r.waitReceived(t, uint64(len(msgs)+1))
	assertCalls(t, em.snapshot(), []call{
		emitCall("log_line", []string{"project_42"}, nil, `{"job_id":"j1","message":"step 1/3 done"}`),
		emitCall("job_status", []string{"project_42", "user_7"}, nil, `{"job_id":"j2","state":"running"}`),
		emitCall("typing", []string{"project_42"}, []string{"sid_abc", "sid_def"}, `{"user":"u1"}`),
		emitCall("progress", []string{"project_42"}, nil, `"j1"`, `42`, `{"eta":12.5}`),
		// emit_broadcast is namespace /jobs: dropped
		{Method: "JoinRoom", SID: "sid_abc", Room: "project_42", Local: true},
		{Method: "LeaveRoom", SID: "sid_abc", Room: "project_42", Local: true},
		{Method: "CloseRoom", Room: "project_42"},
		{Method: "DisconnectSocket", SID: "sid_abc", Local: true},
		// callback: ignored
		broadcastCall("batch_status", nil, `{"batch_id":"9","status":"completed","completed_jobs":3,"total_jobs":3}`),
	})
	s := r.b.Stats()
	if s.Emitted != 5 || s.Applied != 4 || s.Ignored != 1 || s.Dropped.ForeignNamespace != 1 {
		t.Fatalf("stats %+v", s)
	}
	checkInvariant(t, s)
}

// flaskPython returns Debian's interpreter when it has Flask-SocketIO and
// redis; it skips the test otherwise, and fails it under CI.
func flaskPython(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	why := ""
	if _, err := os.Stat(py); err != nil {
		why = py + " not found"
	} else if out, err := exec.Command(py, "-c", "import flask_socketio, socketio, redis").CombinedOutput(); err != nil {
		why = "Flask-SocketIO not importable by " + py + ": " + strings.TrimSpace(string(out))
	}
	if why == "" {
		return py
	}
	msg := why + " (apt-get install -y python3-flask-socketio python3-redis)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// flaskEmit runs test/e2e/lib/flask_emit.py (the real Flask-SocketIO,
// write-only, pickling as python-socketio 5.7.2 does) with instructions
// on stdin, once wantSubs subscribers are on the channel.
func flaskEmit(t *testing.T, py string, srv *redistest.Server, channel string, wantSubs int, instructions ...map[string]any) {
	t.Helper()
	script, err := filepath.Abs("../test/e2e/lib/flask_emit.py")
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for _, ins := range instructions {
		b, err := json.Marshal(ins)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(b)
		in.WriteByte('\n')
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, "--redis", srv.URL(), "--channel", channel, "--wait-subscribers", strconv.Itoa(wantSubs))
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("flask_emit.py: %v\nstderr:\n%s", err, stderr.String())
	}
	if got := strings.Count(stdout.String(), `"ok": true`); got != len(instructions) {
		t.Fatalf("flask_emit.py confirmed %d of %d instructions:\n%s\n%s", got, len(instructions), stdout.String(), stderr.String())
	}
}

// (b) The real Flask-SocketIO 5.3.2 / python-socketio 5.7.2 from Debian:
// pickles, every room form the app uses.
func TestIntegrationRealFlaskSocketIO(t *testing.T) {
	py := flaskPython(t)
	srv := redistest.Start(t)
	em := newFake("local_sid")
	r := runBridge(t, srv, nil, em)

	logLine := map[string]any{"job_id": "j-1", "message": "meshing 40%", "timestamp": "2024-05-01T12:00:00Z"}
	progress := map[string]any{"batch_id": "9", "job_id": "j-1", "progress": 40, "status": "running", "message": "meshing"}
	batch := map[string]any{"batch_id": "9", "status": "processing", "completed_jobs": 1, "total_jobs": 4}
	completed := map[string]any{"project_id": "1", "job_id": "j-1", "status": "completed", "result": map[string]any{"s3_output_path": "s3://b/m.msh", "quality": 0.85, "elements": 125032, "ok": true, "none": nil}}
	flaskEmit(t, py, srv, r.b.channel, 1,
		map[string]any{"event": "log_line", "data": logLine, "to": "project_1"},
		map[string]any{"event": "job_progress", "data": progress, "to": "batch_9"},
		map[string]any{"event": "batch_status", "data": batch, "room": "batch_9"},
		map[string]any{"event": "job_completed", "data": completed, "to": []string{"project_1", "batch_2"}},
		map[string]any{"event": "batch_status", "data": batch},
		map[string]any{"event": "job_failed", "data": map[string]any{"project_id": "1", "job_id": "j-2", "error": "Unknown error"}, "to": "project_1", "skip_sid": []string{"sid_x", "sid_y"}},
		map[string]any{"event": "multi", "args": []any{"a", 1, map[string]any{"k": "v"}}, "to": "project_1"},
		map[string]any{"event": "no_args", "to": "project_1"},
		map[string]any{"event": "unicode", "data": map[string]any{"msg": "héllo ✓ 日本語 🚀"}, "to": "project_é"},
		map[string]any{"event": "other_ns", "data": 1, "namespace": "/admin"},
		map[string]any{"method": "close_room", "room": "batch_9"},
		map[string]any{"method": "disconnect", "sid": "local_sid"},
		map[string]any{"method": "disconnect", "sid": "elsewhere"},
	)
	r.waitReceived(t, 13)
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	assertCalls(t, em.snapshot(), []call{
		emitCall("log_line", []string{"project_1"}, nil, js(logLine)),
		emitCall("job_progress", []string{"batch_9"}, nil, js(progress)),
		emitCall("batch_status", []string{"batch_9"}, nil, js(batch)),
		emitCall("job_completed", []string{"project_1", "batch_2"}, nil, js(completed)),
		broadcastCall("batch_status", nil, js(batch)),
		emitCall("job_failed", []string{"project_1"}, []string{"sid_x", "sid_y"}, `{"project_id":"1","job_id":"j-2","error":"Unknown error"}`),
		emitCall("multi", []string{"project_1"}, nil, `"a"`, `1`, `{"k":"v"}`),
		emitCall("no_args", []string{"project_1"}, nil),
		emitCall("unicode", []string{"project_é"}, nil, `{"msg":"héllo ✓ 日本語 🚀"}`),
		{Method: "CloseRoom", Room: "batch_9"},
		{Method: "DisconnectSocket", SID: "local_sid", Local: true},
		{Method: "DisconnectSocket", SID: "elsewhere"},
	})
	s := r.b.Stats()
	if s.Emitted != 9 || s.Applied != 2 || s.Ignored != 1 || s.Dropped.ForeignNamespace != 1 {
		t.Fatalf("stats %+v", s)
	}
	checkInvariant(t, s)
}

// (c) A pickle carrying a class reference (os.system, eval,
// subprocess...) is refused and logged, and the next message is served.
func TestIntegrationUnsafePickleThenValid(t *testing.T) {
	srv := redistest.Start(t)
	em := newFake()
	r := runBridge(t, srv, nil, em)
	var hostile [][]byte
	for _, n := range []string{"hostile_os_system", "hostile_subprocess", "hostile_eval", "hostile_object"} {
		for _, f := range fixtureFiles(t, n) {
			hostile = append(hostile, fixture(t, f))
		}
	}
	if py := "/usr/bin/python3"; fileExists(py) {
		// One made right now by Python's own pickle.dumps: an object whose
		// __reduce__ is (os.system, ('true',)), inside a Flask-SocketIO-shaped
		// dict.
		out, err := exec.Command(py, "-c", `
import os, pickle, sys
class Evil:
    def __reduce__(self):
        return (os.system, ("true",))
sys.stdout.buffer.write(pickle.dumps({"method": "emit", "event": "log_line", "data": Evil(),
    "namespace": "/", "room": "project_1", "skip_sid": None, "callback": None, "host_id": "x"}))
`).Output()
		if err != nil {
			t.Fatal(err)
		}
		hostile = append(hostile, out)
	}
	for _, p := range hostile {
		r.publish(t, p, 1)
	}
	r.publish(t, fixture(t, "emit_room.p4.pickle"), 1)
	r.waitReceived(t, uint64(len(hostile)+1))
	assertCalls(t, em.snapshot(), []call{emitCall("log_line", []string{"project_42"}, nil, `{"job_id":"j1","message":"step 1/3 done"}`)})
	s := r.b.Stats()
	if s.Dropped.Unsafe != uint64(len(hostile)) || s.Emitted != 1 {
		t.Fatalf("stats %+v", s)
	}
	checkInvariant(t, s)
	if got := len(r.log.lines("level=WARN", "unsafe pickle")); got != len(hostile) {
		t.Fatalf("%d unsafe-pickle WARN lines for %d messages", got, len(hostile))
	}
	if r.b.Health(context.Background()) != nil {
		t.Fatal("unhealthy after refusing messages")
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// (d) CLIENT KILL TYPE pubsub: the bridge resubscribes by itself, logs
// the loss and the return once each, and delivers later messages.
func TestIntegrationResubscribesAfterClientKill(t *testing.T) {
	srv := redistest.Start(t)
	em := newFake()
	r := runBridge(t, srv, nil, em)
	r.publish(t, fixture(t, "emit_room.json"), 1)
	r.waitReceived(t, 1)

	for round := 1; round <= 3; round++ {
		n, err := r.pub.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Int()
		if err != nil || n != 1 {
			t.Fatalf("CLIENT KILL TYPE pubsub killed %d connections (err %v), want 1", n, err)
		}
		waitFor(t, "resubscription", waitLong, func() bool { return r.b.Stats().Subscriptions == uint64(1+round) })
		waitFor(t, "healthy again", waitLong, func() bool { return r.b.Health(context.Background()) == nil })
		r.publish(t, fixture(t, "emit_rooms_list.json"), 1)
		r.waitReceived(t, uint64(1+round))
	}
	if got := len(em.emits()); got != 4 {
		t.Fatalf("%d emits, want 4: %v", got, em.snapshot())
	}
	s := r.b.Stats()
	if s.Outages != 3 || s.Subscriptions != 4 {
		t.Fatalf("stats %+v", s)
	}
	if lost, back := len(r.log.lines("level=WARN", "subscription lost")), len(r.log.lines("level=INFO", "subscription back")); lost != 3 || back != 3 {
		t.Fatalf("%d 'lost' and %d 'back' log lines for 3 outages:\n%s", lost, back, r.log.String())
	}
}

// Health reports an outage for as long as Redis is gone, and the bridge
// comes back by itself when Redis does.
func TestIntegrationHealthDuringRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	em := newFake()
	r := runBridge(t, srv, nil, em)
	srv.Stop()
	waitFor(t, "Health to report the outage", waitLong, func() bool {
		err := r.b.Health(context.Background())
		return err != nil && strings.Contains(err.Error(), "lost")
	})
	time.Sleep(700 * time.Millisecond) // several failed redials
	if err := r.b.Health(context.Background()); err == nil {
		t.Fatal("healthy while Redis is down")
	}
	if r.b.Stats().Subscribed {
		t.Fatal("Stats.Subscribed while Redis is down")
	}
	srv.Restart()
	waitFor(t, "Health after Redis is back", waitLong, func() bool { return r.b.Health(context.Background()) == nil })
	r.publish(t, fixture(t, "emit_room.p2.pickle"), 1)
	r.waitReceived(t, 1)
	assertCalls(t, em.snapshot(), []call{emitCall("log_line", []string{"project_42"}, nil, `{"job_id":"j1","message":"step 1/3 done"}`)})
	if lost, back := len(r.log.lines("subscription lost")), len(r.log.lines("subscription back")); lost != 1 || back != 1 {
		t.Fatalf("%d 'lost' and %d 'back' lines for one outage:\n%s", lost, back, r.log.String())
	}
}

// Until Redis confirms the first subscription Health is an error; Run
// still returns nil on cancel.
func TestIntegrationNotSubscribedYet(t *testing.T) {
	port := redistest.FreePort(t)
	c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	log, lb := newLogger(t)
	b, err := New(Options{Client: c, Emitter: newFake(), Logger: log, MaxRetryDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	waitFor(t, "an attempt", waitLong, func() bool { return len(lb.lines("cannot subscribe")) == 1 })
	err = b.Health(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not subscribed") {
		t.Fatalf("Health = %v, want not subscribed", err)
	}
	time.Sleep(600 * time.Millisecond)
	if n := len(lb.lines("level=WARN")); n != 1 {
		t.Fatalf("%d WARN lines while retrying, want 1:\n%s", n, lb.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// An idle but healthy subscription answers the watchdog's pings and is
// never abandoned.
func TestIntegrationIdleStaysSubscribed(t *testing.T) {
	srv := redistest.Start(t)
	em := newFake()
	r := runBridge(t, srv, nil, em, func(o *Options) { o.PingInterval = 50 * time.Millisecond })
	time.Sleep(time.Second) // 20 ping intervals, nothing published
	if s := r.b.Stats(); s.Outages != 0 || s.Subscriptions != 1 || !s.Subscribed {
		t.Fatalf("an idle subscription was disturbed: %+v\n%s", s, r.log.String())
	}
	r.publish(t, fixture(t, "emit_room.json"), 1)
	r.waitReceived(t, 1)
	if len(em.emits()) != 1 {
		t.Fatal("not delivered")
	}
}

// A connection that goes silent without an error (half-open: the proxy
// swallows everything) is detected by the ping watchdog, abandoned and
// redialled; later messages are delivered.
func TestIntegrationSilentConnectionIsRedialled(t *testing.T) {
	srv := redistest.Start(t)
	px := newBlackholeProxy(t, srv.Addr())
	c := redis.NewClient(&redis.Options{Addr: px.addr(), DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() }) // after the bridge stops
	em := newFake()
	r := runBridge(t, srv, c, em, func(o *Options) { o.PingInterval = 100 * time.Millisecond })
	r.publish(t, fixture(t, "emit_room.json"), 1)
	r.waitReceived(t, 1)

	px.swallowExisting()
	waitFor(t, "the silent connection to be abandoned", waitLong, func() bool { return len(r.log.lines("subscription lost", "no answer")) >= 1 })
	waitFor(t, "resubscription through a fresh connection", waitLong, func() bool { return r.b.Stats().Subscriptions >= 2 && r.b.Stats().Subscribed })
	// The old connection still counts at Redis until the proxy drops it;
	// it no longer forwards anything, so only the new one delivers.
	if _, err := r.pub.Publish(context.Background(), r.b.channel, fixture(t, "emit_rooms_list.json")).Result(); err != nil {
		t.Fatal(err)
	}
	r.waitReceived(t, 2)
	if got := len(em.emits()); got != 2 {
		t.Fatalf("%d emits, want 2", got)
	}
}

// blackholeProxy forwards TCP to a target; swallowExisting makes every
// current connection silently drop what it carries, both ways, without
// closing it.
type blackholeProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*proxied
}

type proxied struct {
	mu        sync.Mutex
	swallowed bool
}

func (p *proxied) dead() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.swallowed }

func newBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &blackholeProxy{ln: ln}
	var wg sync.WaitGroup
	var open []net.Conn
	var openMu sync.Mutex
	track := func(c net.Conn) { openMu.Lock(); open = append(open, c); openMu.Unlock() }
	t.Cleanup(func() {
		_ = ln.Close()
		openMu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		openMu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			track(in)
			track(out)
			pc := &proxied{}
			px.mu.Lock()
			px.conns = append(px.conns, pc)
			px.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 && !pc.dead() {
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						if err != io.EOF || !pc.dead() {
							_ = dst.Close()
						}
						return
					}
				}
			}
			wg.Add(2)
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return px
}

func (px *blackholeProxy) addr() string { return px.ln.Addr().String() }

func (px *blackholeProxy) swallowExisting() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for _, c := range px.conns {
		c.mu.Lock()
		c.swallowed = true
		c.mu.Unlock()
	}
}
