// Package httpapi holds what the producer endpoints share (the Modal
// webhook, the job registry, the publish API): the SignedBody middleware
// that reads a bounded body and checks its HMAC signature before a handler
// runs, the mapping of bus errors to answers, the request logger, and the
// central Echo error handler that renders every HTTP error as
// {"error": "..."}, the existing Flask server's form.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
)

// SignatureHeader carries "sha256=<hex>" of the raw body on the gateway's
// own producer endpoints (/api/jobs, /api/events). Modal's webhook uses
// X-Modal-Signature.
const SignatureHeader = "X-Gateway-Signature"

// RetryAfterSeconds is the Retry-After of every 503 answer: the sender
// should try again after that long.
const RetryAfterSeconds = 5

// SetRetryAfter adds Retry-After to a 503 answer.
func SetRetryAfter(c echo.Context) {
	c.Response().Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
}

// ItemError says why one item (a job, an event) of a request was refused.
type ItemError struct {
	// Index is the item's position in the request (0 for a single item).
	Index int `json:"index"`
	// Error is the reason, naming the field.
	Error string `json:"error"`
}

// PublishError maps a failed publish to its answer: 503 (the error handler
// adds Retry-After) when the bus is unavailable, so the sender retries;
// 500 otherwise.
func PublishError(err error) *echo.HTTPError { return StoreError(err, "Failed to publish event") }

// StoreError maps a failure of the bus or of a store behind it: 503 "Event
// bus unavailable, retry later" when err says it is unavailable (nothing
// was stored, the sender retries), 503 "Event not confirmed by the Redis
// replicas, retry later" on a *bus.ReplicaError (stored on the master but
// not confirmed by redis-min-replicas replicas in time: the retry is
// idempotent for events with a dedupe key), else 500 with message.
func StoreError(err error, message string) *echo.HTTPError {
	var unavailable interface{ Unavailable() bool }
	var replicas *bus.ReplicaError
	if errors.As(err, &replicas) {
		return &echo.HTTPError{Code: http.StatusServiceUnavailable, Message: "Event not confirmed by the Redis replicas, retry later", Internal: err}
	}
	if errors.As(err, &unavailable) && unavailable.Unavailable() {
		return &echo.HTTPError{Code: http.StatusServiceUnavailable, Message: "Event bus unavailable, retry later", Internal: err}
	}
	return &echo.HTTPError{Code: http.StatusInternalServerError, Message: message, Internal: err}
}

// RequestLogger returns log with the route and the request id (set by the
// app's RequestID middleware), so every line a handler writes about a
// request can be tied to its access log line. The attributes, these and
// those the handler adds with With, are formatted only when a line is
// written: slog's own handlers format them in With, on every request, even
// at a level that writes none of its lines.
func RequestLogger(c echo.Context, log *slog.Logger) *slog.Logger {
	return slog.New(&lazyAttrs{
		next:  log.Handler(),
		attrs: []slog.Attr{slog.String("route", c.Path()), slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID))},
	})
}

// lazyAttrs is a slog.Handler that keeps the attributes it is given and
// hands them to the next handler only for a record it handles.
type lazyAttrs struct {
	next  slog.Handler
	attrs []slog.Attr
}

// Enabled implements slog.Handler.
func (h *lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle implements slog.Handler: the record as the next handler with the
// kept attributes would have it.
func (h *lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	if err := h.next.WithAttrs(h.attrs).Handle(ctx, r); err != nil {
		return fmt.Errorf("httpapi: request log: %w", err)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (h *lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return &lazyAttrs{next: h.next, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)}
}

// WithGroup implements slog.Handler: the attributes kept so far stay
// outside the group.
func (h *lazyAttrs) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.next.WithAttrs(h.attrs).WithGroup(name)
}

// ErrorHandler is the central Echo error handler: it shapes every HTTP
// error as {"error": "..."} and adds Retry-After to 503 answers. An error
// that is not an *echo.HTTPError is logged and answered 500 with a generic
// message: internal details never reach the client.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code := http.StatusInternalServerError
		message := "Internal server error"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			code = he.Code
			if m, ok := he.Message.(string); ok {
				message = m
			} else {
				message = http.StatusText(code)
			}
		} else {
			log.Error("unhandled error", slog.String("path", c.Path()), slog.String("error", err.Error()))
		}
		if code == http.StatusServiceUnavailable {
			SetRetryAfter(c)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(code)
			return
		}
		_ = c.JSON(code, map[string]string{"error": message})
	}
}
