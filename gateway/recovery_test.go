package gateway

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/recovery"
)

// connectReply is the CONNECT answer's payload.
type connectReply struct {
	SID string `json:"sid"`
	PID string `json:"pid"`
}

func readConnect(t *testing.T, c *rawClient) connectReply {
	t.Helper()
	msg := c.read()
	if !strings.HasPrefix(msg, "40{") {
		t.Fatalf("connect reply = %q", msg)
	}
	var r connectReply
	if err := json.Unmarshal([]byte(msg[2:]), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// A raw client sees the protocol of recovery: a pid in CONNECT, offsets on
// room broadcasts only, and, reconnecting with {pid, offset}, the same pid
// back, the missed events in order, then live ones; the reflection that
// reads the library's pid finds the one the client was sent.
func TestRecoveryOnTheWire(t *testing.T) {
	store := recovery.NewMemoryStore(time.Minute)
	var delivered atomic.Value
	delivered.Store("0")
	s, url := newTestServer(t, Options{Recovery: Recovery{Window: time.Minute, Store: store}, Delivered: func() string { return delivered.Load().(string) }})
	deliver := func(n int) {
		id := strconv.Itoa(n)
		s.Deliver(event.Event{ID: id, Name: "log_line", Rooms: []string{"project_p"}, Payload: json.RawMessage(`{"job_id":"j","message":"` + id + `"}`)})
		delivered.Store(id)
	}

	c := dial(t, url)
	c.send("40")
	first := readConnect(t, c)
	if !validPID(first.PID) {
		t.Fatalf("pid %q", first.PID)
	}
	c.send(`42["subscribe_project",{"project_id":"p"}]`)
	if got := c.read(); got != `42["subscribed_project",{"project_id":"p"}]` {
		t.Fatalf("direct reply = %q (no offset expected)", got)
	}
	if _, found, _ := store.Claim(t.Context(), first.PID, first.SID); !found {
		t.Fatal("the session was not stored under the pid the client got")
	}
	deliver(1)
	if got := c.read(); got != `42["log_line",{"job_id":"j","message":"1"},"1"]` {
		t.Fatalf("broadcast = %q", got)
	}
	_ = c.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.Clients() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	deliver(2)
	deliver(3)

	c = dial(t, url)
	defer c.conn.Close()
	c.send(`40{"pid":"` + first.PID + `","offset":"1"}`)
	second := readConnect(t, c)
	if second.PID != first.PID || second.SID == first.SID {
		t.Fatalf("recovered CONNECT = %+v (first %+v): same pid, a new sid expected", second, first)
	}
	deliver(4)
	for _, want := range []string{"2", "3", "4"} {
		if got := c.read(); got != `42["log_line",{"job_id":"j","message":"`+want+`"},"`+want+`"]` {
			t.Fatalf("after recovery got %q, want event %s", got, want)
		}
	}
}

func TestValidPID(t *testing.T) {
	for pid, want := range map[string]bool{
		"AAAAAAAAAAAAAAAAAAAAAAAA":  true,
		"abc-_0123456789xyzXYZ_-ab": false, // 25
		"abc-_0123456789xyzXYZ_-a":  true,
		"AAAAAAAAAAAAAAAAAAAAAAA=":  false,
		"":                          false,
		"AAAAAAAAAAAAAAAAAAAAAAA\n": false,
	} {
		if validPID(pid) != want {
			t.Errorf("validPID(%q) = %v", pid, !want)
		}
	}
}

// A session the store lost while its client is connected (a Redis that
// restarted empty) is saved again by the next heartbeat.
func TestHeartbeatSavesLostSessions(t *testing.T) {
	store := recovery.NewMemoryStore(time.Minute)
	_, url := newTestServer(t, Options{Recovery: Recovery{Window: time.Second, Store: store}})
	c := dial(t, url)
	defer c.conn.Close()
	c.send("40")
	r := readConnect(t, c)
	// The session is stored by the connection handler, which the library
	// runs after it wrote the CONNECT reply: wait for it (bounded).
	for i := 0; i < 250 && store.Len() == 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if store.Len() != 1 {
		t.Fatalf("%d sessions stored, want 1", store.Len())
	}
	if err := store.Delete(t.Context(), r.PID, r.SID); err != nil || store.Len() != 0 {
		t.Fatal("delete", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for store.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if _, found, _ := store.Claim(t.Context(), r.PID, r.SID); !found {
		t.Fatal("the lost session was not saved again")
	}
}

// With recovery off (recovery-max-disconnection 0) nothing of it is on the
// wire: no pid in CONNECT, no offset on broadcasts, and a CONNECT that
// brings {pid, offset} gets a fresh session (no pid, no replay).
func TestRecoveryOff(t *testing.T) {
	s, url := newTestServer(t, Options{})
	c := dial(t, url)
	defer c.conn.Close()
	c.send("40")
	if r := readConnect(t, c); r.PID != "" {
		t.Fatalf("pid %q with recovery off", r.PID)
	}
	c.send(`42["subscribe_project",{"project_id":"p"}]`)
	c.read()
	s.Deliver(event.Event{ID: "7", Name: "log_line", Rooms: []string{"project_p"}, Payload: json.RawMessage(`{"job_id":"j","message":"7"}`)})
	if got := c.read(); got != `42["log_line",{"job_id":"j","message":"7"}]` {
		t.Fatalf("broadcast = %q, want no offset", got)
	}

	d := dial(t, url)
	defer d.conn.Close()
	d.send(`40{"pid":"` + strings.Repeat("a", 20) + `","offset":"7"}`)
	if r := readConnect(t, d); r.PID != "" {
		t.Fatalf("pid %q on a reconnect with recovery off", r.PID)
	}
}
