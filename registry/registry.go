package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/rooms"
)

// DefaultJobTTL is how long a registered job is remembered by default.
const DefaultJobTTL = 7 * 24 * time.Hour

// Job is one registration: a job and its owners.
type Job struct {
	ID      rooms.ID
	Project rooms.ID
	Batch   rooms.ID // zero Key when the job belongs to no batch
}

// Store is the registry: job owners and batch counters. It satisfies the
// webhook's Resolver and BatchTracker.
type Store interface {
	// Resolve returns the owner of job; found is false for a job it does
	// not know (never registered, or expired).
	Resolve(ctx context.Context, job string) (owner event.Owner, found bool, err error)
	// Register remembers each job's owners for the TTL; jobs with a batch
	// also count towards that batch's total.
	Register(ctx context.Context, jobs []Job) error
	// RegisterBatch sets a batch's total number of jobs.
	RegisterBatch(ctx context.Context, batch rooms.ID, total int) error
	// JobProject returns the project of a registered job (auth.Owners).
	JobProject(ctx context.Context, job string) (project rooms.ID, found bool, err error)
	// BatchProjects returns the projects of the jobs registered with a
	// batch: none for a batch it does not know (auth.Owners).
	BatchProjects(ctx context.Context, batch string) ([]rooms.ID, error)
	// BatchStatus returns a batch's current counts and the bus position
	// they are current at: every batch event they count is at or before
	// it ("" when the store cannot tell). found is false for a batch it
	// does not know (no job registered with it, no total, no end).
	BatchStatus(ctx context.Context, batch string) (counts event.BatchCounts, position string, found bool, err error)
	// JobEnded counts the first end of a batch job and publishes the
	// batch's job_progress and batch_status (event.JobEnd.BatchEvents) in
	// counting order, atomically with the count. A repeated end changes
	// nothing and reports first == false.
	JobEnded(ctx context.Context, end event.JobEnd) (first bool, err error)
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
	if o.Project, err = json.Marshal(j.Project); err != nil {
		return nil, fmt.Errorf("registry: encode project id: %w", err)
	}
	if j.Batch.Key != "" {
		if o.Batch, err = json.Marshal(j.Batch); err != nil {
			return nil, fmt.Errorf("registry: encode batch id: %w", err)
		}
	}
	return json.Marshal(o)
}

func decodeOwner(b []byte) (event.Owner, error) {
	var o owner
	if err := json.Unmarshal(b, &o); err != nil {
		return event.Owner{}, fmt.Errorf("registry: stored owner does not decode: %w", err)
	}
	var out event.Owner
	var err error
	if out.Project, err = decodeID(o.Project); err != nil {
		return event.Owner{}, err
	}
	if len(o.Batch) > 0 {
		if out.Batch, err = decodeID(o.Batch); err != nil {
			return event.Owner{}, err
		}
	}
	return out, nil
}

// decodeID reads a stored id; ids were validated when registered, so only
// the widest length bound applies.
func decodeID(raw json.RawMessage) (rooms.ID, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return rooms.ID{}, fmt.Errorf("registry: stored id does not decode: %w", err)
	}
	return rooms.ParseID(v, rooms.MaxIDLengthLimit)
}
