package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshgen/gateway/metrics"
)

// pollingBase is the long-polling URL of a test server's websocket URL.
func pollingBase(wsURL string) string {
	return "http" + strings.TrimPrefix(strings.TrimSuffix(wsURL, "&transport=websocket"), "ws") + "&transport=polling"
}

// handshake opens a long-polling session with header set; it returns the
// status and, on 200, the session URL.
func handshake(t *testing.T, base string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return resp.StatusCode, string(b)
	}
	var hs struct{ Sid string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(string(b), "0")), &hs); err != nil || hs.Sid == "" {
		t.Fatalf("open = %q", b)
	}
	return 200, base + "&sid=" + hs.Sid
}

func limitHits(t *testing.T, m *metrics.Metrics, limit string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rec.Body.String()
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, `gateway_limit_hits_total{limit="`+limit+`"} `) {
			var n int
			_, _ = fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n)
			return n
		}
	}
	return 0
}

func TestHandshakeBounds(t *testing.T) {
	t.Run("max clients", func(t *testing.T) {
		m := metrics.New()
		s, url := newTestServer(t, Options{Metrics: m, Limits: Limits{MaxClients: 2}})
		a, b := dial(t, url), dial(t, url)
		defer a.conn.Close()
		defer b.conn.Close()
		// The engine counts a client just after writing its open packet.
		deadline := time.Now().Add(5 * time.Second)
		for s.eio.ClientsCount() < 2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("third client: %v %+v", err, resp)
		}
		if limitHits(t, m, LimitMaxClients) != 1 {
			t.Fatal("not counted")
		}
	})
	t.Run("long-polling sessions", func(t *testing.T) {
		m := metrics.New()
		_, url := newTestServer(t, Options{Metrics: m, Limits: Limits{MaxPollingSessions: 1}})
		if code, _ := handshake(t, pollingBase(url), nil); code != 200 {
			t.Fatalf("first polling session: %d", code)
		}
		if code, _ := handshake(t, pollingBase(url), nil); code != http.StatusServiceUnavailable {
			t.Fatalf("second polling session: %d", code)
		}
		c := dial(t, url) // a WebSocket session is not a polling one
		c.conn.Close()
		if limitHits(t, m, LimitMaxPolling) != 1 {
			t.Fatal("not counted")
		}
	})
	t.Run("rate of the node", func(t *testing.T) {
		m := metrics.New()
		_, url := newTestServer(t, Options{Metrics: m, Limits: Limits{HandshakeRate: 0.01}}) // a burst of 1, then one per 100 s
		first, _ := handshake(t, pollingBase(url), nil)
		second, _ := handshake(t, pollingBase(url), nil)
		if first != 200 || second != http.StatusServiceUnavailable {
			t.Fatalf("handshakes: %d then %d", first, second)
		}
		if limitHits(t, m, LimitHandshakeRate) != 1 {
			t.Fatal("not counted")
		}
	})
	t.Run("rate of one address, from a trusted header", func(t *testing.T) {
		clientIP := func(r *http.Request) string { return r.Header.Get("X-Test-Client") }
		m := metrics.New()
		_, url := newTestServer(t, Options{Metrics: m, Limits: Limits{HandshakeRatePerIP: 0.01, ClientIP: clientIP}})
		from := func(ip string) http.Header { return http.Header{"X-Test-Client": {ip}} }
		codes := []int{}
		for _, ip := range []string{"10.0.0.1", "10.0.0.1", "10.0.0.2"} {
			code, _ := handshake(t, pollingBase(url), from(ip))
			codes = append(codes, code)
		}
		if codes[0] != 200 || codes[1] != http.StatusServiceUnavailable || codes[2] != 200 {
			t.Fatalf("codes %v: want the second from the same address refused, another address served", codes)
		}
		if limitHits(t, m, LimitHandshakeRatePerIP) != 1 {
			t.Fatal("not counted")
		}
	})
	t.Run("an IPv6 client is counted by its /64", func(t *testing.T) {
		clientIP := func(r *http.Request) string { return r.Header.Get("X-Test-Client") }
		_, url := newTestServer(t, Options{Limits: Limits{HandshakeRatePerIP: 0.01, ClientIP: clientIP}})
		from := func(ip string) http.Header { return http.Header{"X-Test-Client": {ip}} }
		codes := []int{}
		for _, ip := range []string{"2001:db8:0:1::1", "2001:db8:0:1:ffff::2", "2001:db8:0:2::1"} {
			code, _ := handshake(t, pollingBase(url), from(ip))
			codes = append(codes, code)
		}
		if codes[0] != 200 || codes[1] != http.StatusServiceUnavailable || codes[2] != 200 {
			t.Fatalf("codes %v: want another address of the same /64 refused, another /64 served", codes)
		}
	})
}

