package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/metrics"
)

func subscribed(t *testing.T, url, project string) *rawClient {
	t.Helper()
	c := dial(t, url)
	t.Cleanup(func() { _ = c.conn.Close() })
	c.send("40", `42["subscribe_project",{"project_id":"`+project+`"}]`)
	if c.waitEvent("subscribed_project") == "" {
		t.Fatal("subscribe not answered")
	}
	return c
}

func logLine(room string, i int) event.Event {
	return event.Event{Name: "log_line", Rooms: []string{room}, Payload: json.RawMessage(fmt.Sprintf(`{"job_id":"j","message":"%d"}`, i))}
}

// directNow reports whether the only connected client's broadcasts take
// the direct path (fanout.go).
func directNow(s *Server) bool {
	direct := false
	s.io.Sockets().Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
		direct = directTransport(sock) != nil
		return false
	})
	return direct
}

func TestCloseFrameAnswered(t *testing.T) {
	_, url := newTestServer(t, Options{})
	c := subscribed(t, url, "p")
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			t.Fatalf("after the client's close frame: %v, want the server's close frame 1000", err)
		}
		return
	}
}

// The Engine.IO close packet ends the session at once (not at the ping
// timeout), and a text frame that is not UTF-8 fails the connection with
// 1007 (RFC 6455 8.1). Either way the client's room membership goes.
func TestClientLeavesOrFailsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"engine.io close packet", []byte("1"), websocket.CloseNormalClosure},
		{"invalid UTF-8", []byte("42[\"subscribe_project\",{\"project_id\":\"\xff\xfe\"}]"), websocket.CloseInvalidFramePayloadData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, url := newTestServer(t, Options{})
			c := subscribed(t, url, "p")
			if err := c.conn.WriteMessage(websocket.TextMessage, tc.frame); err != nil {
				t.Fatal(err)
			}
			expectClosedWith(t, s, c.conn, tc.code)
		})
	}
}

