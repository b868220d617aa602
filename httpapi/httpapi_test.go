package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/httpapi/httpapitest"
)

func TestErrorHandler(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		err        error
		wantCode   int
		wantBody   string
		retryAfter string
		logged     bool
	}{
		{"HTTP error with a message", http.MethodPost, echo.NewHTTPError(400, "Invalid JSON"), 400, `{"error":"Invalid JSON"}`, "", false},
		{"HTTP error without a string message", http.MethodGet, echo.NewHTTPError(404), 404, `{"error":"Not Found"}`, "", false},
		{"503 asks to retry", http.MethodPost, httpapi.PublishError(&bus.UnavailableError{Err: errors.New("down")}), 503, `{"error":"Event bus unavailable, retry later"}`, "5", false},
		{"replica timeout asks to retry", http.MethodPost, httpapi.PublishError(&bus.UnavailableError{Err: &bus.ReplicaError{Want: 1, Timeout: 500}}), 503, `{"error":"Event not confirmed by the Redis replicas, retry later"}`, "5", false},
		{"other error: generic 500, details logged only", http.MethodPost, errors.New("secret internal detail"), 500, `{"error":"Internal server error"}`, "", true},
		{"HEAD has no body", http.MethodHead, echo.NewHTTPError(405), 405, ``, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			e := echo.New()
			e.HTTPErrorHandler = httpapi.ErrorHandler(slog.New(slog.NewTextHandler(&logs, nil)))
			e.Any("/x", func(echo.Context) error { return tc.err })
			rec := httpapitest.Serve(e, httptest.NewRequest(tc.method, "/x", nil))
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d, want %d", rec.Code, tc.wantCode)
			}
			if tc.wantBody == "" {
				if rec.Body.Len() != 0 {
					t.Fatalf("body %q, want none", rec.Body)
				}
			} else {
				httpapitest.AssertJSON(t, rec.Body.String(), tc.wantBody)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Fatalf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			if tc.logged != strings.Contains(logs.String(), "secret internal detail") {
				t.Fatalf("logged = %v, want %v: %s", !tc.logged, tc.logged, logs.String())
			}
			if strings.Contains(rec.Body.String(), "secret internal detail") {
				t.Fatal("an internal error reached the client")
			}
		})
	}
}

func TestPublishError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{&bus.UnavailableError{Err: errors.New("dial")}, 503},
		{httpapitest.ErrUnavailable, 503},
		{&bus.UnavailableError{Err: fmt.Errorf("publish: %w", &bus.ReplicaError{Want: 1})}, 503},
		{bus.ErrClosed, 500},
		{errors.New("boom"), 500},
	} {
		he := httpapi.PublishError(tc.err)
		if he.Code != tc.code || !errors.Is(he.Internal, tc.err) {
			t.Errorf("PublishError(%v) = %d (%v), want %d", tc.err, he.Code, he.Internal, tc.code)
		}
	}
}

func TestRequestLoggerNamesRouteAndRequestID(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	e := echo.New()
	e.Use(middleware.RequestID())
	e.POST("/api/things/:id", func(c echo.Context) error {
		httpapi.RequestLogger(c, log).Info("handled")
		return c.NoContent(http.StatusNoContent)
	})
	rec := httpapitest.Serve(e, httptest.NewRequest(http.MethodPost, "/api/things/7", nil))
	id := rec.Header().Get(echo.HeaderXRequestID)
	if id == "" || !strings.Contains(logs.String(), "request_id="+id) || !strings.Contains(logs.String(), "route=/api/things/:id") {
		t.Fatalf("log line %q lacks route or request id %q", logs.String(), id)
	}
}

