package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/rooms"
)

func newTestServer(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	opts.Protocol = rooms.NewProtocol(rooms.Options{Follows: rooms.NewMemoryFollows()})
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(opts)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
		hs.Close()
	})
	return s, "ws" + strings.TrimPrefix(hs.URL, "http") + Path + "?EIO=4&transport=websocket"
}

// rawClient speaks Engine.IO/Socket.IO frames directly, so a test can send
// packets without waiting for the server, which no library client does.
type rawClient struct {
	t    testing.TB
	conn *websocket.Conn
}

func dial(t testing.TB, url string) *rawClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &rawClient{t: t, conn: conn}
	if msg := c.read(); !strings.HasPrefix(msg, "0{") {
		t.Fatalf("open packet = %q", msg)
	}
	return c
}

func (c *rawClient) send(frames ...string) {
	for _, f := range frames {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			c.t.Fatalf("write: %v", err)
		}
	}
}

// read returns the next frame, answering pings; "" when the connection ends.
func (c *rawClient) read() string {
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			return ""
		}
		if string(b) == "2" {
			c.send("3")
			continue
		}
		return string(b)
	}
}

// waitEvent reads until event arrives and returns its payload; "" if the
// connection ended first.
func (c *rawClient) waitEvent(event string) string {
	prefix := `42["` + event + `",`
	for {
		msg := c.read()
		if msg == "" {
			return ""
		}
		if strings.HasPrefix(msg, prefix) {
			return strings.TrimSuffix(strings.TrimPrefix(msg, prefix), "]")
		}
	}
}

// pipelinedJoins connects n clients that send CONNECT and join_batch back
// to back, before the server has answered CONNECT, and counts the joins
// that were never answered.
func pipelinedJoins(t *testing.T, url string, n int) (lost int64) {
	var wg sync.WaitGroup
	var missing atomic.Int64
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c := dial(t, url)
			defer c.conn.Close()
			c.send("40", `42["join_batch",{"batch_id":`+jsonInt(i)+`}]`)
			if got := c.waitEvent("joined_batch"); got != `{"batch_id":`+jsonInt(i)+`}` {
				missing.Add(1)
			}
		})
	}
	wg.Wait()
	return missing.Load()
}

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestHandshakeGate sends join_batch in the window between the server's
// CONNECT reply and its namespace registration (here: before the CONNECT
// reply even arrives, the widest form of the React app's emit inside
// on('connect')). With the gate, every join is answered.
func TestHandshakeGate(t *testing.T) {
	_, url := newTestServer(t, Options{})
	if lost := pipelinedJoins(t, url, 300); lost != 0 {
		t.Fatalf("%d of 300 joins lost with the gate on", lost)
	}
}

// TestHandshakeRaceWithoutGate shows the library race the gate closes is
// real, so TestHandshakeGate can fail: without the gate, joins are lost.
func TestHandshakeRaceWithoutGate(t *testing.T) {
	_, url := newTestServer(t, Options{disableGate: true})
	if lost := pipelinedJoins(t, url, 300); lost == 0 {
		t.Fatal("no join lost without the gate: the race this test relies on is gone (library fixed?); revisit the gate")
	} else {
		t.Logf("without the gate %d of 300 pipelined joins were lost", lost)
	}
}

func TestDeliverToRoomsOnly(t *testing.T) {
	s, url := newTestServer(t, Options{})
	in, out := dial(t, url), dial(t, url)
	defer in.conn.Close()
	defer out.conn.Close()
	in.send("40", `42["subscribe_project",{"project_id":"p1"}]`)
	out.send("40", `42["subscribe_project",{"project_id":"p2"}]`)
	if in.waitEvent("subscribed_project") == "" || out.waitEvent("subscribed_project") == "" {
		t.Fatal("subscribe not answered")
	}
	s.Deliver(event.Event{Name: "log_line", Rooms: []string{"project_p1"}, Payload: json.RawMessage(`{"job_id":"j","message":"m"}`)})
	s.Deliver(event.Event{Name: "log_line", Rooms: []string{"project_p2"}, Payload: json.RawMessage(`{"job_id":"k","message":"n"}`)})
	if got := in.waitEvent("log_line"); got != `{"job_id":"j","message":"m"}` {
		t.Fatalf("in got %q", got)
	}
	if got := out.waitEvent("log_line"); got != `{"job_id":"k","message":"n"}` {
		t.Fatalf("out got %q (an event of another room?)", got)
	}
}

