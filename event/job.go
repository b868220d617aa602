package event

import (
	"encoding/json"
	"fmt"

	"github.com/meshgen/gateway/rooms"
)

// Batch statuses of batch_status.
const (
	BatchProcessing = "processing"
	BatchCompleted  = "completed"
	BatchFailed     = "failed"
)

// BatchStatuses lists the statuses batch_status may carry.
var BatchStatuses = []string{BatchProcessing, BatchCompleted, BatchFailed}

// Owner is the project (and batch, when Batch.Key is not empty) a job
// belongs to: where its events go.
type Owner struct {
	Project rooms.ID
	Batch   rooms.ID
}

// JobEnd is the end of a job, as a Modal webhook reports it.
type JobEnd struct {
	Owner Owner
	Job   rooms.ID
	// Failed is true for any status but "completed".
	Failed bool
	// Result is passed through to job_completed as received (nil: null).
	Result json.RawMessage
	// Error is passed through to job_failed as received (nil or null:
	// DefaultError).
	Error json.RawMessage
}

// Event is the job's job_completed or job_failed, to its project's room.
func (e JobEnd) Event() (Event, error) {
	var p Payload = JobCompletedPayload{ProjectID: e.Owner.Project, JobID: e.Job, Result: e.Result}
	if e.Failed {
		p = JobFailedPayload{ProjectID: e.Owner.Project, JobID: e.Job, Error: e.Error}
	}
	return New(p, Target{Project: e.Owner.Project})
}

// ProgressMessage is the job_progress message of the end: "Job completed",
// or the job's error when it is a non-empty string, else "Job failed".
func (e JobEnd) ProgressMessage() string {
	if !e.Failed {
		return "Job completed"
	}
	var text string
	if json.Unmarshal(e.Error, &text) == nil && text != "" {
		return text
	}
	return "Job failed"
}

// BatchEvents are the events a batch job's first end yields, to its
// batch's room, in this order: job_progress {batch_id, job_id, progress:
// 100, status, message} and batch_status with the batch's counts c, this
// end already counted.
func (e JobEnd) BatchEvents(c BatchCounts) ([]Event, error) {
	if e.Owner.Batch.Key == "" {
		return nil, fmt.Errorf("%w: job %s belongs to no batch", ErrInvalid, e.Job.Key)
	}
	status := StatusCompleted
	if e.Failed {
		status = BatchFailed
	}
	message := e.ProgressMessage()
	target := Target{Batch: e.Owner.Batch}
	progress, err := New(JobProgressPayload{BatchID: e.Owner.Batch, JobID: e.Job, Progress: 100, Status: status, Message: &message}, target)
	if err != nil {
		return nil, err
	}
	batch, err := New(c.Payload(e.Owner.Batch), target)
	if err != nil {
		return nil, err
	}
	return []Event{progress, batch}, nil
}

// BatchCounts are a batch's counters: jobs ended completed and failed, and
// the total, the larger of the registered total and the number of jobs
// registered with the batch (0 while neither is known).
type BatchCounts struct {
	Completed int64
	Failed    int64
	Total     int64
}

// Payload is the batch_status these counts make. The status is
// "processing" until every job has ended, then "completed", or "failed"
// when any job failed; more ends than the total raise the total. While the
// total is unknown, total_jobs is null and the status stays "processing".
func (c BatchCounts) Payload(batch rooms.ID) BatchStatusPayload {
	failed := c.Failed
	p := BatchStatusPayload{BatchID: batch, Status: BatchProcessing, CompletedJobs: c.Completed, FailedJobs: &failed}
	if c.Total <= 0 {
		return p
	}
	ended := c.Completed + c.Failed
	total := max(c.Total, ended)
	p.TotalJobs = &total
	if ended >= total {
		p.Status = BatchCompleted
		if c.Failed > 0 {
			p.Status = BatchFailed
		}
	}
	return p
}
