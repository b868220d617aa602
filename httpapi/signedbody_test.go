package httpapi_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

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
