package publish

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/signature"
)

// Path is the route of the publish API.
const Path = "/api/events"

// Defaults of Config.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxEvents    = 1000
)

// DedupePrefix precedes an event's "id" in its bus.Event.DedupeKey, so that
// publish ids never collide with the dedupe keys of other producers.
const DedupePrefix = "events:"

// Config configures a Handler. Publisher and Logger are required.
type Config struct {
	// Verifier checks X-Gateway-Signature. Without secrets (development
	// only) verification is skipped with a warning on every request.
	Verifier *signature.Verifier
	// MaxBodyBytes bounds the body; larger ones answer 413. Zero means
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// MaxIDLength bounds project, batch and job ids and event ids. Zero
	// means rooms.DefaultMaxIDLength.
	MaxIDLength int
	// MaxEvents bounds the events of one request; more answer 400. Zero
	// means DefaultMaxEvents (1000).
	MaxEvents int
	// ExtraEvents are event names accepted besides the five of the protocol,
	// with no payload checks (see ValidateExtraEvents).
	ExtraEvents []string
	// Publisher receives the events, in request order.
	Publisher bus.Publisher
	// Logger receives one line per request.
	Logger *slog.Logger
	// Now is the clock of the log_line timestamps the gateway fills in. Nil
	// means time.Now.
	Now func() time.Time
}

// Handler serves POST /api/events.
type Handler struct {
	cfg    Config
	extras map[string]bool
}

// New returns a Handler. It panics on a config without Publisher or Logger
// or with invalid ExtraEvents: a bad wiring fails at start-up, never per
// request.
func New(cfg Config) *Handler {
	if cfg.Publisher == nil || cfg.Logger == nil {
		panic("publish: Config needs Publisher and Logger")
	}
	if err := ValidateExtraEvents(cfg.ExtraEvents); err != nil {
		panic(err.Error())
	}
	if cfg.Verifier == nil {
		cfg.Verifier = signature.NewVerifier(nil)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	extras := make(map[string]bool, len(cfg.ExtraEvents))
	for _, n := range cfg.ExtraEvents {
		extras[n] = true
	}
	return &Handler{cfg: cfg, extras: extras}
}

// Register adds the publish route to e.
func (h *Handler) Register(e *echo.Echo) {
	e.POST(Path, h.Serve)
}

// Answers of the publish API.
type (
	okAnswer struct {
		Status     string `json:"status"`
		Accepted   int    `json:"accepted"`
		Duplicates int    `json:"duplicates"`
	}
	invalidAnswer struct {
		Error string      `json:"error"`
		Items []ItemError `json:"items"`
	}
	failedAnswer struct {
		Error    string `json:"error"`
		Accepted int    `json:"accepted"`
	}
)

// Serve handles one publish request.
func (h *Handler) Serve(c echo.Context) error {
	ctx := c.Request().Context()
	log := httpapi.RequestLogger(c, h.cfg.Logger, Path)

	body, err := httpapi.SignedBody(c, h.cfg.MaxBodyBytes, h.cfg.Verifier, httpapi.SignatureHeader, log)
	if err != nil {
		return err
	}

	p := parser{maxIDLength: h.cfg.MaxIDLength, maxEvents: h.cfg.MaxEvents, extras: h.extras, nowFn: h.cfg.Now}
	events, err := p.parse(body)
	var (
		reqErr   *requestError
		itemsErr *itemsError
	)
	switch {
	case errors.As(err, &itemsErr):
		// The reasons may quote a sender's values: DEBUG only.
		log.InfoContext(ctx, "events rejected, none published", slog.Int("invalid", len(itemsErr.items)), slog.Int("first_invalid_index", itemsErr.items[0].Index))
		log.DebugContext(ctx, "invalid events", slog.String("reason", itemsErr.Error()))
		return c.JSON(http.StatusBadRequest, invalidAnswer{Error: "Invalid events", Items: itemsErr.items})
	case errors.As(err, &reqErr):
		log.InfoContext(ctx, "events rejected, none published", slog.String("reason", reqErr.msg))
		return echo.NewHTTPError(http.StatusBadRequest, reqErr.msg)
	case err != nil:
		return echo.NewHTTPError(http.StatusInternalServerError, "Internal server error").SetInternal(err)
	}

	duplicates := 0
	for i, ev := range events {
		err := h.cfg.Publisher.Publish(ctx, ev)
		if errors.Is(err, bus.ErrDuplicate) {
			duplicates++
			continue
		}
		if err != nil {
			return h.publishFailed(c, log, events, i, err)
		}
	}
	log.InfoContext(ctx, "events published",
		slog.Int("count", len(events)),
		slog.Int("duplicates", duplicates),
		slog.String("events", summary(events)))
	return c.JSON(http.StatusOK, okAnswer{Status: "ok", Accepted: len(events), Duplicates: duplicates})
}

// publishFailed answers a publish that failed at events[accepted]: the
// answer of httpapi.PublishError (503 when the bus is unavailable, else 500)
// with the count of events stored before it.
func (h *Handler) publishFailed(c echo.Context, log *slog.Logger, events []bus.Event, accepted int, err error) error {
	log.ErrorContext(c.Request().Context(), "events not all published",
		slog.Int("count", len(events)),
		slog.Int("accepted", accepted),
		slog.String("failed_event", events[accepted].Name),
		slog.String("error", err.Error()))
	code, message := http.StatusInternalServerError, "Failed to publish event"
	var he *echo.HTTPError
	if errors.As(httpapi.PublishError(err), &he) {
		code = he.Code
		if m, ok := he.Message.(string); ok {
			message = m
		}
	}
	if code == http.StatusServiceUnavailable {
		httpapi.SetRetryAfter(c)
	}
	return c.JSON(code, failedAnswer{Error: message, Accepted: accepted})
}

// summary counts the events by name, in order of first appearance:
// "log_line=200 job_progress=1".
func summary(events []bus.Event) string {
	type count struct {
		name string
		n    int
	}
	var counts []count
next:
	for _, ev := range events {
		for i := range counts {
			if counts[i].name == ev.Name {
				counts[i].n++
				continue next
			}
		}
		counts = append(counts, count{ev.Name, 1})
	}
	var b strings.Builder
	for i, c := range counts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(c.name)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(c.n))
	}
	return b.String()
}
