package status

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/event"
)

const testToken = "a-long-enough-status-token"

// probe is a Probe whose figures a test sets.
type probe struct {
	mu       sync.Mutex
	counters Counters
	failures map[string]string
}

func (p *probe) Node(context.Context) Node {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Node{Ready: len(p.failures) == 0, Failures: p.failures, Clients: map[string]int{"websocket": 2, "polling": 1}, Rooms: 1}
}

func (p *probe) Counters() Counters {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counters
	c.Webhooks = maps.Clone(c.Webhooks)
	return c
}

func (p *probe) TopRooms(int) []Room { return []Room{{Name: "project_42", Members: 3}} }

func (p *probe) add(emitted, webhooks2xx float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counters.Emitted += emitted
	if p.counters.Webhooks == nil {
		p.counters.Webhooks = map[string]float64{}
	}
	p.counters.Webhooks["2xx"] += webhooks2xx
}

// serve starts the page of opts (NodeID, Probe and Logger filled in) on a
// real HTTP server.
func serve(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.Probe == nil {
		opts.Probe = &probe{}
	}
	opts.NodeID, opts.Logger = "node-a", slog.New(slog.DiscardHandler)
	s := New(opts)
	e := echo.New()
	s.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		s.Close()
		srv.Close()
	})
	return s, srv
}

// noRedirect does not follow redirects, so a test sees the 303 and its
// cookie.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends a request (no redirect followed) and returns the answer.
func do(t *testing.T, method, url, body string, header map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func get(t *testing.T, url string, header map[string]string) *http.Response {
	t.Helper()
	return do(t, http.MethodGet, url, "", header)
}

func login(t *testing.T, base, body string, header map[string]string) *http.Response {
	t.Helper()
	return do(t, http.MethodPost, base+LoginPath, body, header)
}

func TestTokenGuardsEveryRouteButAssets(t *testing.T) {
	_, srv := serve(t, Options{Token: testToken})
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	for _, tc := range []struct {
		name   string
		path   string
		header map[string]string
		want   int
	}{
		{"page without token shows the login form", Path, nil, http.StatusUnauthorized},
		{"state without token", StatePath, nil, http.StatusUnauthorized},
		{"stream without token", EventsPath, nil, http.StatusUnauthorized},
		{"wrong bearer", StatePath, map[string]string{"Authorization": "Bearer nope-nope-nope-nope"}, http.StatusUnauthorized},
		{"basic instead of bearer", StatePath, map[string]string{"Authorization": "Basic " + testToken}, http.StatusUnauthorized},
		{"forged cookie", StatePath, map[string]string{"Cookie": CookieName + "=" + testToken}, http.StatusUnauthorized},
		{"bearer page", Path, bearer, http.StatusOK},
		{"bearer state", StatePath, bearer, http.StatusOK},
		{"assets are public", AssetsPath + "status.js", nil, http.StatusOK},
		{"login form is public", LoginPath, nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := get(t, srv.URL+tc.path, tc.header)
			if res.StatusCode != tc.want {
				t.Fatalf("%s: %d, want %d", tc.path, res.StatusCode, tc.want)
			}
		})
	}
	res := get(t, srv.URL+Path, nil)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("refused page answers %q, want the login form", ct)
	}
}

func TestOpenWithoutToken(t *testing.T) {
	_, srv := serve(t, Options{})
	for _, p := range []string{Path, StatePath} {
		if res := get(t, srv.URL+p, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("%s without a token configured: %d", p, res.StatusCode)
		}
	}
}

func TestLoginSetsSessionCookie(t *testing.T) {
	_, srv := serve(t, Options{Token: testToken})
	form := "token=" + url.QueryEscape(testToken)
	for _, tc := range []struct {
		name       string
		header     map[string]string
		wantSecure bool
	}{
		{"plain HTTP", nil, false},
		{"behind a TLS ingress", map[string]string{"X-Forwarded-Proto": "https"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := login(t, srv.URL, form, tc.header)
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != Path {
				t.Fatalf("login: %d to %q, want 303 to %s", res.StatusCode, res.Header.Get("Location"), Path)
			}
			cookies := res.Cookies()
			if len(cookies) != 1 {
				t.Fatalf("cookies %v", cookies)
			}
			c := cookies[0]
			if c.Name != CookieName || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != tc.wantSecure || c.Path != Path {
				t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Secure=%v, Path=%s", c, tc.wantSecure, Path)
			}
			if strings.Contains(c.Value, testToken) {
				t.Fatal("the cookie holds the token itself")
			}
			if res := get(t, srv.URL+StatePath, map[string]string{"Cookie": c.Name + "=" + c.Value}); res.StatusCode != http.StatusOK {
				t.Fatalf("state with the session cookie: %d", res.StatusCode)
			}
		})
	}
	if res := login(t, srv.URL, "token=wrong-wrong-wrong-wrong", nil); res.StatusCode != http.StatusUnauthorized || len(res.Cookies()) != 0 {
		t.Fatalf("wrong token: %d, cookies %v", res.StatusCode, res.Cookies())
	}
}

func TestLoginAttemptsBound(t *testing.T) {
	s, srv := serve(t, Options{Token: testToken, LoginAttempts: 3})
	session := login(t, srv.URL, "token="+testToken, nil).Cookies()[0]
	for i := range 3 {
		if res := login(t, srv.URL, "token=wrong-wrong-wrong-wrong", nil); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i, res.StatusCode)
		}
	}
	// The budget is spent: even the right token waits, by form or bearer.
	if res := login(t, srv.URL, "token="+testToken, nil); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("login after 3 wrong tokens: %d, want 429", res.StatusCode)
	}
	if res := get(t, srv.URL+StatePath, map[string]string{"Authorization": "Bearer " + testToken}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("bearer after 3 wrong tokens: %d, want 429", res.StatusCode)
	}
	if got := s.Limits().LoginAttempts.Load(); got != 2 {
		t.Fatalf("login_attempts limit counted %d, want 2", got)
	}
	// A session already logged in keeps working.
	if res := get(t, srv.URL+StatePath, map[string]string{"Cookie": session.Name + "=" + session.Value}); res.StatusCode != http.StatusOK {
		t.Fatalf("session after the budget is spent: %d", res.StatusCode)
	}
}

