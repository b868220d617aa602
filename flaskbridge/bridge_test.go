package flaskbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/meshgen/gateway/flaskqueue"
)

// unitBridge is a Bridge whose handle is driven directly (Run is not
// called; the client points nowhere).
func unitBridge(t *testing.T, em Emitter, mod ...func(*Options)) (*Bridge, *logBuffer) {
	t.Helper()
	log, lb := newLogger(t)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	o := Options{Client: c, Emitter: em, Logger: log}
	for _, m := range mod {
		m(&o)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b, lb
}

func TestNewValidates(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := New(Options{Emitter: newFake()}); err == nil {
		t.Error("New without Client: want an error")
	}
	if _, err := New(Options{Client: c}); err == nil {
		t.Error("New without Emitter: want an error")
	}
	b, err := New(Options{Client: c, Emitter: newFake()})
	if err != nil {
		t.Fatal(err)
	}
	if b.channel != "flask-socketio" {
		t.Errorf("default channel %q, want flask-socketio", b.channel)
	}
	if err := b.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Errorf("Health before Run = %v, want a 'not started' error", err)
	}
}

// Every encoding of each case (JSON as python-socketio >= 5.14 publishes
// it, pickle protocols 0-5 as <= 5.13 does) makes the same Emitter call.
func TestHandleFixtures(t *testing.T) {
	cases := []struct {
		name  string
		local []string // sids connected to this node
		want  []call   // nil: no call
		stat  func(Stats) uint64
	}{
		{name: "emit_room", want: []call{emitCall("log_line", []string{"project_42"}, nil, `{"job_id":"j1","message":"step 1/3 done"}`)}, stat: emitted},
		{name: "emit_rooms_list", want: []call{emitCall("job_status", []string{"project_42", "user_7"}, nil, `{"job_id":"j2","state":"running"}`)}, stat: emitted},
		{name: "emit_rooms_tuple", want: []call{emitCall("job_status", []string{"project_42", "user_7"}, nil, `{"job_id":"j3"}`)}, stat: emitted},
		{name: "emit_tuple_args", want: []call{emitCall("progress", []string{"project_42"}, nil, `"j1"`, `42`, `{"eta":12.5}`)}, stat: emitted},
		{name: "emit_list_arg", want: []call{emitCall("numbers", []string{"r"}, nil, `[1,2,3]`)}, stat: emitted},
		{name: "emit_no_data", want: []call{emitCall("ping", []string{"r"}, nil)}, stat: emitted},
		{name: "emit_unicode", want: []call{emitCall("chat", []string{"salle-é"}, nil, `{"msg":"héllo wörld ✓ 日本語 🚀","ключ 🔑":"znak\\n\n\r\u0000\u001a"}`)}, stat: emitted},
		{name: "emit_skip_sid", want: []call{emitCall("typing", []string{"project_42"}, []string{"sid_abc"}, `{"user":"u1"}`)}, stat: emitted},
		{name: "emit_skip_sids", want: []call{emitCall("typing", []string{"project_42"}, []string{"sid_abc", "sid_def"}, `{"user":"u1"}`)}, stat: emitted},
		{name: "emit_callback", want: []call{emitCall("confirm", []string{"sid_abc"}, nil, `{"q":"ok?"}`)}, stat: emitted},
		{name: "emit_no_host_id", want: []call{emitCall("legacy", []string{"r"}, nil, `"x"`)}, stat: emitted},
		{name: "emit_large", stat: emitted},
		{name: "emit_nested", stat: emitted},
		{name: "emit_broadcast" /* namespace /jobs */, stat: func(s Stats) uint64 { return s.Dropped.ForeignNamespace }},
		{name: "emit_bytes", stat: func(s Stats) uint64 { return s.Dropped.Binary }},
		{name: "emit_bytearray", stat: func(s Stats) uint64 { return s.Dropped.Binary }},
		{name: "close_room", want: []call{{Method: "CloseRoom", Room: "project_42"}}, stat: applied},
		{name: "enter_room", local: []string{"sid_abc"}, want: []call{{Method: "JoinRoom", SID: "sid_abc", Room: "project_42", Local: true}}, stat: applied},
		{name: "enter_room", want: []call{{Method: "JoinRoom", SID: "sid_abc", Room: "project_42"}}, stat: ignored},
		{name: "leave_room", local: []string{"sid_abc"}, want: []call{{Method: "LeaveRoom", SID: "sid_abc", Room: "project_42", Local: true}}, stat: applied},
		{name: "leave_room", want: []call{{Method: "LeaveRoom", SID: "sid_abc", Room: "project_42"}}, stat: ignored},
		{name: "disconnect", local: []string{"sid_abc"}, want: []call{{Method: "DisconnectSocket", SID: "sid_abc", Local: true}}, stat: applied},
		{name: "disconnect", want: []call{{Method: "DisconnectSocket", SID: "sid_abc"}}, stat: ignored},
		{name: "disconnect_legacy" /* namespace /chat */, local: []string{"sid_abc"}, stat: func(s Stats) uint64 { return s.Dropped.ForeignNamespace }},
		{name: "callback", stat: ignored},
	}
	for _, tc := range cases {
		for _, file := range fixtureFiles(t, tc.name) {
			t.Run(fmt.Sprintf("%s/local=%v", file, tc.local), func(t *testing.T) {
				em := newFake(tc.local...)
				b, _ := unitBridge(t, em)
				b.handle(fixture(t, file))
				got := em.snapshot()
				switch tc.name {
				case "emit_large", "emit_nested":
					if len(got) != 1 || got[0].Method != "Emit" || len(got[0].Args) != 1 {
						t.Fatalf("calls %v, want one Emit with one argument", got)
					}
				default:
					assertCalls(t, got, tc.want)
				}
				s := b.Stats()
				if s.Received != 1 || tc.stat(s) != 1 {
					t.Fatalf("stats %+v", s)
				}
				checkInvariant(t, s)
			})
		}
	}
}