func TestPingFrameAnswered(t *testing.T) {
	_, url := newTestServer(t, Options{})
	c := subscribed(t, url, "p")
	pong := make(chan string, 1)
	c.conn.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.conn.WriteControl(websocket.PingMessage, []byte("are-you-there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _, _ = c.conn.ReadMessage() }() // control frames are handled while reading
	select {
	case got := <-pong:
		if got != "are-you-there" {
			t.Fatalf("pong carries %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}

// TestBroadcastOrderAndSelection sends numbered events to rooms of many
// clients (more than one fan-out chunk): every member gets every event of
// its rooms once and in order, a client in two rooms once per event,
// excepted rooms nothing, and nobody else anything.
func TestBroadcastOrderAndSelection(t *testing.T) {
	s, url := newTestServer(t, Options{})
	const members, events = 150, 300
	var clients []*rawClient
	for range members {
		clients = append(clients, subscribed(t, url, "a"))
	}
	both := subscribed(t, url, "a")
	both.send(`42["subscribe_project",{"project_id":"b"}]`)
	if both.waitEvent("subscribed_project") == "" {
		t.Fatal("second subscribe not answered")
	}
	other := subscribed(t, url, "c")

	for i := range events {
		s.Deliver(event.Event{Name: "log_line", Rooms: []string{"project_a", "project_b"}, Payload: json.RawMessage(fmt.Sprintf(`{"job_id":"j","message":"%d"}`, i))})
	}
	s.Emit("log_line", []string{"project_a"}, false, []string{"project_b"}, []json.RawMessage{json.RawMessage(`{"job_id":"j","message":"not for both"}`)})
	s.Emit("log_line", nil, true, nil, []json.RawMessage{json.RawMessage(`{"job_id":"j","message":"everyone"}`)})

	var wg sync.WaitGroup
	check := func(c *rawClient, wantExcepted bool) {
		defer wg.Done()
		for i := range events {
			if got, want := c.waitEvent("log_line"), fmt.Sprintf(`{"job_id":"j","message":"%d"}`, i); got != want {
				t.Errorf("event %d: got %q, want %q", i, got, want)
				return
			}
		}
		next := c.waitEvent("log_line")
		if wantExcepted {
			if next != `{"job_id":"j","message":"not for both"}` {
				t.Errorf("got %q, want the event that excepts project_b", next)
			}
			next = c.waitEvent("log_line")
		}
		if next != `{"job_id":"j","message":"everyone"}` {
			t.Errorf("got %q, want the broadcast", next)
		}
	}
	for _, c := range clients {
		wg.Add(1)
		go check(c, true)
	}
	wg.Add(1)
	go check(both, false)
	wg.Wait()
	if got := other.waitEvent("log_line"); got != `{"job_id":"j","message":"everyone"}` {
		t.Fatalf("a client of another room got %q first", got)
	}
}

// TestSlowClientDisconnected: a client that reads nothing is cut off once
// its backlog passes maxPendingBytes, counted as LimitWSBuffer; the others
// get every event.
func TestSlowClientDisconnected(t *testing.T) {
	m := metrics.New()
	s, url := newTestServer(t, Options{Metrics: m})
	slow := subscribed(t, url, "big")
	fast := subscribed(t, url, "big")
	big := strings.Repeat("x", 64<<10)
	const events = 400 // 25 MiB: more than the kernel buffers and the limit
	received := make(chan int, 1)
	var read atomic.Int64
	go func() {
		n := 0
		for n < events {
			if fast.waitEvent("log_line") == "" {
				break
			}
			n++
			read.Store(int64(n))
		}
		received <- n
	}()
	for i := range events {
		// Paced by the reading client (at most 2 MiB ahead of it, bounded
		// in time): a reader that falls 8 MiB behind is cut too, by design.
		for deadline := time.Now().Add(10 * time.Second); int64(i)-read.Load() > 32 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		s.Deliver(event.Event{Name: "log_line", Rooms: []string{"project_big"}, Payload: json.RawMessage(`{"job_id":"j","message":"` + big + `"}`)})
	}
	if n := <-received; n != events {
		t.Fatalf("the reading client got %d of %d events", n, events)
	}
	// The slow client's connection must end; reading it now drains what the
	// kernel held and then sees the close.
	_ = slow.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := 0
	for {
		_, _, err := slow.conn.ReadMessage()
		if err != nil {
			if strings.Contains(err.Error(), "timeout") {
				t.Fatalf("slow client still connected after %d frames", got)
			}
			break
		}
		got++
	}
	if got >= events {
		t.Fatalf("slow client got all %d events: the limit never applied", got)
	}
	if n := limitHits(t, m, LimitWSBuffer); n != 1 {
		t.Fatalf("gateway_limit_hits_total{limit=%q} = %d, want 1", LimitWSBuffer, n)
	}
}

// TestBlockedWriteDisconnected: a client that reads nothing while less
// than maxPendingBytes waits for it is cut off when one write blocks for
// the write timeout, counted as LimitWSWriteTimeout.
func TestBlockedWriteDisconnected(t *testing.T) {
	m := metrics.New()
	s, url := newTestServer(t, Options{Metrics: m, wsWriteTimeout: 300 * time.Millisecond})
	// A receive buffer of 4 KiB: what the kernel holds for the client is
	// small, the rest waits in a blocking write.
	d := &websocket.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}).DialContext}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	stalled := &rawClient{t: t, conn: conn}
	t.Cleanup(func() { _ = conn.Close() })
	stalled.send("40", `42["subscribe_project",{"project_id":"stall"}]`)
	if stalled.waitEvent("subscribed_project") == "" {
		t.Fatal("subscribe not answered")
	}
	big := strings.Repeat("x", 64<<10)
	const events = 64 // 4 MiB: below maxPendingBytes, above what the kernel holds
	for range events {
		s.Deliver(event.Event{Name: "log_line", Rooms: []string{"project_stall"}, Payload: json.RawMessage(`{"job_id":"j","message":"` + big + `"}`)})
	}
	deadline := time.Now().Add(10 * time.Second)
	for limitHits(t, m, LimitWSWriteTimeout) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the blocked write was not cut off")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := limitHits(t, m, LimitWSBuffer); n != 0 {
		t.Fatalf("counted as ws_buffer too (%d)", n)
	}
}

// TestUpgradedSessionGoesDirect: a session that starts on long-polling
// (socket.io-client's default) and upgrades gets broadcasts sent before,
// during and after the upgrade, in order, and after the upgrade they take
// the direct path.
func TestUpgradedSessionGoesDirect(t *testing.T) {
	s, wsURL := newTestServer(t, Options{})
	base := "http" + strings.TrimPrefix(strings.TrimSuffix(wsURL, "&transport=websocket"), "ws") + "&transport=polling"
	get := func(url string) string {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	post := func(url, body string) {
		t.Helper()
		resp, err := http.Post(url, "text/plain;charset=UTF-8", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	open := get(base)
	var hs struct{ Sid string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(open, "0")), &hs); err != nil || hs.Sid == "" {
		t.Fatalf("open = %q", open)
	}
	session := base + "&sid=" + hs.Sid
	post(session, "40\x1e"+`42["subscribe_project",{"project_id":"u"}]`)
	var polled strings.Builder
	for !strings.Contains(polled.String(), "subscribed_project") {
		polled.WriteString(get(session) + "\x1e")
	}

	const before, during, after = 5, 5, 5
	n := 0
	deliver := func(k int) {
		for range k {
			s.Deliver(logLine("project_u", n))
			n++
		}
	}
	deliver(before)
	if directNow(s) {
		t.Fatal("a long-polling session took the direct path")
	}
	conn, _, err := websocket.DefaultDialer.Dial(wsURL+"&sid="+hs.Sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, b, err := conn.ReadMessage(); err != nil || string(b) != "3probe" {
		t.Fatalf("probe answer %q, %v", b, err)
	}
	deliver(during) // buffered by the engine on the paused polling transport
	// The client finishes the pending poll, as socket.io-client does, then
	// sends the upgrade packet.
	polled.WriteString(get(session) + "\x1e")
	if err := conn.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !directNow(s) {
		if time.Now().After(deadline) {
			t.Fatal("the upgraded session never went direct")
		}
		time.Sleep(5 * time.Millisecond)
	}
	deliver(after)

	// Events 0..n-1 arrive once each, in order, split between the polling
	// responses and the WebSocket.
	var got []string
	for _, packet := range strings.Split(polled.String(), "\x1e") {
		if strings.HasPrefix(packet, `42["log_line",`) {
			got = append(got, packet)
		}
	}
	for len(got) < n {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d events: %v; got %q", len(got), n, err, got)
		}
		if strings.HasPrefix(string(b), `42["log_line",`) {
			got = append(got, string(b))
		}
	}
	for i, g := range got {
		if want := fmt.Sprintf(`42["log_line",{"job_id":"j","message":"%d"}]`, i); g != want {
			t.Fatalf("event %d = %q, want %q (all: %q)", i, g, want, got)
		}
	}
}

// TestHeartbeatUnderLoad keeps many clients answering pings while the
// server broadcasts without pause, with a short heartbeat: pings are
// written whole between broadcast frames and no client that answers them
// is closed.
func TestHeartbeatUnderLoad(t *testing.T) {
	s, url := newTestServer(t, Options{PingInterval: 50 * time.Millisecond, PingTimeout: 2 * time.Second})
	const n = 200
	var clients []*rawClient
	for range n {
		clients = append(clients, subscribed(t, url, "hb"))
	}
	stop := make(chan struct{})
	var closed sync.WaitGroup
	var lost atomicCounter
	for _, c := range clients {
		closed.Add(1)
		go func() {
			defer closed.Done()
			for {
				_ = c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, b, err := c.conn.ReadMessage()
				if err != nil {
					select {
					case <-stop:
					default:
						lost.add()
					}
					return
				}
				if string(b) == "2" {
					if err := c.conn.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
						return
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		s.Deliver(logLine("project_hb", i))
		time.Sleep(2 * time.Millisecond) // paced, so a slow (-race) run does not build a backlog
	}
	close(stop)
	for _, c := range clients {
		_ = c.conn.Close()
	}
	closed.Wait()
	if got := lost.load(); got > 0 {
		t.Fatalf("%d of %d clients were closed by the server while answering every ping", got, n)
	}
}

type atomicCounter struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCounter) add()      { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *atomicCounter) load() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// TestPingDelayFor: an upgraded session's ping (wsTransport.Send) waits
// a quarter of the ping timeout, at most a second.
func TestPingDelayFor(t *testing.T) {
	if d := pingDelayFor(400 * time.Millisecond); d != 100*time.Millisecond {
		t.Fatalf("pingDelayFor(400ms) = %v", d)
	}
	if d := pingDelayFor(20 * time.Second); d != time.Second {
		t.Fatalf("pingDelayFor(20s) = %v, want 1s", d)
	}
}

// TestRoomMembersFollowJoinsAndLeaves: the fan-out adapter caches each
// room's members; every join, leave and disconnect must show in the next
// broadcast.
func TestRoomMembersFollowJoinsAndLeaves(t *testing.T) {
	s, url := newTestServer(t, Options{})
	a := subscribed(t, url, "p")
	s.Deliver(logLine("project_p", 0)) // builds p's member list with a alone
	if got := a.waitEvent("log_line"); got != `{"job_id":"j","message":"0"}` {
		t.Fatalf("a got %q", got)
	}

	b := subscribed(t, url, "p") // joins after the list was built
	s.Deliver(logLine("project_p", 1))
	for name, c := range map[string]*rawClient{"a": a, "b": b} {
		if got := c.waitEvent("log_line"); got != `{"job_id":"j","message":"1"}` {
			t.Fatalf("%s got %q, want event 1", name, got)
		}
	}

	a.send(`42["subscribe_project",{"project_id":"q"}]`, `42["unsubscribe_project",{"project_id":"p"}]`)
	if a.waitEvent("unsubscribed_project") == "" {
		t.Fatal("unsubscribe not answered")
	}
	s.Deliver(logLine("project_p", 2)) // a left p
	s.Deliver(logLine("project_q", 3))
	if got := a.waitEvent("log_line"); got != `{"job_id":"j","message":"3"}` {
		t.Fatalf("a got %q after leaving p, want only q's event 3", got)
	}
	if got := b.waitEvent("log_line"); got != `{"job_id":"j","message":"2"}` {
		t.Fatalf("b got %q, want event 2", got)
	}

	_ = b.conn.Close() // b disconnects; p is empty until c joins
	deadline := time.Now().Add(5 * time.Second)
	for s.Clients() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("b's disconnect never reached the server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Deliver(logLine("project_p", 4))
	c := subscribed(t, url, "p")
	s.Deliver(logLine("project_p", 5))
	if got := c.waitEvent("log_line"); got != `{"job_id":"j","message":"5"}` {
		t.Fatalf("c got %q, want event 5", got)
	}
}

// TestRoomMembersCacheForgetsEmptyRooms: events to rooms nobody is in, and
// rooms whose last member left, leave nothing in the member cache.
func TestRoomMembersCacheForgetsEmptyRooms(t *testing.T) {
	s, url := newTestServer(t, Options{})
	for i := range 500 {
		s.Deliver(logLine(fmt.Sprintf("project_nobody-%d", i), i))
	}
	c := subscribed(t, url, "once")
	s.Deliver(logLine("project_once", 0))
	if got := c.waitEvent("log_line"); got == "" {
		t.Fatal("member got nothing")
	}
	c.send(`42["unsubscribe_project",{"project_id":"once"}]`)
	if c.waitEvent("unsubscribed_project") == "" {
		t.Fatal("unsubscribe not answered")
	}
	a, ok := s.io.Sockets().Adapter().(*fanoutAdapter)
	if !ok {
		t.Fatal("the namespace does not use the fan-out adapter")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.members) != 0 {
		var some []socket.Room
		for r := range a.members {
			if some = append(some, r); len(some) == 3 {
				break
			}
		}
		t.Fatalf("member cache holds %d rooms after they emptied, e.g. %v", len(a.members), some)
	}
}

// A session upgraded from long-polling runs on the library's engine socket
// under wsTransport: the close packet and a text frame that is not UTF-8
// end it at once there too.
func TestUpgradedSessionLeavesOrFailsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"engine.io close packet", []byte("1"), websocket.CloseNormalClosure},
		{"invalid UTF-8", []byte("42[\"x\",\"\xff\xfe\"]"), websocket.CloseInvalidFramePayloadData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, wsURL := newTestServer(t, Options{})
			base := "http" + strings.TrimPrefix(strings.TrimSuffix(wsURL, "&transport=websocket"), "ws") + "&transport=polling"
			resp, err := http.Get(base)
			if err != nil {
				t.Fatal(err)
			}
			open, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			var hs struct{ Sid string }
			if err := json.Unmarshal(bytes.TrimPrefix(open, []byte("0")), &hs); err != nil || hs.Sid == "" {
				t.Fatalf("open = %q", open)
			}
			conn, _, err := websocket.DefaultDialer.Dial(wsURL+"&sid="+hs.Sid, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for _, f := range []string{"2probe", "5"} {
				if err := conn.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
					t.Fatal(err)
				}
				if f == "2probe" {
					if _, b, err := conn.ReadMessage(); err != nil || string(b) != "3probe" {
						t.Fatalf("probe answer %q, %v", b, err)
					}
				}
			}
			if err := conn.WriteMessage(websocket.TextMessage, tc.frame); err != nil {
				t.Fatal(err)
			}
			expectClosedWith(t, s, conn, tc.code)
		})
	}
}

// expectClosedWith reads conn until the server's close frame, which must
// carry code, within 5 s (far below the ping interval plus timeout, 45 s by
// default), then waits until s holds no session.
func expectClosedWith(t *testing.T, s *Server, conn *websocket.Conn, code int) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, code) {
			t.Fatalf("%v, want the server's close frame %d", err, code)
		}
		break
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Clients() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
