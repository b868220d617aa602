package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/rooms"
)

// Path is the route of Modal's webhook.
const Path = "/api/webhooks/modal"

// SignatureHeader carries "sha256=<hex>" of the raw body.
const SignatureHeader = "X-Modal-Signature"

// Resolver ties a job to its owner when the webhook body does not name it
// (the job registry implements it).
type Resolver interface {
	// Resolve returns the owner of job; found is false for a job it does
	// not know.
	Resolve(ctx context.Context, job string) (owner event.Owner, found bool, err error)
}

// BatchTracker counts the first end of each batch job and publishes the
// batch's job_progress and batch_status (the registry implements it).
// Repeated ends change nothing and report first == false.
type BatchTracker interface {
	JobEnded(ctx context.Context, end event.JobEnd) (first bool, err error)
}

// Config configures a Handler. Publisher and Logger are required.
type Config struct {
	// MaxIDLength bounds job, project and batch ids. Zero means
	// rooms.DefaultMaxIDLength.
	MaxIDLength int
	// Publisher receives the job_completed / job_failed events.
	Publisher bus.Publisher
	// Resolver is consulted when the body names no project. Nil means only
	// the body's project_id ties a job to a project.
	Resolver Resolver
	// Batches, when set, counts the ends of jobs that belong to a batch.
	Batches BatchTracker
	// Logger receives one line per request.
	Logger *slog.Logger
}

// Handler serves POST /api/webhooks/modal behind the httpapi.SignedBody
// middleware, which has read and verified the body.
type Handler struct {
	cfg Config
}

// New returns a Handler. It panics on a config without Publisher or Logger:
// a bad wiring fails at start-up, never per request.
func New(cfg Config) *Handler {
	if cfg.Publisher == nil || cfg.Logger == nil {
		panic("webhook: Config needs Publisher and Logger")
	}
	return &Handler{cfg: cfg}
}

// Serve handles one webhook request.
func (h *Handler) Serve(c echo.Context) error {
	ctx := c.Request().Context()
	received := time.Now()
	log := requestLog{ctx: ctx, c: c, base: h.cfg.Logger}
	n, err := Parse(httpapi.Body(c), h.cfg.MaxIDLength)
	if err != nil {
		log.write(slog.LevelInfo, "webhook rejected", slog.String("reason", err.Error()))
		return echo.NewHTTPError(http.StatusBadRequest, badRequestMessage(err)).SetInternal(err)
	}
	log.job, log.status = n.JobID.Key, n.Status
	owner, found, err := h.owner(ctx, n)
	if err != nil {
		log.write(slog.LevelError, "webhook job lookup failed", slog.String("error", err.Error()))
		return httpapi.StoreError(err, "Job lookup failed")
	}
	if !found {
		log.write(slog.LevelInfo, "webhook for unknown job")
		return echo.NewHTTPError(http.StatusNotFound, "Job not found")
	}
	log.project = owner.Project.Key
	end := n.End(owner)
	ev, err := end.Event()
	if err != nil {
		log.write(slog.LevelError, "webhook event encoding failed", slog.String("error", err.Error()))
		return echo.NewHTTPError(http.StatusInternalServerError, "Event encoding failed").SetInternal(err)
	}
	ev.DedupeKey = DedupeKey(n)
	ev.ReceivedAt = received
	err = h.cfg.Publisher.Publish(ctx, ev)
	duplicate := errors.Is(err, bus.ErrDuplicate)
	if err != nil && !duplicate {
		log.write(slog.LevelError, "webhook event not published", slog.String("error", err.Error()))
		return httpapi.PublishError(err)
	}
	// Counted on duplicates too: a retry after a failure here must still
	// count the job; the tracker itself counts each job once.
	if owner.Batch.Key != "" && h.cfg.Batches != nil {
		log.batch = owner.Batch.Key
		first, err := h.cfg.Batches.JobEnded(ctx, end)
		if err != nil {
			log.write(slog.LevelError, "batch progress not recorded", slog.String("error", err.Error()))
			return httpapi.PublishError(err)
		}
		if first {
			log.write(slog.LevelInfo, "batch progress recorded")
		}
	}
	if duplicate {
		log.write(slog.LevelInfo, "duplicate webhook: already delivered, not sent again")
	} else {
		log.write(slog.LevelInfo, "webhook accepted", slog.String("event", ev.Name))
	}
	return answerAccepted(c, n.JobID)
}