func emitted(s Stats) uint64 { return s.Emitted }
func applied(s Stats) uint64 { return s.Applied }
func ignored(s Stats) uint64 { return s.Ignored }

// The room forms of a JSON emit in namespace "/": one room, a list, None
// (every client of the node), with skip_sid as a string or a list.
func TestHandleRoomForms(t *testing.T) {
	msg := func(room, skip string) []byte {
		return []byte(`{"method": "emit", "event": "batch_status", "data": [{"batch_id": "9", "status": "processing"}], "binary": false, "namespace": "/", "room": ` +
			room + `, "skip_sid": ` + skip + `, "callback": null, "host_id": "0123456789abcdef0123456789abcdef"}`)
	}
	const arg = `{"batch_id":"9","status":"processing"}`
	cases := []struct {
		room, skip string
		want       call
	}{
		{`"batch_9"`, `null`, emitCall("batch_status", []string{"batch_9"}, nil, arg)},
		{`["batch_9", "project_1"]`, `null`, emitCall("batch_status", []string{"batch_9", "project_1"}, nil, arg)},
		{`["batch_9"]`, `"sid1"`, emitCall("batch_status", []string{"batch_9"}, []string{"sid1"}, arg)},
		{`null`, `null`, broadcastCall("batch_status", nil, arg)},
		{`null`, `["sid1", "sid2"]`, broadcastCall("batch_status", []string{"sid1", "sid2"}, arg)},
	}
	for _, tc := range cases {
		t.Run(tc.room+"/"+tc.skip, func(t *testing.T) {
			em := newFake()
			b, _ := unitBridge(t, em)
			b.handle(msg(tc.room, tc.skip))
			assertCalls(t, em.snapshot(), []call{tc.want})
			if got := em.snapshot()[0]; got.Broadcast && got.Rooms != nil {
				t.Fatalf("broadcast with rooms %v", got.Rooms)
			}
			checkInvariant(t, b.Stats())
		})
	}
}

// Pickles that would run code are refused, logged once at WARN with the
// reason and only a prefix of the message, and the next message is served.
func TestHandleUnsafePickles(t *testing.T) {
	files := []string{}
	for _, n := range []string{"hostile_eval", "hostile_object", "hostile_os_system", "hostile_out_of_band", "hostile_persistent_id", "hostile_subprocess", "refused_emit_bytes", "refused_emit_set", "refused_emit_bytearray"} {
		for _, f := range fixtureFiles(t, n) {
			if strings.HasSuffix(f, ".pickle") {
				files = append(files, f)
			}
		}
	}
	em := newFake()
	b, lb := unitBridge(t, em)
	for _, f := range files {
		p := fixture(t, f)
		b.handle(p)
		if len(p) > logPrefixBytes+8 && strings.Contains(lb.String(), string(p)) {
			t.Fatalf("%s: the whole message was logged", f)
		}
	}
	if got := em.snapshot(); len(got) != 0 {
		t.Fatalf("unsafe pickles reached the emitter: %v", got)
	}
	s := b.Stats()
	if s.Dropped.Unsafe != uint64(len(files)) || s.Received != uint64(len(files)) {
		t.Fatalf("stats %+v after %d unsafe pickles", s, len(files))
	}
	warns := lb.lines("level=WARN", "unsafe pickle")
	if len(warns) != len(files) {
		t.Fatalf("%d WARN lines for %d unsafe pickles:\n%s", len(warns), len(files), lb.String())
	}
	if !strings.Contains(warns[0], "prefix=") || !strings.Contains(warns[0], "error=") {
		t.Fatalf("WARN line lacks the reason or prefix: %s", warns[0])
	}
	// The reason names the refused opcode.
	if len(lb.lines("unsafe pickle", "GLOBAL at offset")) == 0 {
		t.Errorf("no refusal names the opcode:\n%s", lb.String())
	}
	b.handle(fixture(t, "emit_room.p4.pickle"))
	assertCalls(t, em.snapshot(), []call{emitCall("log_line", []string{"project_42"}, nil, `{"job_id":"j1","message":"step 1/3 done"}`)})
	checkInvariant(t, b.Stats())
}

