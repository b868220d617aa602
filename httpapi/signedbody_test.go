package httpapi_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/httpapi/httpapitest"
	"github.com/meshgen/gateway/signature"
)

const path = "/api/test"

// echoBody is a handler that answers with the body the middleware verified.
func echoBody(got *[]byte) echo.HandlerFunc {
	return func(c echo.Context) error {
		*got = httpapi.Body(c)
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

func TestSignedBodySignatures(t *testing.T) {
	body := `{"job_id":"j1","status":"completed"}`
	tests := []struct {
		name     string
		secrets  []string
		sig      string
		wantCode int
	}{
		{"valid", []string{"k"}, signature.Header("k", []byte(body)), 200},
		{"valid bare hex", []string{"k"}, strings.TrimPrefix(signature.Header("k", []byte(body)), "sha256="), 200},
		{"valid upper-case prefix", []string{"k"}, "SHA256=" + strings.TrimPrefix(signature.Header("k", []byte(body)), "sha256="), 200},
		{"rotation: new key", []string{"new", "old"}, signature.Header("new", []byte(body)), 200},
		{"rotation: old key", []string{"new", "old"}, signature.Header("old", []byte(body)), 200},
		{"wrong key", []string{"k"}, signature.Header("x", []byte(body)), 401},
		{"signature of another body", []string{"k"}, signature.Header("k", []byte(body+" ")), 401},
		{"missing", []string{"k"}, "", 401},
		{"malformed", []string{"k"}, "sha256=nothex", 401},
		{"wrong prefix", []string{"k"}, "sha1=" + strings.Repeat("0", 64), 401},
		{"no secret (development): unsigned accepted", nil, "", 200},
		{"no secret (development): the seed's mock header accepted", nil, "sha256=MOCKED_SIGNATURE_IF_SECRET_NOT_SET", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			e := httpapitest.Server(t, path, echoBody(&got), httpapi.SignedBodyConfig{Verifier: signature.NewVerifier(tc.secrets), Header: "X-Sig"})
			rec := httpapitest.Post(e, path, body, map[string]string{"X-Sig": tc.sig})
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d (%s)", rec.Code, tc.wantCode, rec.Body)
			}
			if tc.wantCode == 401 {
				httpapitest.AssertJSON(t, rec.Body.String(), `{"error":"Invalid signature"}`)
				if got != nil {
					t.Fatal("the handler ran for an unsigned request")
				}
				return
			}
			if string(got) != body {
				t.Fatalf("handler got body %q, want %q", got, body)
			}
		})
	}
}