// The 403 of a refused origin says nothing of the gateway's internals.
func TestRefusalsCarryNoDetail(t *testing.T) {
	_, url := newTestServer(t, Options{AllowedOrigins: []string{"http://app.example"}})
	code, body := handshake(t, pollingBase(url), http.Header{"Origin": {"http://evil.test"}})
	if code != http.StatusForbidden || strings.Contains(body, "gateway") || strings.Contains(body, "origin") {
		t.Fatalf("%d %q", code, body)
	}
}

// A polling POST over the message size answers 413, announced or chunked.
func TestPollingBodyOverTheLimit(t *testing.T) {
	m := metrics.New()
	_, url := newTestServer(t, Options{Metrics: m, MaxMessageBytes: 1000})
	_, session := handshake(t, pollingBase(url), nil)
	big := strings.Repeat("x", 2000)
	for _, chunked := range []bool{false, true} {
		req, _ := http.NewRequest(http.MethodPost, session, strings.NewReader(big))
		if chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(strings.NewReader(big))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked %v: %d, want 413", chunked, resp.StatusCode)
		}
	}
	if limitHits(t, m, LimitPollingBody) != 2 {
		t.Fatal("not counted")
	}
}

// Over its event rate a client gets "Rate limit exceeded" and stays;
// going on past the abuse window disconnects it.
func TestClientEventRate(t *testing.T) {
	m := metrics.New()
	_, url := newTestServer(t, Options{Metrics: m, Limits: Limits{ClientEventRate: 2, ClientEventAbuseWindow: 300 * time.Millisecond}})
	c := dial(t, url)
	defer c.conn.Close()
	c.send("40")
	if msg := c.read(); !strings.HasPrefix(msg, "40") {
		t.Fatalf("connect: %q", msg)
	}
	for range 10 { // a burst of 4 is allowed, the rest refused
		c.send(`42["subscribe_project",{"project_id":"p"}]`)
	}
	answered, refused := 0, 0
	for answered+refused < 10 {
		msg := c.read()
		switch {
		case strings.HasPrefix(msg, `42["subscribed_project"`):
			answered++
		case msg == `42["error",{"message":"Rate limit exceeded"}]`:
			refused++
		case msg == "":
			t.Fatalf("disconnected after %d answers and %d refusals", answered, refused)
		}
	}
	if answered < 1 || refused < 4 {
		t.Fatalf("%d answered, %d refused", answered, refused)
	}
	if n := limitHits(t, m, LimitClientEventRate); n != refused {
		t.Fatalf("%d refusals counted, %d answered", n, refused)
	}
	// Keep going for longer than the abuse window: disconnected.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.send(`42["subscribe_project",{"project_id":"p"}]`)
		_ = c.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, b, err := c.conn.ReadMessage(); err == nil && string(b) == "41" {
			if limitHits(t, m, LimitClientAbuse) != 1 {
				t.Fatal("the disconnect was not counted")
			}
			return
		} else if err != nil && !strings.Contains(err.Error(), "timeout") {
			return // closed
		}
	}
	t.Fatal("a client over its rate for longer than the window stayed connected")
}