// answerAccepted answers 200 {"job_id": ..., "status": "ok"}. When Echo
// would not indent it (debug mode or ?pretty), the answer is written
// straight: the bytes Echo's JSON encoder gives the accepted struct.
func answerAccepted(c echo.Context, job rooms.ID) error {
	if c.Request().URL.RawQuery != "" || c.Echo().Debug {
		return c.JSON(http.StatusOK, accepted{JobID: job.Raw, Status: "ok"})
	}
	b := make([]byte, 0, len(`{"job_id":,"status":"ok"}`)+len(job.Key)+16)
	b = append(b, `{"job_id":`...)
	b, err := event.AppendID(b, job) // HTML-escaped, as Echo's encoder writes it
	if err != nil {
		return fmt.Errorf("webhook: answer job id: %w", err)
	}
	return c.JSONBlob(http.StatusOK, append(b, `,"status":"ok"}`+"\n"...))
}

// accepted is the 200 answer {"job_id": ..., "status": "ok"}: the members
// in the order encoding/json writes a map's, as the answer always had
// them.
type accepted struct {
	JobID  any    `json:"job_id"`
	Status string `json:"status"`
}

// requestLog writes the lines of one request with httpapi.RequestLogger
// and what was learnt of the webhook so far (job_id and status, then
// project_id, then batch_id: what log.With would have kept), making
// neither for a request whose lines the logger's level leaves out.
type requestLog struct {
	ctx                         context.Context
	c                           echo.Context
	base                        *slog.Logger
	job, status, project, batch string
}

// write logs msg at level with what was learnt, then more.
func (l *requestLog) write(level slog.Level, msg string, more ...slog.Attr) {
	if !l.base.Enabled(l.ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 4+len(more))
	if l.job != "" {
		attrs = append(attrs, slog.String("job_id", l.job), slog.String("status", l.status))
	}
	if l.project != "" {
		attrs = append(attrs, slog.String("project_id", l.project))
	}
	if l.batch != "" {
		attrs = append(attrs, slog.String("batch_id", l.batch))
	}
	httpapi.RequestLogger(l.c, l.base).LogAttrs(l.ctx, level, msg, append(attrs, more...)...)
}

// owner resolves the job's project: the body's fields first, then the
// Resolver; found is false when neither knows it.
func (h *Handler) owner(ctx context.Context, n Notification) (event.Owner, bool, error) {
	if n.ProjectID.Key != "" {
		return event.Owner{Project: n.ProjectID, Batch: n.BatchID}, true, nil
	}
	if h.cfg.Resolver == nil {
		return event.Owner{}, false, nil
	}
	owner, found, err := h.cfg.Resolver.Resolve(ctx, n.JobID.Key)
	if err != nil {
		return event.Owner{}, false, fmt.Errorf("resolve job %s: %w", n.JobID.Key, err)
	}
	if found && n.BatchID.Key != "" {
		owner.Batch = n.BatchID
	}
	return owner, found, nil
}

// DedupeKey identifies a webhook delivery for idempotency: Modal retries
// the same (job_id, status), which must reach clients once.
func DedupeKey(n Notification) string {
	return "modal:" + n.JobID.Key + ":" + n.Status
}

func badRequestMessage(err error) string {
	switch {
	case errors.Is(err, ErrMissingJobID):
		return "Missing job_id"
	case errors.Is(err, ErrInvalidJobID):
		return "Invalid job_id"
	case errors.Is(err, ErrInvalidStatus):
		return "Invalid status"
	case errors.Is(err, ErrInvalidOwner):
		return "Invalid project_id or batch_id"
	default:
		return "Invalid JSON"
	}
}
