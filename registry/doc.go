// Package registry ties jobs to their owners and computes batch progress.
//
// The backend registers a job when it submits it to Modal (POST /api/jobs,
// signed like the webhook with its own secret): job_id -> project_id and
// optionally batch_id, remembered for the job TTL. The Modal webhook names
// only the job; it resolves the rooms from the body's project_id/batch_id
// first, then from the registry.
//
// A batch is registered with its total number of jobs (with its jobs, or on
// its own). Every first end of one of its jobs (a retried webhook counts
// once) updates the batch's counters and emits, to batch_<id>, job_progress
// {batch_id, job_id, progress: 100, status, message} and batch_status
// {batch_id, status, completed_jobs, total_jobs, failed_jobs}. The status is
// "processing" until every job has ended, then "completed", or "failed" when
// any job failed. The total is the registered total or the number of jobs
// registered with the batch, whichever is larger; while neither is known,
// total_jobs is null and the status stays "processing".
//
// What the counts mean (the status rule) and the two events' shapes are
// package event's (event.BatchCounts, event.JobEnd.BatchEvents); the
// registry only counts. With Redis the counting and the two events are one
// optimistic transaction (WATCH the batch's keys, read the counts, MULTI:
// count and XADD both events through the bus's AddArgs, EXEC; retried when
// another end of the batch committed in between): the counters change and
// the events are appended to the bus stream in one atomic step, so
// batch_status updates reach clients in counting order from any node, and
// a failure leaves nothing half-done (the webhook answers 503 and Modal's
// retry counts the job then). In memory the same holds under one mutex.
package registry
