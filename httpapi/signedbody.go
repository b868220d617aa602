package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/meshgen/gateway/replay"
	"github.com/meshgen/gateway/signature"
)

// Defaults of SignedBodyConfig.
const (
	// DefaultBodyLimit bounds a body: 1 MiB.
	DefaultBodyLimit = 1 << 20
	// DefaultBodyTimeout bounds the time to read a body.
	DefaultBodyTimeout = 10 * time.Second
)

// Refusal reasons of SignedBody, for OnRefuse.
const (
	RefusedSignatureMissing   = "signature_missing"
	RefusedSignatureMalformed = "signature_malformed"
	RefusedSignatureMismatch  = "signature_mismatch"
	RefusedTimestampRequired  = "timestamp_required"
	RefusedStale              = "stale"
	RefusedReplay             = "replay"
	RefusedInProgress         = "in_progress"
	RefusedTooLarge           = "too_large"
	RefusedSlowBody           = "slow_body"
)

// SignedBodyConfig configures the SignedBody middleware.
type SignedBodyConfig struct {
	// Skipper skips the middleware. Default: never.
	Skipper middleware.Skipper
	// Verifier checks the signature. Nil, or one without secrets, skips the
	// check with a warning on every request (development only: production
	// refuses to start without the webhook secret and does not serve the
	// other producer routes without theirs).
	Verifier *signature.Verifier
	// Header names the body-only signature header ("sha256=<hex>" of the
	// raw body). Required. The Standard Webhooks headers (webhook-id,
	// webhook-timestamp, webhook-signature) are read too and win when
	// present.
	Header string
	// RequireTimestamp refuses the body-only header: only Standard
	// Webhooks signatures, which cannot be replayed, are accepted.
	RequireTimestamp bool
	// Tolerance is how far a webhook-timestamp may be from now. Zero means
	// signature.DefaultTolerance.
	Tolerance time.Duration
	// Replay remembers webhook-ids: a request whose id succeeded before is
	// acknowledged without effect. Nil means an in-memory store of its
	// own, remembering ids for twice the tolerance.
	Replay replay.Store
	// Limit bounds the body in bytes; a larger one answers 413. Zero means
	// DefaultBodyLimit.
	Limit int64
	// BodyTimeout bounds the time to read the body; a slower one answers
	// 408. Zero means DefaultBodyTimeout.
	BodyTimeout time.Duration
	// OnRefuse, when set, is called with the route and the reason (a
	// Refused* constant) of every refused request (for metrics).
	OnRefuse func(route, reason string)
	// Logger receives the refusals and the skipped-check warnings.
	// Required.
	Logger *slog.Logger
}

// DefaultSignedBodyConfig holds the defaults of SignedBodyConfig.
var DefaultSignedBodyConfig = SignedBodyConfig{
	Skipper:     middleware.DefaultSkipper,
	Tolerance:   signature.DefaultTolerance,
	Limit:       DefaultBodyLimit,
	BodyTimeout: DefaultBodyTimeout,
}

// SignedBodyWithConfig returns the middleware every producer route runs
// before its handler. In order, it
//
//  1. checks the signature headers' form, before reading anything else
//     (401): the Standard Webhooks headers when webhook-signature is
//     present (and the timestamp within the tolerance), else, unless
//     RequireTimestamp, the body-only header;
//  2. reads the body up to Limit bytes (413) within BodyTimeout (408);
//  3. verifies the signature over it (401);
//  4. for a Standard signature, claims the webhook-id: a replay of a
//     request that succeeded answers 200 {"status": "ok", "replayed":
//     true} without running the handler, one of a request still in
//     progress 409 with Retry-After; after the handler, the id is kept
//     when it answered 2xx and forgotten otherwise (so a retry is handled).
//
// The handler finds the body with Body. It panics on a config without
// Header or Logger: a bad wiring fails at start-up, never per request.
func SignedBodyWithConfig(cfg SignedBodyConfig) echo.MiddlewareFunc {
	if cfg.Header == "" || cfg.Logger == nil {
		panic("httpapi: SignedBodyConfig needs Header and Logger")
	}
	if cfg.Skipper == nil {
		cfg.Skipper = DefaultSignedBodyConfig.Skipper
	}
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = DefaultSignedBodyConfig.Tolerance
	}
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultSignedBodyConfig.Limit
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultSignedBodyConfig.BodyTimeout
	}
	if cfg.Verifier == nil {
		cfg.Verifier = signature.NewVerifier(nil)
	}
	if cfg.Replay == nil {
		cfg.Replay = replay.NewMemory(2*cfg.Tolerance, 0)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			return cfg.serve(c, next)
		}
	}
}

