package httpapi

import (
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
)

// Limit names of LimitInFlight's refusals (gateway_limit_hits_total's
// limit label).
const (
	// LimitInFlightTotal: all the requests in progress.
	LimitInFlightTotal = "producer_concurrency"
	// LimitInFlightPerClient: one client's share of them.
	LimitInFlightPerClient = "producer_concurrency_per_ip"
)

// InFlightLimit configures LimitInFlight.
type InFlightLimit struct {
	// Max is the requests handled at once. Required (>= 1).
	Max int
	// PerClient is the share of Max one client may hold. Zero means a
	// quarter of Max (at least 1); it is at most Max.
	PerClient int
	// ClientKey tells which client a request comes from (e.g.
	// clientaddr.Resolver.Key). Nil means no per-client share.
	ClientKey func(*http.Request) string
	// OnRefuse, when set, is called with the limit (LimitInFlightTotal or
	// LimitInFlightPerClient) of each refusal.
	OnRefuse func(limit string)
}

// LimitInFlight returns a middleware that handles at most l.Max requests
// at once, at most l.PerClient of them from one client: one more answers
// 503 {"error": "Too many requests in progress, retry later"} with
// Retry-After at once, without waiting (a sender that gets it retries; a
// flood does not pile up goroutines), and its connection is closed. The
// per-client share keeps one sender of slow bodies from holding every slot
// while the others' webhooks are refused. It panics when l.Max < 1.
func LimitInFlight(l InFlightLimit) echo.MiddlewareFunc {
	if l.Max < 1 {
		panic("httpapi: LimitInFlight needs Max >= 1")
	}
	if l.PerClient <= 0 {
		l.PerClient = max(1, l.Max/4)
	}
	l.PerClient = min(l.PerClient, l.Max)
	slots := make(chan struct{}, l.Max)
	var (
		mu       sync.Mutex
		byClient = make(map[string]int)
	)
	take := func(key string) bool {
		mu.Lock()
		defer mu.Unlock()
		if byClient[key] >= l.PerClient {
			return false
		}
		byClient[key]++
		return true
	}
	release := func(key string) {
		mu.Lock()
		defer mu.Unlock()
		if byClient[key] <= 1 {
			delete(byClient, key)
		} else {
			byClient[key]--
		}
	}
	refuse := func(c echo.Context, limit string) error {
		if l.OnRefuse != nil {
			l.OnRefuse(limit)
		}
		closeAfter(c)
		return echo.NewHTTPError(http.StatusServiceUnavailable, "Too many requests in progress, retry later")
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if l.ClientKey != nil {
				key := l.ClientKey(c.Request())
				if !take(key) {
					return refuse(c, LimitInFlightPerClient)
				}
				defer release(key)
			}
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
				return next(c)
			default:
				return refuse(c, LimitInFlightTotal)
			}
		}
	}
}
