package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/meshgen/gateway/auth"
)

// A WebSocket-first client gets a lean session (leanengine.go), not the
// library's engine socket.
func TestWebSocketFirstIsLean(t *testing.T) {
	s, url := newTestServer(t, Options{})
	c := subscribed(t, url, "p")
	defer c.conn.Close()
	lean := 0
	s.eio.Clients().Range(func(_ string, conn engine.Socket) bool {
		if _, ok := conn.(*leanSession); ok {
			lean++
		}
		return true
	})
	if lean != 1 {
		t.Fatalf("%d lean sessions, want 1", lean)
	}
	if n := s.eio.ClientsCount(); n != 1 {
		t.Fatalf("ClientsCount %d, want 1", n)
	}
}

// A client that answers every ping stays connected across heartbeats: the
// pong deadline is armed before the ping is written (leanSession.heartbeat).
func TestLeanPromptPongKeepsSession(t *testing.T) {
	s, url := newTestServer(t, Options{PingInterval: 20 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
	c := dial(t, url)
	defer c.conn.Close()
	c.send("40")
	pings := 0
	for i := 0; i < 1000 && pings < 10; i++ {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %d answered pings: %v", pings, err)
		}
		if string(b) == "2" {
			pings++
			c.send("3")
		}
	}
	if n := s.Clients(); n != 1 {
		t.Fatalf("%d clients after 10 answered pings, want 1", n)
	}
}

// A client that does not answer is closed ("ping timeout").
func TestLeanPingTimeoutCloses(t *testing.T) {
	_, url := newTestServer(t, Options{PingInterval: 20 * time.Millisecond, PingTimeout: 50 * time.Millisecond})
	c := dial(t, url)
	defer c.conn.Close()
	if err := readUntilError(c.conn); err == nil {
		t.Fatal("still open without pongs")
	}
}

// The Engine.IO close packet "1" ends the session at once (the ping
// interval here is far longer than the test).
func TestLeanClosePacketClosesAtOnce(t *testing.T) {
	s, url := newTestServer(t, Options{})
	c := subscribed(t, url, "p")
	c.send("1")
	if err := readUntilError(c.conn); err == nil {
		t.Fatal("still open after the close packet")
	}
	for i := 0; i < 500 && s.Clients() != 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.Clients(); n != 0 {
		t.Fatalf("%d clients after the close packet, want 0", n)
	}
}

// A text frame that is not UTF-8 closes the connection with 1007.
func TestLeanInvalidUTF8Closes1007(t *testing.T) {
	_, url := newTestServer(t, Options{})
	c := subscribed(t, url, "p")
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte("42[\"x\",\"\xff\xfe\"]")); err != nil {
		t.Fatal(err)
	}
	err := readUntilError(c.conn)
	if !websocket.IsCloseError(err, websocket.CloseInvalidFramePayloadData) {
		t.Fatalf("after invalid UTF-8: %v, want close 1007", err)
	}
}

// A message over the size limit closes with 1009, also when it comes in
// fragments.
func TestLeanMessageTooBigCloses1009(t *testing.T) {
	_, url := newTestServer(t, Options{MaxMessageBytes: 1000})
	d := websocket.Dialer{WriteBufferSize: 256}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	big := `42["subscribe_project",{"project_id":"p","pad":"` + strings.Repeat("x", 2000) + `"}]`
	if err := conn.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if err := readUntilError(conn); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("after 2 KB in fragments: %v, want close 1009", err)
	}
}

