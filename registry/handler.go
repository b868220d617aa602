package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/rooms"
)

// Path is the route of the job registry.
const Path = "/api/jobs"

// Limits of one request.
const (
	DefaultMaxJobs = 10_000
	maxTotalJobs   = 1_000_000
)

// HandlerConfig configures the /api/jobs handler. Store and Logger are
// required.
type HandlerConfig struct {
	// MaxIDLength bounds ids. Zero means rooms.DefaultMaxIDLength.
	MaxIDLength int
	// Store receives the registrations.
	Store Store
	// Logger receives one line per request.
	Logger *slog.Logger
}

// Handler serves POST /api/jobs behind the httpapi.SignedBody middleware
// (signed with X-Gateway-Signature), which has read and verified the body.
type Handler struct{ cfg HandlerConfig }

// NewHandler returns the handler; it panics on a config without Store or
// Logger.
func NewHandler(cfg HandlerConfig) *Handler {
	if cfg.Store == nil || cfg.Logger == nil {
		panic("registry: HandlerConfig needs Store and Logger")
	}
	return &Handler{cfg: cfg}
}

// request is the body: one job, a list of jobs, and/or a batch total.
// Top-level project_id and batch_id apply to listed jobs that lack them.
type request struct {
	JobID     any          `json:"job_id"`
	ProjectID any          `json:"project_id"`
	BatchID   any          `json:"batch_id"`
	TotalJobs *json.Number `json:"total_jobs"`
	Jobs      []jobItem    `json:"jobs"`
}

type jobItem struct {
	JobID     any `json:"job_id"`
	ProjectID any `json:"project_id"`
	BatchID   any `json:"batch_id"`
}

// ItemError is one rejected job of a request.
type ItemError = httpapi.ItemError

// Serve registers jobs and batches; all-or-nothing.
func (h *Handler) Serve(c echo.Context) error {
	ctx := c.Request().Context()
	log := httpapi.RequestLogger(c, h.cfg.Logger)
	jobs, batch, total, itemErrs, err := h.parse(httpapi.Body(c))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	if len(itemErrs) > 0 {
		return c.JSON(http.StatusBadRequest, map[string]any{"error": "Invalid jobs", "items": itemErrs})
	}
	if total != nil {
		if err := h.cfg.Store.RegisterBatch(ctx, batch, *total); err != nil {
			log.ErrorContext(ctx, "batch not registered", slog.String("error", err.Error()))
			return httpapi.PublishError(err)
		}
	}
	if len(jobs) > 0 {
		if err := h.cfg.Store.Register(ctx, jobs); err != nil {
			log.ErrorContext(ctx, "jobs not registered", slog.String("error", err.Error()))
			return httpapi.PublishError(err)
		}
	}
	answer := map[string]any{"status": "ok", "registered": len(jobs)}
	if total != nil {
		answer["batch_id"] = batch.Raw
		answer["total_jobs"] = *total
	}
	log.InfoContext(ctx, "jobs registered", slog.Int("jobs", len(jobs)), slog.String("batch_id", batch.Key))
	return c.JSON(http.StatusOK, answer)
}

// parse validates the body: a request-level error, or per-item errors.
func (h *Handler) parse(body []byte) (jobs []Job, batch rooms.ID, total *int, itemErrs []ItemError, err error) {
	var req request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' || dec.Decode(&req) != nil {
		return nil, rooms.ID{}, nil, nil, errors.New("Invalid JSON")
	}
	id := func(v any) (rooms.ID, error) { return rooms.ParseID(normalizeNumber(v), h.cfg.MaxIDLength) }

	defProject, perr := optionalID(id, req.ProjectID)
	if perr != nil {
		return nil, rooms.ID{}, nil, nil, errors.New(idMessage("project_id", perr))
	}
	if batch, perr = optionalID(id, req.BatchID); perr != nil {
		return nil, rooms.ID{}, nil, nil, errors.New(idMessage("batch_id", perr))
	}
	if req.TotalJobs != nil {
		n, convErr := strconv.Atoi(req.TotalJobs.String())
		if convErr != nil || n < 0 || n > maxTotalJobs {
			return nil, rooms.ID{}, nil, nil, fmt.Errorf("Invalid total_jobs: must be an integer between 0 and %d", maxTotalJobs)
		}
		if batch.Key == "" {
			return nil, rooms.ID{}, nil, nil, errors.New("Missing batch_id: total_jobs registers a batch")
		}
		total = &n
	}
	items := req.Jobs
	if req.JobID != nil {
		items = append([]jobItem{{JobID: req.JobID}}, items...)
	}
	if len(items) == 0 && total == nil {
		return nil, rooms.ID{}, nil, nil, errors.New("Nothing to register: give job_id, jobs or batch_id with total_jobs")
	}
	if len(items) > DefaultMaxJobs {
		return nil, rooms.ID{}, nil, nil, fmt.Errorf("Too many jobs: at most %d per request", DefaultMaxJobs)
	}
	for i, it := range items {
		job, err := id(it.JobID)
		if err != nil {
			itemErrs = append(itemErrs, ItemError{Index: i, Error: idMessage("job_id", err)})
			continue
		}
		project := defProject
		if it.ProjectID != nil {
			if project, err = id(it.ProjectID); err != nil {
				itemErrs = append(itemErrs, ItemError{Index: i, Error: idMessage("project_id", err)})
				continue
			}
		}
		if project.Key == "" {
			itemErrs = append(itemErrs, ItemError{Index: i, Error: "Missing project_id"})
			continue
		}
		b := batch
		if it.BatchID != nil {
			if b, err = id(it.BatchID); err != nil {
				itemErrs = append(itemErrs, ItemError{Index: i, Error: idMessage("batch_id", err)})
				continue
			}
		}
		jobs = append(jobs, Job{ID: job, Project: project, Batch: b})
	}
	return jobs, batch, total, itemErrs, nil
}

func optionalID(parse func(any) (rooms.ID, error), v any) (rooms.ID, error) {
	if v == nil {
		return rooms.ID{}, nil
	}
	return parse(v)
}

func idMessage(field string, err error) string {
	if errors.Is(err, rooms.ErrMissingID) {
		return "Missing " + field
	}
	return "Invalid " + field + ": " + strings.TrimPrefix(err.Error(), rooms.ErrInvalidID.Error()+": ")
}

// normalizeNumber turns a json.Number into the float64 rooms.ParseID takes.
func normalizeNumber(v any) any {
	if n, ok := v.(json.Number); ok {
		if f, err := n.Float64(); err == nil {
			return f
		}
		return n.String()
	}
	return v
}
