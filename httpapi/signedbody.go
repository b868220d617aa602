package httpapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/meshgen/gateway/signature"
)

// DefaultBodyLimit is the body limit of SignedBodyConfig when none is set:
// 1 MiB.
const DefaultBodyLimit = 1 << 20

// bodyKey is the echo.Context key of the verified body.
const bodyKey = "httpapi.body"

// SignedBodyConfig configures the SignedBody middleware.
type SignedBodyConfig struct {
	// Skipper skips the middleware. Default: never.
	Skipper middleware.Skipper
	// Verifier checks the signature. Nil, or one without secrets, skips the
	// check with a warning on every request (development only: production
	// refuses to start without the webhook secret and does not serve the
	// other producer routes without theirs).
	Verifier *signature.Verifier
	// Header names the signature header ("sha256=<hex>" of the raw body).
	// Required.
	Header string
	// Limit bounds the body in bytes; a larger one answers 413. Zero means
	// DefaultBodyLimit.
	Limit int64
	// Logger receives the refusals and the skipped-check warnings.
	// Required.
	Logger *slog.Logger
}

// DefaultSignedBodyConfig holds the defaults of SignedBodyConfig.
var DefaultSignedBodyConfig = SignedBodyConfig{Skipper: middleware.DefaultSkipper, Limit: DefaultBodyLimit}

// SignedBodyWithConfig returns the middleware every producer route runs
// before its handler: it reads the body up to cfg.Limit bytes (413 {"error":
// "Request body too large (limit N bytes)"} above) and checks its
// signature in cfg.Header (401 {"error": "Invalid signature"}); the handler
// then finds the body with Body. It panics on a config without Header or
// Logger: a bad wiring fails at start-up, never per request.
func SignedBodyWithConfig(cfg SignedBodyConfig) echo.MiddlewareFunc {
	if cfg.Header == "" || cfg.Logger == nil {
		panic("httpapi: SignedBodyConfig needs Header and Logger")
	}
	if cfg.Skipper == nil {
		cfg.Skipper = DefaultSignedBodyConfig.Skipper
	}
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultSignedBodyConfig.Limit
	}
	if cfg.Verifier == nil {
		cfg.Verifier = signature.NewVerifier(nil)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			body, err := readBody(c, cfg.Limit)
			if err != nil {
				return err
			}
			if err := verify(c, cfg, body); err != nil {
				return err
			}
			c.Set(bodyKey, body)
			return next(c)
		}
	}
}

// Body returns the body SignedBody read and verified; nil on a route
// without it.
func Body(c echo.Context) []byte {
	b, _ := c.Get(bodyKey).([]byte)
	return b
}

// readBody reads the request body up to limit bytes.
func readBody(c echo.Context, limit int64) ([]byte, error) {
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

// verify checks the signature header against body.
func verify(c echo.Context, cfg SignedBodyConfig, body []byte) error {
	ctx := c.Request().Context()
	log := RequestLogger(c, cfg.Logger)
	if !cfg.Verifier.Enabled() {
		log.WarnContext(ctx, "signature verification skipped: no secret configured (development)")
		return nil
	}
	if err := cfg.Verifier.Verify(c.Request().Header.Get(cfg.Header), body); err != nil {
		log.WarnContext(ctx, "request rejected", slog.String("reason", err.Error()))
		return echo.NewHTTPError(http.StatusUnauthorized, "Invalid signature").SetInternal(err)
	}
	return nil
}