func TestLoginBodyBound(t *testing.T) {
	s, srv := serve(t, Options{Token: testToken})
	body := "token=" + testToken + "&pad=" + strings.Repeat("x", MaxLoginBodyBytes)
	if res := login(t, srv.URL, body, nil); res.StatusCode != http.StatusRequestEntityTooLarge || len(res.Cookies()) != 0 {
		t.Fatalf("oversized form: %d, want 413 and no cookie", res.StatusCode)
	}
	if got := s.Limits().LoginBody.Load(); got != 1 {
		t.Fatalf("login_body limit counted %d, want 1", got)
	}
}

// stream opens the live stream and returns a reader of its events.
func stream(t *testing.T, ctx context.Context, url string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+EventsPath, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res, bufio.NewReader(res.Body)
}

// nextState reads the next state event of a stream.
func nextState(t *testing.T, r *bufio.Reader) State {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var st State
			if err := json.Unmarshal([]byte(data), &st); err != nil {
				t.Fatal(err)
			}
			return st
		}
	}
}

func TestStreamsBound(t *testing.T) {
	s, srv := serve(t, Options{MaxStreams: 2, Interval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var readers []*bufio.Reader
	for range 2 {
		res, r := stream(t, ctx, srv.URL)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
		}
		nextState(t, r)
		readers = append(readers, r)
	}
	if res, _ := stream(t, ctx, srv.URL); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third stream: %d, want 503", res.StatusCode)
	}
	if got := s.Limits().Streams.Load(); got != 1 {
		t.Fatalf("streams limit counted %d, want 1", got)
	}
	// Close ends the open streams (the HTTP server's shutdown waits for them).
	s.Close()
	for i, r := range readers {
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, r)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("stream %d still open after Close", i)
		}
	}
}

func TestStreamPushesSamples(t *testing.T) {
	p := &probe{}
	s, srv := serve(t, Options{Probe: p, Interval: 100 * time.Millisecond})
	_, r := stream(t, t.Context(), srv.URL)
	first := nextState(t, r)
	if first.Node.ID != "node-a" || !first.Node.Ready || len(first.Nodes) != 1 || first.Nodes[0].Clients["websocket"] != 2 {
		t.Fatalf("first state %+v", first)
	}
	p.add(10, 4)
	s.Sample(t.Context()) // at once: no point, the interval has not half passed
	if st := nextState(t, r); len(st.History) != 0 {
		t.Fatalf("a sample right after another drew a point: %+v", st.History)
	}
	time.Sleep(60 * time.Millisecond)
	s.Sample(t.Context())
	st := nextState(t, r)
	if len(st.History) != 1 || st.History[0].Emitted <= 0 || st.History[0].Webhooks["2xx"] <= 0 {
		t.Fatalf("history after a change: %+v", st.History)
	}
	if len(st.Rooms) != 1 || st.Rooms[0].Members != 3 {
		t.Fatalf("rooms %+v", st.Rooms)
	}
}

func TestRatesSkipARestartedCounter(t *testing.T) {
	if _, ok := rates(Counters{Emitted: 10}, Counters{Emitted: 2}, time.Second); ok {
		t.Fatal("a counter that went back gave a rate")
	}
	p, ok := rates(Counters{Publishes: 1, PublishSeconds: 0.001}, Counters{Emitted: 4, Publishes: 3, PublishSeconds: 0.005}, 2*time.Second)
	if !ok || p.Emitted != 2 || p.PublishMs != 2 {
		t.Fatalf("rates %+v %v; want 2 events/s and 2 ms", p, ok)
	}
}

func TestRecentRingBound(t *testing.T) {
	limits := &Limits{}
	r := NewRecent(3, limits)
	published := time.Now().Add(-5 * time.Second)
	for i, job := range []string{"j1", "j2", "j3", "j4", "j5"} {
		e := event.Event{Name: event.JobCompleted, Rooms: []string{"project_42"}, PublishedAt: published,
			Payload: json.RawMessage(`{"project_id":"42","job_id":"` + job + `","status":"completed","result":{"secret":"s3://private"}}`)}
		if i%2 == 0 {
			e.ReceivedAt = published
		}
		r.Observe(e)
	}
	r.Observe(event.Event{Name: event.JobFailed, Rooms: []string{"project_7"}, Payload: json.RawMessage(`{"project_id":7,"job_id":99,"error":"x"}`)})
	list := r.List(time.Now())
	if len(list) != 3 {
		t.Fatalf("%d entries, want the ring's 3", len(list))
	}
	if list[0].JobID != "99" || list[0].Status != "failed" || list[0].Source != "publish" || list[1].JobID != "j5" || list[1].Source != "webhook" || list[2].JobID != "j4" {
		t.Fatalf("entries %+v, want newest first", list)
	}
	if list[1].Age < 4 {
		t.Fatalf("age %v, want about 5 s", list[1].Age)
	}
	if got := limits.Recent.Load(); got != 3 {
		t.Fatalf("recent limit counted %d, want 3 pushed out", got)
	}
	b, _ := json.Marshal(list)
	if strings.Contains(string(b), "s3://private") {
		t.Fatalf("a payload reached the list: %s", b)
	}
}