func TestHandleRefusals(t *testing.T) {
	cases := []struct {
		name, msg string
		stat      func(Stats) uint64
		log       string
	}{
		{"garbage", "hello", func(s Stats) uint64 { return s.Dropped.Malformed }, "malformed"},
		{"empty", "", func(s Stats) uint64 { return s.Dropped.Malformed }, "malformed"},
		{"truncated json", `{"method": "emit", "event": "x"`, func(s Stats) uint64 { return s.Dropped.Malformed }, "malformed"},
		{"emit without event", `{"method": "emit", "data": [1], "namespace": "/", "room": "r"}`, func(s Stats) uint64 { return s.Dropped.Malformed }, "malformed"},
		{"truncated pickle", string(fixture(t, "emit_room.p4.pickle")[:40]), func(s Stats) uint64 { return s.Dropped.Malformed }, "malformed"},
		{"unknown method", `{"method": "frobnicate", "namespace": "/"}`, func(s Stats) uint64 { return s.Dropped.Unsupported }, "unsupported method"},
		{"too large", `{"method": "emit", "event": "x", "data": ["` + strings.Repeat("y", 2000) + `"], "namespace": "/", "room": null}`, func(s Stats) uint64 { return s.Dropped.TooLarge }, "too large"},
		{"too deep", `{"method": "emit", "event": "x", "data": [` + strings.Repeat("[", 150) + strings.Repeat("]", 150) + `], "namespace": "/", "room": null}`, func(s Stats) uint64 { return s.Dropped.TooLarge }, "limits"},
		{"binary json", `{"method": "emit", "event": "blob", "data": [{"png": {"_placeholder": true, "num": 0}}, "iVBORw=="], "binary": true, "namespace": "/", "room": "r"}`, func(s Stats) uint64 { return s.Dropped.Binary }, "binary"},
		{"foreign namespace", `{"method": "emit", "event": "x", "data": [1], "namespace": "/admin", "room": null}`, func(s Stats) uint64 { return s.Dropped.ForeignNamespace }, "another namespace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			em := newFake()
			b, lb := unitBridge(t, em, func(o *Options) { o.MaxMessageBytes = 1024 })
			b.handle([]byte(tc.msg))
			if got := em.snapshot(); len(got) != 0 {
				t.Fatalf("refused message reached the emitter: %v", got)
			}
			s := b.Stats()
			if tc.stat(s) != 1 {
				t.Fatalf("stats %+v", s)
			}
			checkInvariant(t, s)
			if len(lb.lines(tc.log)) != 1 {
				t.Fatalf("want one log line with %q:\n%s", tc.log, lb.String())
			}
			// The node keeps serving.
			b.handle(fixture(t, "emit_room.json"))
			if len(em.emits()) != 1 {
				t.Fatalf("next message not emitted: %v", em.snapshot())
			}
		})
	}
}

func TestHandleNaNIsNotJSON(t *testing.T) {
	// python's json.dumps writes NaN; a pickle carries float('nan') as is.
	em := newFake()
	b, _ := unitBridge(t, em)
	m := flaskqueue.Message{Method: flaskqueue.MethodEmit, Event: "x", Data: []any{nan()}}
	if _, err := m.PayloadJSON(); err == nil {
		t.Skip("flaskqueue encodes NaN; nothing to check")
	}
	b.handle([]byte(`{"method": "emit", "event": "x", "data": [NaN], "namespace": "/", "room": "r"}`))
	s := b.Stats()
	if s.Dropped.NotJSON+s.Dropped.Malformed != 1 || len(em.snapshot()) != 0 {
		t.Fatalf("NaN emit: stats %+v, calls %v", s, em.snapshot())
	}
	checkInvariant(t, s)
}

func nan() float64 {
	var z float64
	return z / z
}

// A panicking Emitter costs one message, not the node.
func TestHandleEmitterPanic(t *testing.T) {
	em := newFake()
	em.panicOn = "boom"
	b, lb := unitBridge(t, em)
	b.handle([]byte(`{"method": "emit", "event": "boom", "data": [1], "namespace": "/", "room": "r"}`))
	b.handle(fixture(t, "emit_room.json"))
	s := b.Stats()
	if s.Dropped.Failed != 1 || s.Emitted != 1 {
		t.Fatalf("stats %+v", s)
	}
	checkInvariant(t, s)
	if len(lb.lines("level=ERROR", "panic")) != 1 {
		t.Fatalf("panic not logged:\n%s", lb.String())
	}
}

// JSON arguments reach the Emitter as encoded once, in order.
func TestEmitArgsAreValidJSON(t *testing.T) {
	em := newFake()
	b, _ := unitBridge(t, em)
	b.handle(fixture(t, "emit_nested.json"))
	for _, a := range em.emits()[0].Args {
		if !json.Valid([]byte(a)) {
			t.Fatalf("invalid JSON argument %s", a)
		}
	}
}

func TestRunTwice(t *testing.T) {
	b, _ := unitBridge(t, newFake())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	waitFor(t, "Run to start", 5e9, func() bool { return b.running.Load() })
	if err := b.Run(ctx); err == nil {
		t.Fatal("second concurrent Run: want an error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if err := b.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("Health after Run = %v, want stopped", err)
	}
}