// The request logger writes what slog.Logger.With would have written,
// attributes added along the way and groups included, with either of
// slog's handlers; it is a conforming slog.Handler (testing/slogtest).
func TestRequestLoggerWritesWhatWithWould(t *testing.T) {
	handlers := map[string]func(io.Writer) slog.Handler{
		"text": func(w io.Writer) slog.Handler {
			return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})
		},
		"json": func(w io.Writer) slog.Handler {
			return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})
		},
	}
	for name, newHandler := range handlers {
		t.Run(name, func(t *testing.T) {
			var eager, lazy bytes.Buffer
			write := func(log *slog.Logger) {
				log = log.With(slog.String("job_id", "j1"), slog.Int("n", 2))
				log.Debug("not written", slog.String("x", "y"))
				log.Info("one", slog.String("status", "ok"))
				log.WithGroup("g").With(slog.String("in", "group")).Warn("two", slog.Int("k", 3))
				log.With().Info("three")
			}
			e := echo.New()
			e.Use(middleware.RequestID())
			e.POST("/api/things/:id", func(c echo.Context) error {
				base := slog.New(newHandler(&eager)).With(slog.String("component", "c"))
				write(base.With(slog.String("route", c.Path()), slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID))))
				write(httpapi.RequestLogger(c, slog.New(newHandler(&lazy)).With(slog.String("component", "c"))))
				return c.NoContent(http.StatusNoContent)
			})
			httpapitest.Serve(e, httptest.NewRequest(http.MethodPost, "/api/things/7", nil))
			clock := regexp.MustCompile(`"?time"?[=:]"?[^ ,"]+"?[ ,]`)
			got, want := clock.ReplaceAllString(lazy.String(), ""), clock.ReplaceAllString(eager.String(), "")
			if got != want || strings.Count(want, "\n") != 3 {
				t.Fatalf("request logger wrote\n%s\nWith writes\n%s", got, want)
			}
		})
	}
	t.Run("slogtest", func(t *testing.T) {
		var buf bytes.Buffer
		e := echo.New()
		c := e.NewContext(httptest.NewRequest(http.MethodPost, "/", nil), httptest.NewRecorder())
		slogtest.Run(t, func(*testing.T) slog.Handler {
			buf.Reset()
			return httpapi.RequestLogger(c, slog.New(slog.NewJSONHandler(&buf, nil))).Handler()
		}, func(*testing.T) map[string]any {
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatalf("%q: %v", buf.Bytes(), err)
			}
			delete(m, "route")
			delete(m, "request_id")
			return m
		})
	})
}

func TestLimitInFlight(t *testing.T) {
	entered, release := make(chan struct{}, 2), make(chan struct{})
	var refused []string
	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(httpapitest.Discard)
	e.POST("/x", func(c echo.Context) error {
		entered <- struct{}{}
		<-release
		return c.NoContent(http.StatusOK)
	}, httpapi.LimitInFlight(httpapi.InFlightLimit{Max: 2, OnRefuse: func(limit string) { refused = append(refused, limit) }}))
	done := make(chan int, 2)
	for range 2 {
		go func() { done <- httpapitest.Post(e, "/x", "", nil).Code }()
	}
	<-entered
	<-entered
	rec := httpapitest.Post(e, "/x", "", nil)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || len(refused) != 1 || refused[0] != httpapi.LimitInFlightTotal {
		t.Fatalf("third request: %d, Retry-After %q, refused %v", rec.Code, rec.Header().Get("Retry-After"), refused)
	}
	close(release)
	for range 2 {
		if code := <-done; code != 200 {
			t.Fatalf("a request within the limit answered %d", code)
		}
	}
	// release is closed: the handler returns at once now.
	if rec := httpapitest.Post(e, "/x", "", nil); rec.Code != 200 {
		t.Fatalf("after the others finished: %d", rec.Code)
	}
}

// One client holds at most its share of the slots; another client still
// gets one, and a finished request gives its share back.
func TestLimitInFlightPerClient(t *testing.T) {
	entered, release := make(chan struct{}, 8), make(chan struct{})
	var (
		mu      sync.Mutex
		refused []string
	)
	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(httpapitest.Discard)
	e.POST("/x", func(c echo.Context) error {
		entered <- struct{}{}
		<-release
		return c.NoContent(http.StatusOK)
	}, httpapi.LimitInFlight(httpapi.InFlightLimit{
		Max: 8, PerClient: 2,
		ClientKey: func(r *http.Request) string { return r.Header.Get("X-Client") },
		OnRefuse:  func(limit string) { mu.Lock(); refused = append(refused, limit); mu.Unlock() },
	}))
	post := func(client string) *httptest.ResponseRecorder {
		return httpapitest.Post(e, "/x", "", map[string]string{"X-Client": client})
	}
	done := make(chan int, 3)
	for _, client := range []string{"a", "a", "b"} {
		go func() { done <- post(client).Code }()
	}
	for range 3 {
		<-entered
	}
	if rec := post("a"); rec.Code != 503 {
		t.Fatalf("a third request of client a: %d, want 503", rec.Code)
	}
	mu.Lock()
	if len(refused) != 1 || refused[0] != httpapi.LimitInFlightPerClient {
		t.Fatalf("refusals %v", refused)
	}
	mu.Unlock()
	close(release)
	for range 3 {
		if code := <-done; code != 200 {
			t.Fatalf("a request within the shares answered %d", code)
		}
	}
	if rec := post("a"); rec.Code != 200 {
		t.Fatalf("client a after its requests finished: %d", rec.Code)
	}
}
