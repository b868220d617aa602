package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/sys/unix"

	"github.com/meshgen/gateway/clientaddr"
	"github.com/meshgen/gateway/config"
)

// serving runs an app of cfg on a loopback listener until the test ends;
// stop shuts it down and returns Serve's error.
func serving(t *testing.T, cfg config.Config) (addr string, stop func() error) {
	t.Helper()
	_, addr, stop = servingApp(t, cfg, slog.New(slog.DiscardHandler))
	return addr, stop
}

// servingApp is serving with a logger of the test's, and the App.
func servingApp(t *testing.T, cfg config.Config, log *slog.Logger) (a *App, addr string, stop func() error) {
	t.Helper()
	a, err := New(cfg, log, "test")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	addr = ln.Addr().String()
	waitLive(t, addr)
	return a, addr, stop
}

func devConfig() config.Config {
	cfg := config.Default()
	cfg.Env = config.EnvDevelopment
	cfg.DrainWindow = 0
	cfg.ShutdownTimeout = 3 * time.Second
	return cfg
}

// The HTTP server's bounds: a body sent too slowly on any route is cut at
// http-read-timeout, an idle keep-alive closed at http-idle-timeout, a
// header block over http-max-header-bytes answered 431; a WebSocket lives
// past the read timeout (its reads get deadlines of their own).
func TestHTTPServerBounds(t *testing.T) {
	cfg := devConfig()
	cfg.HTTPReadTimeout = 500 * time.Millisecond
	cfg.HTTPIdleTimeout = 500 * time.Millisecond
	cfg.HTTPMaxHeaderBytes = 4 << 10
	cfg.PingInterval, cfg.PingTimeout = 300*time.Millisecond, time.Second
	addr, _ := serving(t, cfg)

	t.Run("slow body on a route without a body timeout of its own", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = fmt.Fprintf(conn, "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
		start := time.Now()
		for range 30 { // a byte every 100 ms: 3 s if never cut
			if _, err := conn.Write([]byte("x")); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadAll(conn); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("the slow connection was not closed: %v", err)
		}
		if time.Since(start) > 4*time.Second {
			t.Fatal("the slow body was read to its end")
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = fmt.Fprintf(conn, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := r.ReadByte(); err != io.EOF {
			t.Fatalf("the idle connection was not closed by the server: %v", err)
		}
	})
	t.Run("header block too large", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/livez", nil)
		req.Header.Set("X-Big", strings.Repeat("h", 8<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%d, want 431", resp.StatusCode)
		}
	})
	t.Run("a WebSocket outlives the read timeout", func(t *testing.T) {
		conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.WriteMessage(websocket.TextMessage, []byte("40"))
		until := time.Now().Add(2 * time.Second) // four read timeouts
		for time.Now().Before(until) {
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, b, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("closed after %s: %v", 2*time.Second-time.Until(until), err)
			}
			if string(b) == "2" {
				_ = conn.WriteMessage(websocket.TextMessage, []byte("3"))
			}
		}
	})
}

// At shutdown a request whose body trickles in does not hold the process:
// its connection is closed and Serve returns nil within the timeout.
func TestShutdownClosesLingeringRequests(t *testing.T) {
	cfg := devConfig()
	cfg.ShutdownTimeout = 2 * time.Second
	cfg.ProducerBodyTimeout = time.Minute // the producer's own bound is not the one tested
	cfg.HTTPReadTimeout = time.Minute
	addr, stop := serving(t, cfg)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = fmt.Fprintf(conn, "POST /api/webhooks/modal HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Serve returned %v: a lingering request made the stop fail", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the stop took %s, over the shutdown timeout", took)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the lingering connection is still open after the stop: %v", err)
	}
}

// metrics-addr serves /metrics on its own listener, and the main port no
// longer does.
func TestMetricsAddr(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := probe.Addr().String()
	_ = probe.Close()
	cfg := devConfig()
	cfg.MetricsAddr = metricsAddr
	addr, _ := serving(t, cfg)
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "gateway_socket_clients") {
		t.Fatalf("metrics listener: %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the main port serves /metrics: %d", resp.StatusCode)
	}
}