// serve runs the steps of SignedBodyWithConfig for one request.
func (cfg SignedBodyConfig) serve(c echo.Context, next echo.HandlerFunc) error {
	ctx := c.Request().Context()
	if !cfg.Verifier.Enabled() {
		RequestLogger(c, cfg.Logger).WarnContext(ctx, "signature verification skipped: no secret configured (development)")
		body, err := cfg.readBody(c)
		if err != nil {
			return err
		}
		return next(&signedContext{Context: c, body: body})
	}

	h := c.Request().Header
	var (
		std       signature.Standard
		stdHeader = h.Get(signature.HeaderSignature)
		standard  = stdHeader != ""
		header    string // the body-only signature
		err       error
	)
	switch {
	case standard:
		std, err = signature.ParseStandard(h.Get(signature.HeaderID), h.Get(signature.HeaderTimestamp), stdHeader)
		if err == nil {
			err = std.Fresh(time.Now(), cfg.Tolerance)
		}
	case cfg.RequireTimestamp:
		return cfg.refuse(c, RefusedTimestampRequired, "Invalid signature: webhook-id, webhook-timestamp and webhook-signature are required", nil)
	default:
		header = h.Get(cfg.Header)
		_, err = signature.Parse(header)
	}
	if err != nil {
		return cfg.refuseSignature(c, err)
	}

	body, err := cfg.readBody(c)
	if err != nil {
		return err
	}
	if standard {
		err = cfg.Verifier.VerifyStandard(std, body)
	} else {
		err = cfg.Verifier.Verify(header, body)
	}
	if err != nil {
		return cfg.refuseSignature(c, err)
	}
	sc := &signedContext{Context: c, body: body}
	if !standard {
		return next(sc)
	}
	return cfg.once(sc, std.ID, next)
}

// once runs next unless the webhook-id was handled already.
func (cfg SignedBodyConfig) once(c echo.Context, id string, next echo.HandlerFunc) error {
	ctx := c.Request().Context()
	key := c.Path() + ":" + id
	state, err := cfg.Replay.Begin(ctx, key)
	switch {
	case err != nil:
		return StoreError(fmt.Errorf("replay store: %w", err), "Replay check failed")
	case state == replay.Done:
		cfg.count(c, RefusedReplay)
		RequestLogger(c, cfg.Logger).InfoContext(ctx, "replayed request acknowledged without effect", slog.String("webhook_id", id))
		return c.JSON(http.StatusOK, map[string]any{"status": "ok", "replayed": true})
	case state == replay.InProgress:
		SetRetryAfter(c)
		return cfg.refuse(c, RefusedInProgress, "A request with this webhook-id is in progress", nil, http.StatusConflict)
	}
	err = next(c)
	ok := err == nil && c.Response().Status < 300
	// The outcome is recorded even when the client went away meanwhile.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if ferr := cfg.Replay.Finish(finishCtx, key, ok); ferr != nil {
		RequestLogger(c, cfg.Logger).WarnContext(ctx, "replay store not updated", slog.String("error", ferr.Error()))
	}
	return err
}

