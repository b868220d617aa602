package flaskbridge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixtures are flaskqueue's: pickles from Debian 12's real python-socketio
// 5.7.2 encoding (testdata/gen.py) and JSON as python-socketio >= 5.14
// publishes.
const fixtureDir = "../flaskqueue/testdata"

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureFiles lists every encoding of case (case.json, case.pN.pickle).
func fixtureFiles(t testing.TB, name string) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{name + ".json", name + ".p?.pickle"} {
		m, err := filepath.Glob(filepath.Join(fixtureDir, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			out = append(out, filepath.Base(f))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixture for %s", name)
	}
	return out
}

// call is one Emitter call as the fake records it.
type call struct {
	Method    string // Emit, CloseRoom, JoinRoom, LeaveRoom, DisconnectSocket
	Event     string
	Rooms     []string
	Broadcast bool
	Except    []string
	Args      []string
	SID       string
	Room      string
	Local     bool // what JoinRoom/LeaveRoom/DisconnectSocket answered
}

func (c call) String() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// fakeEmitter records calls; sids in local count as connected to this
// node.
type fakeEmitter struct {
	mu      sync.Mutex
	calls   []call
	local   map[string]bool
	panicOn string // Emit of this event panics
}

func newFake(localSIDs ...string) *fakeEmitter {
	f := &fakeEmitter{local: map[string]bool{}}
	for _, s := range localSIDs {
		f.local[s] = true
	}
	return f
}

func (f *fakeEmitter) add(c call) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
}

func (f *fakeEmitter) Emit(event string, rooms []string, broadcast bool, except []string, args []json.RawMessage) {
	if event == f.panicOn {
		panic("emitter exploded on " + event)
	}
	a := make([]string, len(args))
	for i, r := range args {
		a[i] = string(r)
	}
	f.add(call{Method: "Emit", Event: event, Rooms: append([]string(nil), rooms...), Broadcast: broadcast, Except: append([]string(nil), except...), Args: a})
}

func (f *fakeEmitter) CloseRoom(room string) { f.add(call{Method: "CloseRoom", Room: room}) }

func (f *fakeEmitter) sidCall(method, sid, room string) bool {
	f.mu.Lock()
	ok := f.local[sid]
	f.mu.Unlock()
	f.add(call{Method: method, SID: sid, Room: room, Local: ok})
	return ok
}

func (f *fakeEmitter) JoinRoom(sid, room string) bool  { return f.sidCall("JoinRoom", sid, room) }
func (f *fakeEmitter) LeaveRoom(sid, room string) bool { return f.sidCall("LeaveRoom", sid, room) }
func (f *fakeEmitter) DisconnectSocket(sid string) bool {
	return f.sidCall("DisconnectSocket", sid, "")
}

func (f *fakeEmitter) snapshot() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeEmitter) reset() {
	f.mu.Lock()
	f.calls = nil
	f.mu.Unlock()
}

// emits returns the recorded Emit calls.
func (f *fakeEmitter) emits() []call {
	var out []call
	for _, c := range f.snapshot() {
		if c.Method == "Emit" {
			out = append(out, c)
		}
	}
	return out
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the log lines containing every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func newLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() && os.Getenv("FLASKBRIDGE_LOG") != "" {
			t.Logf("bridge log:\n%s", lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// sameCall compares calls, arguments as JSON values.
func sameCall(got, want call) bool {
	if len(got.Args) != len(want.Args) {
		return false
	}
	for i := range got.Args {
		if !sameJSON(got.Args[i], want.Args[i]) {
			return false
		}
	}
	g, w := got, want
	g.Args, w.Args = nil, nil
	if len(g.Rooms) == 0 {
		g.Rooms = nil
	}
	if len(w.Rooms) == 0 {
		w.Rooms = nil
	}
	if len(g.Except) == 0 {
		g.Except = nil
	}
	if len(w.Except) == 0 {
		w.Except = nil
	}
	return reflect.DeepEqual(g, w)
}

func assertCalls(t testing.TB, got, want []call) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = sameCall(got[i], want[i])
	}
	if !ok {
		t.Fatalf("emitter calls:\n got  %v\n want %v", got, want)
	}
}

// waitFor polls cond every 5 ms until it holds or timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkInvariant(t testing.TB, s Stats) {
	t.Helper()
	if sum := s.Emitted + s.Applied + s.Ignored + s.Dropped.Total(); sum != s.Received {
		t.Fatalf("stats do not add up: received %d, accounted %d: %+v", s.Received, sum, s)
	}
}

func emitCall(event string, rooms []string, except []string, args ...string) call {
	return call{Method: "Emit", Event: event, Rooms: rooms, Except: except, Args: args}
}

func broadcastCall(event string, except []string, args ...string) call {
	return call{Method: "Emit", Event: event, Broadcast: true, Except: except, Args: args}
}