// The connection cap: past 90% idle keep-alives are closed, at the cap new
// connections are closed at once; a closed connection gives its slot back.
func TestConnLimiter(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hits []string
	var mu sync.Mutex
	l := newConnLimiter(inner, 10, 10, nil, func(limit string) { mu.Lock(); hits = append(hits, limit); mu.Unlock() })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }), ConnState: l.connState}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	// Eight idle keep-alives.
	var idle []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	waitOpen := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for l.open.Load() != n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := l.open.Load(); got != n {
			t.Fatalf("%d open, want %d", got, n)
		}
	}
	waitOpen(8)
	// net/http marks a connection idle just after writing its answer: the
	// client may have read it first.
	deadline := time.Now().Add(3 * time.Second)
	for {
		l.mu.Lock()
		n := len(l.idle)
		l.mu.Unlock()
		if n == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle, want 8", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The 10th pushes past 90%: the idle ones are closed.
	c9, _ := net.Dial("tcp", inner.Addr().String())
	defer c9.Close()
	c10, _ := net.Dial("tcp", inner.Addr().String())
	defer c10.Close()
	waitOpen(2)
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("an idle keep-alive was not closed: %v", err)
		}
	}
	mu.Lock()
	reaped := len(hits)
	mu.Unlock()
	if reaped != 8 {
		t.Fatalf("%d idle connections counted as closed, want 8", reaped)
	}
	// Fill to the cap with active connections: the next is closed at once.
	var active []net.Conn
	for range 8 {
		c, _ := net.Dial("tcp", inner.Addr().String())
		defer c.Close()
		active = append(active, c)
	}
	waitOpen(10)
	over, _ := net.Dial("tcp", inner.Addr().String())
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a connection over the cap was not closed: %v", err)
	}
	mu.Lock()
	last := hits[len(hits)-1]
	mu.Unlock()
	if last != limitMaxConnections {
		t.Fatalf("last hit %q", last)
	}
}

func TestRequestIDFromClientsOnlyWhenShortAndClean(t *testing.T) {
	e := echo.New()
	e.Use(dropForeignRequestID)
	e.Use(echoRequestID())
	e.GET("/", func(c echo.Context) error { return c.NoContent(204) })
	for id, kept := range map[string]bool{
		"abc-123_x.y:z":          true,
		strings.Repeat("a", 128): true,
		strings.Repeat("a", 129): false,
		"with space":             false,
		"<script>":               false,
		"line\nbreak":            false,
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header[echo.HeaderXRequestID] = []string{id}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		got := rec.Header().Get(echo.HeaderXRequestID)
		if (got == id) != kept || got == "" {
			t.Errorf("%q: the answer carries %q (kept %v)", id, got, kept)
		}
	}
}

func echoRequestID() echo.MiddlewareFunc { return middleware.RequestID() }

// One address holds at most its share of the connections; another address
// and a trusted proxy still get in, and a closed connection gives its
// share back.
func TestConnLimiterPerAddress(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxies, err := clientaddr.NewResolver([]string{"127.0.0.3/32"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var hits []string
	l := newConnLimiter(inner, 20, 3, proxies.Trusted, func(limit string) { mu.Lock(); hits = append(hits, limit); mu.Unlock() })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }), ConnState: l.connState}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	// served dials from the local address from and reports whether the
	// connection is served (answered) or closed at once.
	served := func(from string) (net.Conn, bool) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = http.ReadResponse(bufio.NewReader(c), nil)
		return c, err == nil
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range 3 {
		c, ok := served("127.0.0.1")
		conns = append(conns, c)
		if !ok {
			t.Fatalf("connection %d of 127.0.0.1 refused within its share", i+1)
		}
	}
	c, ok := served("127.0.0.1")
	conns = append(conns, c)
	if ok {
		t.Fatal("a fourth connection of 127.0.0.1 was served")
	}
	if c, ok := served("127.0.0.2"); !ok {
		t.Fatal("another address was refused")
	} else {
		conns = append(conns, c)
	}
	for i := range 5 {
		c, ok := served("127.0.0.3")
		conns = append(conns, c)
		if !ok {
			t.Fatalf("connection %d of a trusted proxy refused", i+1)
		}
	}
	_ = conns[0].Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, ok := served("127.0.0.1")
		conns = append(conns, c)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection did not give its share back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) == 0 || hits[0] != limitMaxConnectionsPerIP {
		t.Fatalf("hits %v", hits)
	}
	if auto := newConnLimiter(inner, 100, 0, nil, nil); auto.perAddr != 25 {
		t.Fatalf("automatic share of 100: %d, want 25", auto.perAddr)
	}
	if auto := newConnLimiter(inner, 100_000, 0, nil, nil); auto.perAddr != maxAutoPerAddr {
		t.Fatalf("automatic share of 100000: %d, want %d", auto.perAddr, maxAutoPerAddr)
	}
}

