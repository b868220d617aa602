package app

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// The access log: one line per request at info (error for a 5xx) with the
// request id, method, path, status and latency; nothing below the
// logger's level; none for the Socket.IO path.
func TestRequestLoggerLines(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level slog.Level
		path  string
		want  []string
	}{
		{"info", slog.LevelInfo, "/ok", []string{`level=INFO msg="http request" request_id=`, " method=POST path=/ok status=200 latency="}},
		{"warn: no line for a 200", slog.LevelWarn, "/ok", nil},
		{"warn: a 500 still logged", slog.LevelWarn, "/fail", []string{`level=ERROR msg="http request" request_id=`, " method=POST path=/fail status=500 latency="}},
		{"socket.io skipped", slog.LevelInfo, "/socket.io/", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			e := echo.New()
			e.Use(middleware.RequestID(), requestLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: tc.level}))))
			e.POST("/ok", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
			e.POST("/fail", func(echo.Context) error {
				return echo.NewHTTPError(http.StatusInternalServerError).SetInternal(errors.New("boom"))
			})
			e.POST("/socket.io/", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
			e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, tc.path, nil))
			if tc.want == nil {
				if logs.Len() != 0 {
					t.Fatalf("logged %q", logs.String())
				}
				return
			}
			if strings.Count(logs.String(), "\n") != 1 {
				t.Fatalf("want one line, logged %q", logs.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(logs.String(), w) {
					t.Fatalf("line %q lacks %q", logs.String(), w)
				}
			}
		})
	}
}
