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
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/httpapi"
)

// Path is the route of the publish API.
const Path = "/api/events"

// DefaultMaxEvents is the default of Config.MaxEvents.
const DefaultMaxEvents = 1000

// DedupePrefix precedes an event's "id" in its event.Event.DedupeKey, so
// that publish ids never collide with the dedupe keys of other producers.
const DedupePrefix = "events:"

// Config configures a Handler. Publisher and Logger are required.
type Config struct {
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

// Handler serves POST /api/events behind the httpapi.SignedBody middleware
// (signed with X-Gateway-Signature), which has read and verified the body.
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
	log := httpapi.RequestLogger(c, h.cfg.Logger)
	p := parser{maxIDLength: h.cfg.MaxIDLength, maxEvents: h.cfg.MaxEvents, extras: h.extras, nowFn: h.cfg.Now}
	events, err := p.parse(httpapi.Body(c))
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
func (h *Handler) publishFailed(c echo.Context, log *slog.Logger, events []event.Event, accepted int, err error) error {
	log.ErrorContext(c.Request().Context(), "events not all published",
		slog.Int("count", len(events)),
		slog.Int("accepted", accepted),
		slog.String("failed_event", events[accepted].Name),
		slog.String("error", err.Error()))
	he := httpapi.PublishError(err)
	if he.Code == http.StatusServiceUnavailable {
		httpapi.SetRetryAfter(c)
	}
	return c.JSON(he.Code, failedAnswer{Error: he.Message.(string), Accepted: accepted})
}

// summary counts the events by name, in order of first appearance:
// "log_line=200 job_progress=1".
func summary(events []event.Event) string {
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