func TestAckCarriesReply(t *testing.T) {
	_, url := newTestServer(t, Options{})
	c := dial(t, url)
	defer c.conn.Close()
	c.send("40", `421["join_batch",{"batch_id":5}]`, `422["nope",{}]`)
	acks := map[string]bool{}
	for len(acks) < 2 {
		msg := c.read()
		if msg == "" {
			t.Fatalf("connection ended; acks so far %v", acks)
		}
		if strings.HasPrefix(msg, "43") {
			acks[msg] = true
		}
	}
	if !acks[`431[{"batch_id":5}]`] || !acks[`432[{"message":"Unknown event: nope"}]`] {
		t.Fatalf("acks = %v", acks)
	}
}

// Close may be called twice (the app's shutdown and a test cleanup, say):
// the second call waits for the same close and returns at once once it is
// done, not when its context expires.
func TestCloseIsIdempotent(t *testing.T) {
	s, url := newTestServer(t, Options{})
	c := dial(t, url)
	c.send("40")
	if msg := c.read(); !strings.HasPrefix(msg, "40") {
		t.Fatalf("connect reply = %q", msg)
	}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.Close(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if msg := c.read(); msg != "" {
		t.Fatalf("the client still reads %q after Close", msg)
	}
}

// TestDeliverBatchCoalescesWrites delivers 20 events to two rooms as one
// batch (one bus read), then one at a time, then as a batch with no
// coalescing window: every client gets its events in order each time, and
// the batch takes one write per client where single events take one per
// event.
func TestDeliverBatchCoalescesWrites(t *testing.T) {
	s, url := newTestServer(t, Options{})
	a, b := dial(t, url), dial(t, url)
	defer a.conn.Close()
	defer b.conn.Close()
	a.send("40", `42["subscribe_project",{"project_id":"a"}]`)
	b.send("40", `42["subscribe_project",{"project_id":"b"}]`)
	if a.waitEvent("subscribed_project") == "" || b.waitEvent("subscribed_project") == "" {
		t.Fatal("subscribe not answered")
	}
	const n = 20
	batch := make([]event.Event, n)
	for i := range batch {
		batch[i] = logLine([]string{"project_a", "project_b"}[i%2], i)
	}
	receiveAll := func(how string) {
		t.Helper()
		for i := range n {
			c := map[int]*rawClient{0: a, 1: b}[i%2]
			want := `{"job_id":"j","message":"` + strconv.Itoa(i) + `"}`
			if got := c.waitEvent("log_line"); got != want {
				t.Fatalf("%s: event %d = %q, want %q", how, i, got, want)
			}
		}
	}
	writes := func() uint64 { return wsWriteCalls.nonblocking.Load() + wsWriteCalls.blocking.Load() }

	before := writes()
	s.Deliver(batch...)
	batched := writes() - before
	receiveAll("batch")

	before = writes()
	for _, e := range batch {
		s.Deliver(e)
	}
	single := writes() - before
	receiveAll("one at a time")

	defer func(w time.Duration) { coalesceWindow = w }(coalesceWindow)
	coalesceWindow = 0
	before = writes()
	s.Deliver(batch...)
	unwindowed := writes() - before
	receiveAll("batch, no window")

	t.Logf("write calls for %d events to 2 clients: batch %d, one at a time %d, batch with no window %d", n, batched, single, unwindowed)
	if single < n || unwindowed < n-1 {
		t.Errorf("one at a time %d and with no window %d write calls, want at least one per event (%d)", single, unwindowed, n)
	}
	if batched > 4 { // one per client, and room for a stray heartbeat
		t.Errorf("a batch took %d write calls for 2 clients, want 2", batched)
	}
}

// TestDeliverAllocatesPerEventNotPerRecipient: delivering an event to a
// room of WebSocket clients allocates for the event (its packet and
// frame), nothing for each recipient: queueing reuses the connection's
// array and the write's callback is pooled. Three allocations per
// recipient before (a closure and its two results per write, the pending
// list per event).
func TestDeliverAllocatesPerEventNotPerRecipient(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	s, url := newTestServer(t, Options{})
	const recipients = 40
	clients := make([]*rawClient, recipients)
	for i := range clients {
		c := dial(t, url)
		defer c.conn.Close()
		c.send("40", `42["subscribe_project",{"project_id":"a"}]`)
		if c.waitEvent("subscribed_project") == "" {
			t.Fatal("subscribe not answered")
		}
		clients[i] = c
	}
	s.Deliver(logLine("project_a", 0)) // every connection's array made once
	seq := 1
	allocs := testing.AllocsPerRun(20, func() {
		s.Deliver(logLine("project_a", seq))
		seq++
	})
	t.Logf("%.1f allocations per event to %d clients", allocs, recipients)
	if allocs >= recipients {
		t.Fatalf("%.1f allocations per event to %d clients: some per recipient", allocs, recipients)
	}
	for i := range seq { // and every client got every event, in order
		want := `{"job_id":"j","message":"` + strconv.Itoa(i) + `"}`
		for _, c := range []*rawClient{clients[0], clients[recipients-1]} {
			if got := c.waitEvent("log_line"); got != want {
				t.Fatalf("event %d = %q, want %q", i, got, want)
			}
		}
	}
}

// The client and room counts (the status page, the gauges) follow a
// websocket client, a long-polling one, its upgrade, joins and leaves.
func TestClientAndRoomCounts(t *testing.T) {
	s, url := newTestServer(t, Options{})
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: clients %v", what, s.ClientsByTransport())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	clients := func(ws, polling int) func() bool {
		return func() bool {
			c := s.ClientsByTransport()
			return c["websocket"] == ws && c["polling"] == polling
		}
	}
	rooms := func(want ...RoomSize) func() bool {
		return func() bool {
			n, top := s.Rooms(10)
			return n == len(want) && slices.Equal(top, want)
		}
	}

	a := dial(t, url)
	a.send("40", `42["subscribe_project",{"project_id":"p"}]`)
	if a.waitEvent("subscribed_project") == "" {
		t.Fatal("a: not subscribed")
	}
	waitFor("one websocket client", clients(1, 0))
	waitFor("one room", rooms(RoomSize{"project_p", 1}))

	// b opens on long-polling, connects and subscribes.
	status, session := handshake(t, pollingBase(url), nil)
	if status != 200 {
		t.Fatalf("polling handshake: %d %s", status, session)
	}
	post := func(body string) {
		t.Helper()
		resp, err := http.Post(session, "text/plain;charset=UTF-8", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("post %q: %d", body, resp.StatusCode)
		}
	}
	post("40")
	post(`42["subscribe_project",{"project_id":"p"}]`)
	post(`42["join_batch",{"batch_id":"b"}]`)
	waitFor("a websocket and a polling client", clients(1, 1))
	waitFor("two rooms", rooms(RoomSize{"project_p", 2}, RoomSize{"batch_b", 1}))

	// b upgrades: probe, then upgrade on a websocket of the same session.
	wsURL := strings.Replace(session, "http", "ws", 1)
	wsURL = strings.Replace(wsURL, "transport=polling", "transport=websocket", 1)
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("upgrade dial: %v", err)
	}
	b := &rawClient{t: t, conn: conn}
	b.send("2probe")
	if msg := b.read(); msg != "3probe" {
		t.Fatalf("probe answer = %q", msg)
	}
	b.send("5")
	waitFor("two websocket clients after the upgrade", clients(2, 0))

	_ = a.conn.Close()
	waitFor("a gone", clients(1, 0))
	waitFor("a's room left", rooms(RoomSize{"batch_b", 1}, RoomSize{"project_p", 1}))
	_ = b.conn.Close()
	waitFor("none", clients(0, 0))
	waitFor("no rooms", rooms())
}
