package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/eventname"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/signature"
)

// Path is the route of Modal's webhook.
const Path = "/api/webhooks/modal"

// SignatureHeader carries "sha256=<hex>" of the raw body.
const SignatureHeader = "X-Modal-Signature"

// ErrJobNotFound is returned by a Resolver for a job it does not know.
var ErrJobNotFound = errors.New("webhook: job not found")

// Owner is the project (and batch) a job belongs to.
type Owner struct {
	Project rooms.ID
	Batch   rooms.ID
}

// Resolver ties a job to its owner when the webhook body does not name it.
type Resolver interface {
	// Resolve returns the owner of job, or ErrJobNotFound.
	Resolve(ctx context.Context, job string) (Owner, error)
}

// JobEnd is the end of a job that belongs to a batch.
type JobEnd struct {
	Batch  rooms.ID
	Job    rooms.ID
	Failed bool
	// Message is the job_progress message: "Job completed", or the job's
	// error when it is a string.
	Message string
}

// BatchTracker counts the first end of each batch job and emits the batch's
// job_progress and batch_status (the registry implements it). Repeated ends
// change nothing and report first == false.
type BatchTracker interface {
	JobEnded(ctx context.Context, end JobEnd) (first bool, err error)
}

// Config configures a Handler. Publisher and Logger are required.
type Config struct {
	// Verifier checks X-Modal-Signature. Without secrets (development only)
	// verification is skipped with a warning on every request.
	Verifier *signature.Verifier
	// MaxBodyBytes bounds the body; larger ones answer 413. Zero means 1 MiB.
	MaxBodyBytes int64
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

// Handler serves POST /api/webhooks/modal.
type Handler struct {
	cfg Config
}

// New returns a Handler. It panics on a config without Publisher or Logger:
// a bad wiring fails at start-up, never per request.
func New(cfg Config) *Handler {
	if cfg.Publisher == nil || cfg.Logger == nil {
		panic("webhook: Config needs Publisher and Logger")
	}
	if cfg.Verifier == nil {
		cfg.Verifier = signature.NewVerifier(nil)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	return &Handler{cfg: cfg}
}

// Register adds the webhook route to e.
func (h *Handler) Register(e *echo.Echo) {
	e.POST(Path, h.Serve)
}

// Serve handles one webhook request.
func (h *Handler) Serve(c echo.Context) error {
	ctx := c.Request().Context()
	received := time.Now()
	log := httpapi.RequestLogger(c, h.cfg.Logger, Path)

	body, err := httpapi.SignedBody(c, h.cfg.MaxBodyBytes, h.cfg.Verifier, SignatureHeader, log)
	if err != nil {
		return err
	}

	n, err := Parse(body, h.cfg.MaxIDLength)
	if err != nil {
		log.InfoContext(ctx, "webhook rejected", slog.String("reason", err.Error()))
		return echo.NewHTTPError(http.StatusBadRequest, badRequestMessage(err)).SetInternal(err)
	}
	log = log.With(slog.String("job_id", n.JobID.Key), slog.String("status", n.Status))

	owner, err := h.owner(ctx, n)
	if errors.Is(err, ErrJobNotFound) {
		log.InfoContext(ctx, "webhook for unknown job")
		return echo.NewHTTPError(http.StatusNotFound, "Job not found")
	}
	if err != nil {
		log.ErrorContext(ctx, "webhook job lookup failed", slog.String("error", err.Error()))
		return echo.NewHTTPError(http.StatusInternalServerError, "Job lookup failed").SetInternal(err)
	}
	log = log.With(slog.String("project_id", owner.Project.Key))

	event, err := BuildEvent(n, owner)
	if err != nil {
		log.ErrorContext(ctx, "webhook event encoding failed", slog.String("error", err.Error()))
		return echo.NewHTTPError(http.StatusInternalServerError, "Event encoding failed").SetInternal(err)
	}
	event.DedupeKey = DedupeKey(n)
	event.ReceivedAt = received
	err = h.cfg.Publisher.Publish(ctx, event)
	duplicate := errors.Is(err, bus.ErrDuplicate)
	if err != nil && !duplicate {
		log.ErrorContext(ctx, "webhook event not published", slog.String("error", err.Error()))
		return httpapi.PublishError(err)
	}
	// Counted on duplicates too: a retry after a failure here must still
	// count the job; the tracker itself counts each job once.
	if owner.Batch.Key != "" && h.cfg.Batches != nil {
		log = log.With(slog.String("batch_id", owner.Batch.Key))
		first, err := h.cfg.Batches.JobEnded(ctx, JobEnd{Batch: owner.Batch, Job: n.JobID, Failed: !n.Completed(), Message: progressMessage(n)})
		if err != nil {
			log.ErrorContext(ctx, "batch progress not recorded", slog.String("error", err.Error()))
			return httpapi.PublishError(err)
		}
		if first {
			log.InfoContext(ctx, "batch progress recorded")
		}
	}
	if duplicate {
		log.InfoContext(ctx, "duplicate webhook: already delivered, not sent again")
		return c.JSON(http.StatusOK, map[string]any{"status": "ok", "job_id": n.JobID.Raw})
	}
	log.InfoContext(ctx, "webhook accepted", slog.String("event", event.Name))
	return c.JSON(http.StatusOK, map[string]any{"status": "ok", "job_id": n.JobID.Raw})
}

// owner resolves the job's project: the body's fields first, then the
// Resolver.
func (h *Handler) owner(ctx context.Context, n Notification) (Owner, error) {
	if n.ProjectID.Key != "" {
		return Owner{Project: n.ProjectID, Batch: n.BatchID}, nil
	}
	if h.cfg.Resolver == nil {
		return Owner{}, ErrJobNotFound
	}
	owner, err := h.cfg.Resolver.Resolve(ctx, n.JobID.Key)
	if err != nil {
		return Owner{}, fmt.Errorf("resolve job %s: %w", n.JobID.Key, err)
	}
	if n.BatchID.Key != "" {
		owner.Batch = n.BatchID
	}
	return owner, nil
}

type completedPayload struct {
	ProjectID any             `json:"project_id"`
	JobID     any             `json:"job_id"`
	Status    string          `json:"status"`
	Result    json.RawMessage `json:"result"`
}

type failedPayload struct {
	ProjectID any             `json:"project_id"`
	JobID     any             `json:"job_id"`
	Error     json.RawMessage `json:"error"`
}

// BuildEvent turns a notification into the event clients receive:
// job_completed {project_id, job_id, status, result} or
// job_failed {project_id, job_id, error}, to project_<project_id>.
func BuildEvent(n Notification, owner Owner) (bus.Event, error) {
	var (
		name    string
		payload any
	)
	if n.Completed() {
		name = eventname.JobCompleted
		payload = completedPayload{owner.Project.Raw, n.JobID.Raw, StatusCompleted, n.Result}
	} else {
		name = eventname.JobFailed
		payload = failedPayload{owner.Project.Raw, n.JobID.Raw, n.Error}
	}
	encoded, err := json.Marshal(payload)
	if err != nil {
		return bus.Event{}, fmt.Errorf("webhook: encode %s: %w", name, err)
	}
	return bus.Event{Name: name, Rooms: []string{rooms.ProjectRoom(owner.Project)}, Payload: encoded}, nil
}

// progressMessage is the job_progress message of a batch job's end.
func progressMessage(n Notification) string {
	if n.Completed() {
		return "Job completed"
	}
	var text string
	if json.Unmarshal(n.Error, &text) == nil && text != "" {
		return text
	}
	return "Job failed"
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