func TestSignedBodyLimit(t *testing.T) {
	small := `{"m":"` + strings.Repeat("x", 200) + `"}`
	large := `{"m":"` + strings.Repeat("x", 1<<20) + `"}`
	for _, tc := range []struct {
		name     string
		limit    int64
		body     string
		wantCode int
		wantBody string
	}{
		{"over the limit", 100, small, 413, `{"error":"Request body too large (limit 100 bytes)"}`},
		{"at the limit", int64(len(small)), small, 200, `{"status":"ok"}`},
		{"over the default limit", 0, large, 413, `{"error":"Request body too large (limit 1048576 bytes)"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			e := httpapitest.Server(t, path, echoBody(&got), httpapi.SignedBodyConfig{Header: "X-Sig", Limit: tc.limit})
			rec := httpapitest.Post(e, path, tc.body, nil)
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d", rec.Code, tc.wantCode)
			}
			httpapitest.AssertJSON(t, rec.Body.String(), tc.wantBody)
			if tc.wantCode == 413 && got != nil {
				t.Fatal("the handler ran for an oversized body")
			}
		})
	}
}

// The limit holds when the client announces no length (chunked).
func TestSignedBodyLimitWithoutContentLength(t *testing.T) {
	var got []byte
	e := httpapitest.Server(t, path, echoBody(&got), httpapi.SignedBodyConfig{Header: "X-Sig", Limit: 10})
	req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(strings.Repeat("y", 100)))
	req.ContentLength = -1
	rec := httpapitest.Serve(e, req)
	if rec.Code != 413 || got != nil {
		t.Fatalf("code = %d, handler ran: %v", rec.Code, got != nil)
	}
}

func TestSignedBodyNeverLogsTheSecret(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var got []byte
	e := httpapitest.Server(t, path, echoBody(&got), httpapi.SignedBodyConfig{Verifier: signature.NewVerifier([]string{"topsecret-value"}), Header: "X-Sig", Logger: log})
	httpapitest.Post(e, path, `{"a":1}`, map[string]string{"X-Sig": "sha256=" + strings.Repeat("0", 64)})
	httpapitest.Post(e, path, `{"a":1}`, map[string]string{"X-Sig": signature.Header("topsecret-value", []byte(`{"a":1}`))})
	if strings.Contains(logs.String(), "topsecret-value") {
		t.Fatalf("secret in logs: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "request rejected") {
		t.Fatalf("the refusal was not logged: %s", logs.String())
	}
}

func TestSignedBodyWithConfigPanicsOnBadWiring(t *testing.T) {
	for _, cfg := range []httpapi.SignedBodyConfig{{Logger: httpapitest.Discard}, {Header: "X-Sig"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("SignedBodyWithConfig(%+v) did not panic", cfg)
				}
			}()
			httpapi.SignedBodyWithConfig(cfg)
		}()
	}
}

// standardHeaders signs body the Standard Webhooks way.
func standardHeaders(secret, id string, ts time.Time, body string) map[string]string {
	return map[string]string{
		signature.HeaderID:        id,
		signature.HeaderTimestamp: strconv.FormatInt(ts.Unix(), 10),
		signature.HeaderSignature: signature.StandardSignature(secret, id, ts, []byte(body)),
	}
}

func TestSignedBodyStandardWebhooks(t *testing.T) {
	const secret = "a-standard-secret-of-32-bytes-or-more"
	body := `{"job_id":"j1"}`
	now := time.Now()
	withBodyOnly := func(h map[string]string) map[string]string {
		h["X-Sig"] = signature.Header(secret, []byte(body))
		return h
	}
	tests := []struct {
		name      string
		require   bool
		headers   map[string]string
		wantCode  int
		wantError string
	}{
		{"valid", false, standardHeaders(secret, "msg_1", now, body), 200, ""},
		{"valid, timestamp required", true, standardHeaders(secret, "msg_2", now, body), 200, ""},
		{"whsec_ secret form", false, standardHeaders("whsec_"+base64.StdEncoding.EncodeToString([]byte(secret)), "msg_3", now, body), 0, ""},
		{"Standard wins over a body-only header", false, withBodyOnly(standardHeaders("wrong", "msg_4", now, body)), 401, "Invalid signature"},
		{"stale: 6 minutes old", false, standardHeaders(secret, "msg_5", now.Add(-6*time.Minute), body), 401, "Invalid signature: webhook-timestamp is more than 5m0s away"},
		{"from the future", false, standardHeaders(secret, "msg_6", now.Add(6*time.Minute), body), 401, "Invalid signature: webhook-timestamp is more than 5m0s away"},
		{"signed for another id", false, func() map[string]string {
			h := standardHeaders(secret, "msg_7", now, body)
			h[signature.HeaderID] = "msg_8"
			return h
		}(), 401, "Invalid signature"},
		{"body-only accepted by default", false, map[string]string{"X-Sig": signature.Header(secret, []byte(body))}, 200, ""},
		{"body-only refused when a timestamp is required", true, map[string]string{"X-Sig": signature.Header(secret, []byte(body))}, 401,
			"Invalid signature: webhook-id, webhook-timestamp and webhook-signature are required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			secrets := []string{secret}
			if tc.wantCode == 0 { // the whsec_ case: the gateway is configured with the whsec_ form
				secrets = []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte(secret))}
				tc.wantCode = 200
			}
			e := httpapitest.Server(t, path, echoBody(&got), httpapi.SignedBodyConfig{Verifier: signature.NewVerifier(secrets), Header: "X-Sig", RequireTimestamp: tc.require})
			rec := httpapitest.Post(e, path, body, tc.headers)
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d (%s)", rec.Code, tc.wantCode, rec.Body)
			}
			if tc.wantError != "" {
				httpapitest.AssertJSON(t, rec.Body.String(), `{"error":"`+tc.wantError+`"}`)
				if got != nil {
					t.Fatal("the handler ran for a refused request")
				}
			}
		})
	}
}

// A captured request sent again has no effect; a request that failed is
// handled again when retried with the same id.
func TestSignedBodyReplays(t *testing.T) {
	const secret = "a-standard-secret-of-32-bytes-or-more"
	body := `{"job_id":"j1"}`
	var calls int
	status := http.StatusOK
	handler := func(c echo.Context) error {
		calls++
		if status != http.StatusOK {
			return echo.NewHTTPError(status, "down")
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
	var refused []string
	e := httpapitest.Server(t, path, handler, httpapi.SignedBodyConfig{Verifier: signature.NewVerifier([]string{secret}), Header: "X-Sig",
		OnRefuse: func(route, reason string) { refused = append(refused, route+" "+reason) }})
	h := standardHeaders(secret, "msg_replay", time.Now(), body)

	if rec := httpapitest.Post(e, path, body, h); rec.Code != 200 || calls != 1 {
		t.Fatalf("first: %d, %d calls", rec.Code, calls)
	}
	for range 3 {
		rec := httpapitest.Post(e, path, body, h)
		if rec.Code != 200 || calls != 1 {
			t.Fatalf("replay: %d (%s), %d calls", rec.Code, rec.Body, calls)
		}
		httpapitest.AssertJSON(t, rec.Body.String(), `{"status":"ok","replayed":true}`)
	}
	if len(refused) != 3 || refused[0] != path+" replay" {
		t.Fatalf("refusals counted: %v", refused)
	}

	status = http.StatusServiceUnavailable
	h2 := standardHeaders(secret, "msg_retry", time.Now(), body)
	if rec := httpapitest.Post(e, path, body, h2); rec.Code != 503 || calls != 2 {
		t.Fatalf("failing attempt: %d, %d calls", rec.Code, calls)
	}
	status = http.StatusOK
	if rec := httpapitest.Post(e, path, body, h2); rec.Code != 200 || calls != 3 {
		t.Fatalf("the retry after a failure was not handled: %d, %d calls", rec.Code, calls)
	}
}

// A second request with the id of one still being handled answers 409.
func TestSignedBodyInProgress(t *testing.T) {
	const secret = "a-standard-secret-of-32-bytes-or-more"
	body := `{}`
	entered, release := make(chan struct{}), make(chan struct{})
	handler := func(c echo.Context) error {
		close(entered)
		<-release
		return c.NoContent(http.StatusOK)
	}
	e := httpapitest.Server(t, path, handler, httpapi.SignedBodyConfig{Verifier: signature.NewVerifier([]string{secret}), Header: "X-Sig"})
	h := standardHeaders(secret, "msg_busy", time.Now(), body)
	done := make(chan int)
	go func() { done <- httpapitest.Post(e, path, body, h).Code }()
	<-entered
	rec := httpapitest.Post(e, path, body, h)
	close(release)
	if rec.Code != http.StatusConflict || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("concurrent duplicate: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if code := <-done; code != 200 {
		t.Fatalf("first request: %d", code)
	}
}

// Malformed or missing signature headers are refused before the body is
// read: a body that never comes does not hold the answer.
func TestSignedBodyChecksHeadersBeforeTheBody(t *testing.T) {
	var got []byte
	e := httpapitest.Server(t, path, echoBody(&got), httpapi.SignedBodyConfig{Verifier: signature.NewVerifier([]string{"k"}), Header: "X-Sig"})
	srv := httptest.NewServer(e)
	defer srv.Close()
	for _, headers := range []string{
		"",
		"X-Sig: sha256=nothex\r\n",
		"webhook-id: m\r\nwebhook-timestamp: 1\r\nwebhook-signature: v1,AAAA\r\n",
		"webhook-id: m\r\nwebhook-timestamp: 1\r\nwebhook-signature: " + signature.StandardSignature("k", "m", time.Unix(1, 0), nil) + "\r\n",
	} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// Headers announcing a body that is never sent.
		_, _ = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n%s\r\n", path, headers)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		_ = conn.Close()
		if err != nil {
			t.Fatalf("%q: no answer before the body: %v", headers, err)
		}
		if res.StatusCode != 401 {
			t.Fatalf("%q: %d, want 401", headers, res.StatusCode)
		}
	}
}

// A body sent too slowly is cut at the body timeout with 408.
func TestSignedBodySlowBody(t *testing.T) {
	var got []byte
	var refused []string
	e := httpapitest.Server(t, path, echoBody(&got), httpapi.SignedBodyConfig{Header: "X-Sig", BodyTimeout: 200 * time.Millisecond,
		OnRefuse: func(_, reason string) { refused = append(refused, reason) }})
	srv := httptest.NewServer(e)
	defer srv.Close()
	pr, pw := io.Pipe()
	go func() {
		for range 20 { // one byte every 100 ms, for at most 2 s
			if _, err := pw.Write([]byte(" ")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, pr)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	_ = pr.Close()
	if res.StatusCode != http.StatusRequestTimeout || got != nil || len(refused) != 1 || refused[0] != httpapi.RefusedSlowBody {
		t.Fatalf("slow body: %d, handler ran %v, refused %v", res.StatusCode, got != nil, refused)
	}
}