// A client still sending the message that was too big when the server
// closed reads the close frame, and its writes meanwhile do not fail: the
// server shuts its write side and keeps the connection open for a moment
// (closeLinger) instead of closing it with input unread, which resets it.
func TestLeanCloseFrameSurvivesUnreadInput(t *testing.T) {
	_, url := newTestServer(t, Options{MaxMessageBytes: 1000})
	addr := strings.TrimPrefix(url[:strings.Index(url, Path)], "ws://")
	conn := idleClient(t, addr)
	defer conn.Close()
	// A text frame announcing 4,000 bytes (masked with a zero key), past
	// the limit: the server closes on reading the header.
	if _, err := conn.Write([]byte{0x81, 0x80 | 126, 0x0f, 0xa0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	var h [4]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("reading the close frame: %v", err)
	}
	if h != [4]byte{0x88, 2, 0x03, 0xf1} {
		t.Fatalf("frame % x, want a close frame with 1009", h)
	}
	// The client goes on sending the payload it announced; the server's
	// socket still takes it (with an immediate close the first write is
	// answered by a reset and the next ones fail), and then the server's
	// FIN ends the stream.
	chunk := make([]byte, 1000)
	for i := range 4 {
		time.Sleep(20 * time.Millisecond) // lets a reset, if any, arrive
		if _, err := conn.Write(chunk); err != nil {
			t.Fatalf("write %d after the close frame: %v (the connection was reset under it)", i, err)
		}
	}
	if n, err := br.Read(h[:]); err != io.EOF {
		t.Fatalf("after the close frame: %d bytes, %v; want EOF (the server's write side shut)", n, err)
	}
}

// A message in fragments (a small client write buffer) is reassembled.
func TestLeanFragmentedMessage(t *testing.T) {
	_, url := newTestServer(t, Options{})
	d := websocket.Dialer{WriteBufferSize: 64}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, conn: conn}
	defer conn.Close()
	c.send("40", `42["subscribe_project",{"project_id":"p","pad":"`+strings.Repeat("y", 500)+`"}]`)
	if c.waitEvent("subscribed_project") == "" {
		t.Fatal("fragmented subscribe not answered")
	}
}

// readUntilError reads until the connection fails (bounded: 10 s, 10,000
// messages) and returns the error.
func readUntilError(conn *websocket.Conn) error {
	for i := 0; i < 10000; i++ {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := conn.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		}
	}
	return nil
}

// idleClient is the smallest WebSocket client: a raw TCP connection that
// did the upgrade and the Socket.IO CONNECT, and then only exists.
func idleClient(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	fmt.Fprintf(conn, "GET %s?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		Path, addr, base64.StdEncoding.EncodeToString(key))
	br := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("upgrade: %v %v", resp, err)
	}
	readFrame(tb, br) // OPEN
	// "40", masked with a zero key.
	if _, err := conn.Write([]byte{0x81, 0x80 | 2, 0, 0, 0, 0, '4', '0'}); err != nil {
		tb.Fatal(err)
	}
	if f := readFrame(tb, br); !strings.HasPrefix(f, "40") {
		tb.Fatalf("CONNECT reply %q", f)
	}
	return conn
}

// readFrame reads one small unmasked server frame's payload.
func readFrame(tb testing.TB, br *bufio.Reader) string {
	tb.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		tb.Fatal(err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			tb.Fatal(err)
		}
		n = int(l[0])<<8 | int(l[1])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		tb.Fatal(err)
	}
	return string(p)
}

// writeHeapProfile writes the heap profile to $IDLE_HEAP_PROFILE, when
// set: what the sessions hold, for go tool pprof -sample_index=inuse_space.
func writeHeapProfile(tb testing.TB) {
	path := os.Getenv("IDLE_HEAP_PROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(err)
	}
}

// maxIdleSessionBytes bounds the live heap one idle WebSocket session
// holds (server side, plus the test client's own TCP connection): a
// regression of the lean session fails BenchmarkIdleSession.
const maxIdleSessionBytes = 7 << 10

// BenchmarkIdleSession measures what one idle WebSocket client costs the
// gateway: live heap after a GC and goroutines, per session, over 500
// sessions connected and CONNECTed to the default namespace; "lean" is the
// gateway's session (leanengine.go), "library" the library's engine
// socket with the gateway's transport, as before it. b.N is not used for
// the count: the figures are per session, reported as retained-B/session
// and goroutines/session. The lean session's figures are bounded, so a
// regression fails make bench-go.
func BenchmarkIdleSession(b *testing.B) {
	b.Run("lean", func(b *testing.B) {
		heap, goroutines := idleSessionCost(b, Options{})
		if heap > maxIdleSessionBytes {
			b.Fatalf("an idle session retains %.0f B, over the bound of %d", heap, maxIdleSessionBytes)
		}
		if goroutines > 0.05 {
			b.Fatalf("an idle session holds %.2f goroutines, want none", goroutines)
		}
	})
	b.Run("library", func(b *testing.B) {
		idleSessionCost(b, Options{libraryEngine: true})
	})
}