// A binary Socket.IO packet (the protocol has none) closes the client: an
// attachment held back would hold memory.
func TestBinaryPacketCloses(t *testing.T) {
	m := metrics.New()
	_, url := newTestServer(t, Options{Metrics: m})
	c := dial(t, url)
	defer c.conn.Close()
	c.send("40")
	c.read()
	c.send(`451-["subscribe_project",{"_placeholder":true,"num":0}]`)
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			if strings.Contains(err.Error(), "timeout") {
				t.Fatal("still open 5 s after a binary packet")
			}
			if limitHits(t, m, LimitBinaryPacket) != 1 {
				t.Fatal("not counted")
			}
			return
		}
	}
}

// A long-polling client that stops polling is cut when its queue passes
// the bound; the rest of its room keeps getting every event.
func TestPollingBufferBound(t *testing.T) {
	m := metrics.New()
	s, url := newTestServer(t, Options{Metrics: m, Limits: Limits{MaxPollingBuffer: 64 << 10}})
	_, session := handshake(t, pollingBase(url), nil)
	resp, err := http.Post(session, "text/plain;charset=UTF-8", strings.NewReader("40\x1e"+`42["subscribe_project",{"project_id":"slow"}]`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	time.Sleep(100 * time.Millisecond) // the join is handled; the client never polls from now on
	fast := subscribed(t, url, "slow")
	defer fast.conn.Close()
	const events = 200 // ~1 KB each: past 64 KiB for the silent poller
	line := strings.Repeat("x", 1000)
	go func() {
		for i := range events {
			ev := logLine("project_slow", i)
			ev.Payload = json.RawMessage(`{"job_id":"j","message":"` + line + `","n":` + jsonInt(i) + `}`)
			s.Deliver(ev)
		}
	}()
	for i := range events {
		if got := fast.waitEvent("log_line"); !strings.Contains(got, `"n":`+jsonInt(i)+`}`) {
			t.Fatalf("the reading client got event %d as %q", i, got)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for limitHits(t, m, LimitPollingBuffer) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the silent poller was not cut")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for s.Clients() != 1 { // the reading client only
		if time.Now().After(deadline) {
			t.Fatalf("%d clients: the cut session is still connected", s.Clients())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// At the default rate (20/s) and window (10 s): a flood is disconnected
// after the window although the bucket keeps granting a token every 50 ms;
// a client at its rate never is; a pause of a second starts the clock
// again.
func TestEventBudgetAbuseAtTheDefaultRate(t *testing.T) {
	start := time.Unix(1000, 0)
	run := func(b *eventBudget, from time.Time, perSecond int, d time.Duration) (abusedAt time.Duration, granted int) {
		step := time.Second / time.Duration(perSecond)
		for at := time.Duration(0); at < d; at += step {
			ok, abuse := b.take(from.Add(at))
			if ok {
				granted++
			}
			if abuse {
				return at, granted
			}
		}
		return -1, granted
	}
	flood := newEventBudget(DefaultClientEventRate, DefaultClientEventAbuseWindow)
	at, granted := run(flood, start, 1000, 15*time.Second)
	if at < DefaultClientEventAbuseWindow || at > DefaultClientEventAbuseWindow+time.Second {
		t.Fatalf("a flood of 1000/s was found abusive at %s (granted %d), want right after %s", at, granted, DefaultClientEventAbuseWindow)
	}
	if granted < 200 {
		t.Fatalf("only %d events granted: the bucket should keep granting its rate", granted)
	}
	steady := newEventBudget(DefaultClientEventRate, DefaultClientEventAbuseWindow)
	if at, _ := run(steady, start, 19, 30*time.Second); at >= 0 {
		t.Fatalf("a client under its rate was found abusive at %s", at)
	}
	// Bursts of 9 s over the rate separated by pauses of 1.5 s: never 10 s
	// without a pause.
	bursty := newEventBudget(DefaultClientEventRate, DefaultClientEventAbuseWindow)
	from := start
	for range 3 {
		if at, _ := run(bursty, from, 200, 9*time.Second); at >= 0 {
			t.Fatalf("a burst shorter than the window was found abusive at %s", at)
		}
		from = from.Add(10500 * time.Millisecond)
	}
}