// max-clients 0 is the open-file limit minus reserveSessionFiles: with a
// soft limit of 300 files, the 45th session is refused with 503.
func TestMaxClientsDefault(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 300
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Skip("cannot lower the open-file limit:", err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
		}
	}
	defer restore()
	cfg := devConfig()
	cfg.MaxClients = 0
	cfg.HandshakeRatePerIP = 0
	addr, stop := serving(t, cfg)
	restore() // the limit is read when the app is built
	defer func() { _ = stop() }()
	want := 300 - reserveSessionFiles
	refused := 0
	client := &http.Client{Timeout: 5 * time.Second}
	for range want + 5 {
		res, err := client.Get("http://" + addr + "/socket.io/?EIO=4&transport=polling")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable {
			refused++
		}
	}
	if refused != 5 {
		t.Fatalf("%d of %d handshakes refused, want 5 past the automatic max-clients %d", refused, want+5, want)
	}
}

// A refused request whose body is still coming (a producer route without
// a signature header, a polling POST over the handshake bounds) is closed
// at once: the server does not read what is left of the body first, for
// up to http-read-timeout.
func TestRefusedSlowBodyClosedAtOnce(t *testing.T) {
	cfg := devConfig()
	cfg.Env = config.EnvProduction
	cfg.Auth = "none"
	cfg.ModalWebhookSecrets = []string{strings.Repeat("s", 32)}
	cfg.HTTPReadTimeout = 20 * time.Second
	addr, _ := serving(t, cfg)
	for _, target := range []string{"/api/webhooks/modal", "/socket.io/?EIO=4&transport=polling&sid=unknown"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", target)
		r := bufio.NewReader(conn)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("%s: no answer: %v", target, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode < 400 {
			t.Fatalf("%s answered %d", target, resp.StatusCode)
		}
		if _, err := r.ReadByte(); err != io.EOF && (err == nil || !strings.Contains(err.Error(), "reset")) {
			t.Fatalf("%s (%d): the connection was kept open to read the body: %v", target, resp.StatusCode, err)
		}
	}
}

// TestCountedConnCloseWrite: a counted connection passes CloseWrite to the
// TCP connection it wraps (the lean WebSocket session's close on a
// client's error relies on it): the peer reads EOF, can still write, and
// the connection keeps its slot until it is closed.
func TestCountedConnCloseWrite(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newConnLimiter(inner, 10, 10, nil, nil)
	defer l.Close()
	peer, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite", c)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer read %d, %v after CloseWrite; want EOF", n, err)
	}
	if _, err := peer.Write([]byte("still open")); err != nil {
		t.Fatalf("peer write after CloseWrite: %v", err)
	}
	if got := l.open.Load(); got != 1 {
		t.Fatalf("open connections after CloseWrite = %d, want 1 (the slot is kept until Close)", got)
	}
	_ = c.Close()
	if got := l.open.Load(); got != 0 {
		t.Fatalf("open connections after Close = %d, want 0", got)
	}
}