func idleSessionCost(b *testing.B, opts Options) (heap, goroutines float64) {
	const sessions = 500
	s, url := newTestServer(b, opts)
	addr := strings.TrimPrefix(strings.SplitN(url, Path, 2)[0], "ws://")
	// Warm up: the first sessions create pools and maps that stay.
	warm := idleClient(b, addr)
	defer warm.Close()
	var before, after runtime.MemStats
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		conns := make([]net.Conn, 0, sessions)
		for range sessions {
			conns = append(conns, idleClient(b, addr))
		}
		for i := 0; i < 500 && s.Clients() < sessions+1; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		writeHeapProfile(b)
		heap = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / sessions
		goroutines = float64(runtime.NumGoroutine()-g0) / sessions
		for _, c := range conns {
			_ = c.Close()
		}
		for i := 0; i < 500 && s.Clients() > 1; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.ReportMetric(heap, "retained-B/session")
	b.ReportMetric(goroutines, "goroutines/session")
	return heap, goroutines
}

// A message larger than one read (16 KiB) arrives whole.
func TestLeanLargeMessageAcrossReads(t *testing.T) {
	_, url := newTestServer(t, Options{})
	c := dial(t, url)
	defer c.conn.Close()
	c.send("40", `42["subscribe_project",{"project_id":"p","pad":"`+strings.Repeat("z", 300<<10)+`"}]`)
	if c.waitEvent("subscribed_project") == "" {
		t.Fatal("a 300 KiB subscribe was not answered")
	}
}

// credsPolicy records the credentials of each connect and lets it in.
type credsPolicy struct {
	auth.Open
	got chan auth.Credentials
}

func (p credsPolicy) Authenticate(ctx context.Context, c auth.Credentials) (*auth.Principal, error) {
	p.got <- c
	return p.Open.Authenticate(ctx, c)
}

// A lean session keeps of the upgrade request what the credentials need
// (the Authorization and Cookie headers, the query's token), and the
// library's copy of the handshake's headers, query and auth payload is
// released once they are read.
func TestLeanHandshakeCredentialsThenDropped(t *testing.T) {
	p := credsPolicy{got: make(chan auth.Credentials, 1)}
	s, url := newTestServer(t, Options{Auth: p, AuthExtract: auth.ExtractOptions{Cookie: "tok", Query: true}})
	for _, c := range []struct {
		query, connect string
		header         http.Header
		token, source  string
	}{
		{"", "40", http.Header{"Authorization": {"Bearer h"}, "User-Agent": {"test"}}, "h", auth.SourceHeader},
		{"", "40", http.Header{"Cookie": {"a=1; tok=c"}}, "c", auth.SourceCookie},
		{"&token=q", "40", nil, "q", auth.SourceQuery},
		{"", `40{"token":"p"}`, http.Header{"Cookie": {"tok=c"}}, "p", auth.SourceAuth},
	} {
		conn, resp, err := websocket.DefaultDialer.Dial(url+c.query, c.header)
		if err != nil {
			if resp != nil {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("dial: %v: %s %s", err, resp.Status, b)
			}
			t.Fatal(err)
		}
		rc := &rawClient{t: t, conn: conn}
		if msg := rc.read(); !strings.HasPrefix(msg, "0{") {
			t.Fatalf("open packet = %q", msg)
		}
		rc.send(c.connect)
		if msg := rc.read(); !strings.HasPrefix(msg, "40") {
			t.Fatalf("CONNECT reply %q", msg)
		}
		got := <-p.got
		if got.Token != c.token || got.Source != c.source || got.Cookie != c.header.Get("Cookie") || got.Authorization != c.header.Get("Authorization") {
			t.Errorf("%v %q %q: credentials %+v, want token %q from %s", c.header, c.query, c.connect, got, c.token, c.source)
		}
		n := 0
		s.io.Of("/", nil).Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
			n++
			if hs := sock.Handshake(); hs.Headers != nil || hs.Query != nil || hs.Auth != nil {
				t.Errorf("handshake still holds headers %v, query %v, auth %v", hs.Headers, hs.Query, hs.Auth)
			}
			return true
		})
		if n != 1 {
			t.Fatalf("%d sockets, want 1", n)
		}
		_ = conn.Close()
		for i := 0; i < 500 && s.Clients() != 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}
