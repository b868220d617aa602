package registry

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/webhook"
)

// Batch statuses.
const (
	BatchProcessing = "processing"
	BatchCompleted  = "completed"
	BatchFailed     = "failed"
)

// Job is one registration: a job and its owners.
type Job struct {
	ID      rooms.ID
	Project rooms.ID
	Batch   rooms.ID // zero Key when the job belongs to no batch
}

// JobEnd is the end of a batch job (see webhook.JobEnd).
type JobEnd = webhook.JobEnd

// Store is the registry: job owners and batch counters.
type Store interface {
	webhook.Resolver
	// Register remembers each job's owners for the TTL; jobs with a batch
	// also count towards that batch's total.
	Register(ctx context.Context, jobs []Job) error
	// RegisterBatch sets a batch's total number of jobs.
	RegisterBatch(ctx context.Context, batch rooms.ID, total int) error
	webhook.BatchTracker
}

// owner is the stored form of a job's owners: raw JSON ids, echoed back as
// given.
type owner struct {
	Project json.RawMessage `json:"p"`
	Batch   json.RawMessage `json:"b,omitempty"`
}

func encodeOwner(j Job) ([]byte, error) {
	o := owner{}
	var err error
	if o.Project, err = json.Marshal(j.Project.Raw); err != nil {
		return nil, fmt.Errorf("registry: encode project id: %w", err)
	}
	if j.Batch.Key != "" {
		if o.Batch, err = json.Marshal(j.Batch.Raw); err != nil {
			return nil, fmt.Errorf("registry: encode batch id: %w", err)
		}
	}
	return json.Marshal(o)
}

func decodeOwner(b []byte) (webhook.Owner, error) {
	var o owner
	if err := json.Unmarshal(b, &o); err != nil {
		return webhook.Owner{}, fmt.Errorf("registry: stored owner does not decode: %w", err)
	}
	var out webhook.Owner
	var err error
	if out.Project, err = decodeID(o.Project); err != nil {
		return webhook.Owner{}, err
	}
	if len(o.Batch) > 0 {
		if out.Batch, err = decodeID(o.Batch); err != nil {
			return webhook.Owner{}, err
		}
	}
	return out, nil
}

func decodeID(raw json.RawMessage) (rooms.ID, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return rooms.ID{}, fmt.Errorf("registry: stored id does not decode: %w", err)
	}
	return rooms.ParseID(v, 1<<10)
}

// progressPayload is job_progress of a batch job's end.
type progressPayload struct {
	BatchID  any    `json:"batch_id"`
	JobID    any    `json:"job_id"`
	Progress int    `json:"progress"`
	Status   string `json:"status"`
	Message  string `json:"message"`
}

// statusPayload is batch_status.
type statusPayload struct {
	BatchID       any    `json:"batch_id"`
	Status        string `json:"status"`
	CompletedJobs int    `json:"completed_jobs"`
	TotalJobs     *int   `json:"total_jobs"`
	FailedJobs    int    `json:"failed_jobs"`
}

// batchState computes the batch status from its counters; total 0 means
// unknown.
func batchState(completed, failed, total int) (string, *int) {
	if total <= 0 {
		return BatchProcessing, nil
	}
	if completed+failed > total {
		total = completed + failed
	}
	status := BatchProcessing
	if completed+failed >= total {
		status = BatchCompleted
		if failed > 0 {
			status = BatchFailed
		}
	}
	return status, &total
}

func jobStatus(failed bool) string {
	if failed {
		return BatchFailed
	}
	return BatchCompleted
}
