package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// LimitInFlight returns a middleware that handles at most n requests at
// once: one more answers 503 {"error": "Too many requests in progress,
// retry later"} with Retry-After at once, without waiting (a sender that
// gets it retries; a flood does not pile up goroutines). onRefuse, when
// set, is called for each refusal. It panics when n < 1.
func LimitInFlight(n int, onRefuse func()) echo.MiddlewareFunc {
	if n < 1 {
		panic("httpapi: LimitInFlight needs n >= 1")
	}
	slots := make(chan struct{}, n)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
				return next(c)
			default:
				if onRefuse != nil {
					onRefuse()
				}
				closeAfter(c)
				return echo.NewHTTPError(http.StatusServiceUnavailable, "Too many requests in progress, retry later")
			}
		}
	}
}
