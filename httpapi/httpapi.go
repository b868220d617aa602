// Package httpapi holds the HTTP plumbing the producer endpoints share (the
// Modal webhook, the job registry, the publish API): reading a bounded
// body, checking an HMAC signature over it, and turning bus errors into
// answers. Every error it returns is an *echo.HTTPError that the app's
// central handler renders as {"error": "..."}.
package httpapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/signature"
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

// SignedBody reads the body (413 past limit) and checks its signature in
// header (401), the first steps of every producer endpoint.
func SignedBody(c echo.Context, limit int64, v *signature.Verifier, header string, log *slog.Logger) ([]byte, error) {
	body, err := ReadBody(c, limit)
	if err != nil {
		return nil, err
	}
	if err := Verify(c, v, header, body, log); err != nil {
		return nil, err
	}
	return body, nil
}

// ReadBody reads the request body up to limit bytes; a larger body answers
// 413 {"error": "Request body too large (limit N bytes)"}.
func ReadBody(c echo.Context, limit int64) ([]byte, error) {
	req := c.Request()
	if req.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return nil, tooLarge(limit)
	}
	if err != nil {
		return nil, echo.NewHTTPError(http.StatusBadRequest, "Could not read request body").SetInternal(err)
	}
	return body, nil
}

func tooLarge(limit int64) error {
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large (limit %d bytes)", limit))
}

// Verify checks header (the request's signature header value) against body.
// A verifier without secrets skips the check with a warning (development
// only: production refuses to start or disables the route). A failed check
// answers 401 {"error": "Invalid signature"}.
func Verify(c echo.Context, v *signature.Verifier, header string, body []byte, log *slog.Logger) error {
	ctx := c.Request().Context()
	if !v.Enabled() {
		log.WarnContext(ctx, "signature verification skipped: no secret configured (development)")
		return nil
	}
	if err := v.Verify(c.Request().Header.Get(header), body); err != nil {
		log.WarnContext(ctx, "request rejected", slog.String("reason", err.Error()))
		return echo.NewHTTPError(http.StatusUnauthorized, "Invalid signature").SetInternal(err)
	}
	return nil
}

// PublishError maps a failed publish to its answer: 503 (the app adds
// Retry-After) when the bus is unavailable, so the sender retries; 500
// otherwise.
func PublishError(err error) error {
	var unavailable interface{ Unavailable() bool }
	if errors.As(err, &unavailable) && unavailable.Unavailable() {
		return &echo.HTTPError{Code: http.StatusServiceUnavailable, Message: "Event bus unavailable, retry later", Internal: err}
	}
	return echo.NewHTTPError(http.StatusInternalServerError, "Failed to publish event").SetInternal(err)
}

// RequestLogger returns log with the route and the request id (set by the
// app's RequestID middleware), so every line a handler writes about a
// request can be tied to its access log line.
func RequestLogger(c echo.Context, log *slog.Logger, route string) *slog.Logger {
	return log.With(slog.String("route", route), slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)))
}

// ErrorHandler is the central Echo error handler: it shapes every HTTP error as {"error": "..."}, the existing
// server's form, and adds Retry-After to 503 answers.
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