// refuseSignature answers 401 for a signature that does not verify.
func (cfg SignedBodyConfig) refuseSignature(c echo.Context, err error) error {
	reason, message := RefusedSignatureMismatch, "Invalid signature"
	switch {
	case errors.Is(err, signature.ErrMissing):
		reason = RefusedSignatureMissing
	case errors.Is(err, signature.ErrMalformed):
		reason = RefusedSignatureMalformed
	case errors.Is(err, signature.ErrStale):
		reason, message = RefusedStale, fmt.Sprintf("Invalid signature: webhook-timestamp is more than %s away", cfg.Tolerance)
	}
	return cfg.refuse(c, reason, message, err)
}

// refuse counts and logs a refusal and returns its HTTP error (401 unless
// code says otherwise).
func (cfg SignedBodyConfig) refuse(c echo.Context, reason, message string, err error, code ...int) error {
	cfg.count(c, reason)
	closeAfter(c)
	status := http.StatusUnauthorized
	if len(code) > 0 {
		status = code[0]
	}
	attrs := []any{slog.String("reason", reason)}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	RequestLogger(c, cfg.Logger).WarnContext(c.Request().Context(), "request rejected", attrs...)
	return echo.NewHTTPError(status, message).SetInternal(err)
}

// closeAfter makes the server close the connection after a refusal at
// once. Connection: close alone is not enough: net/http still reads what
// is left of the body (up to 256 KiB) before closing, which a refused
// client may send as slowly as it likes; a read deadline in the past ends
// that read at once.
func closeAfter(c echo.Context) {
	c.Response().Header().Set(echo.HeaderConnection, "close")
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now())
}

func (cfg SignedBodyConfig) count(c echo.Context, reason string) {
	if cfg.OnRefuse != nil {
		cfg.OnRefuse(c.Path(), reason)
	}
}

// Body returns the body SignedBody read and verified: c is the context
// SignedBody handed to the handler. Nil on a route without it.
func Body(c echo.Context) []byte {
	if sc, ok := c.(*signedContext); ok {
		return sc.body
	}
	return nil
}

// signedContext is the context SignedBody hands to the handler: the
// request's, and the body it read and verified (one small object, where
// echo.Context.Set makes the context's map and locks it on every
// request).
type signedContext struct {
	echo.Context
	body []byte
}

// readBody reads the request body up to the limit, within the body
// timeout.
func (cfg SignedBodyConfig) readBody(c echo.Context) ([]byte, error) {
	req := c.Request()
	if req.ContentLength > cfg.Limit {
		return nil, cfg.tooLarge(c)
	}
	rc := http.NewResponseController(c.Response().Writer)
	deadline := time.Now().Add(cfg.BodyTimeout)
	// Not every ResponseWriter can set a deadline (httptest's cannot);
	// the server's own ReadTimeout still bounds the read then.
	_ = rc.SetReadDeadline(deadline)
	body, err := readAll(http.MaxBytesReader(c.Response(), req.Body, cfg.Limit), req.ContentLength)
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, cfg.tooLarge(c)
	case errors.Is(err, os.ErrDeadlineExceeded):
		cfg.count(c, RefusedSlowBody)
		closeAfter(c)
		return nil, echo.NewHTTPError(http.StatusRequestTimeout, "Request body not received in time").SetInternal(err)
	case err != nil:
		return nil, echo.NewHTTPError(http.StatusBadRequest, "Could not read request body").SetInternal(err)
	}
	// The rest of the exchange is the server's WriteTimeout's business.
	_ = rc.SetReadDeadline(time.Time{})
	return body, nil
}

// readAll reads r to its end. A body of announced length (at most the
// limit, checked before) is read into one buffer of that size, so that a
// body stalled just short of its end holds its size, not the twice as much
// io.ReadAll's growth would have allocated by then; a chunked one is read
// with io.ReadAll.
func readAll(r io.Reader, length int64) ([]byte, error) {
	if length <= 0 {
		return io.ReadAll(r)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

func (cfg SignedBodyConfig) tooLarge(c echo.Context) error {
	cfg.count(c, RefusedTooLarge)
	closeAfter(c)
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large (limit %d bytes)", cfg.Limit))
}
