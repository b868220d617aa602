package metrics

import (
	"errors"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
)

func asHTTPError(err error, target **echo.HTTPError) bool { return errors.As(err, target) }

// outcome classifies a publish result for the publish histogram.
func outcome(err error) string {
	var unavailable *bus.UnavailableError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, bus.ErrDuplicate):
		return "duplicate"
	case errors.As(err, &unavailable):
		return "unavailable"
	default:
		return "error"
	}
}
