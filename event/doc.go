// Package event owns every server -> client event of the client protocol
// (docs/protocol.md): its name, its payload type and the order of its keys,
// the rooms the protocol sends it to, and the defaults the gateway fills in
// ("Unknown error" for a job_failed without an error). Producers (the Modal
// webhook, the job registry's batch progress, the publish API) build events
// only through it; the bus carries them; the gateway emits their payload
// bytes as they are. Nobody else shapes a payload.
//
// An Event is the unit that flows: a name, the rooms it goes to and its
// payload, encoded once as JSON by New. The bus assigns its ID, which is also
// its position in the stream.
//
// The five payload types keep the protocol's keys first, in the protocol's
// order, then any extra members a producer passes through (Members), in the
// order they were given:
//
//	log_line       {job_id, message, timestamp}                      -> project_<id>
//	job_progress   {batch_id, job_id, progress, status, message}     -> batch_<id>, else project_<id>
//	batch_status   {batch_id, status, completed_jobs, total_jobs, failed_jobs} -> batch_<id>
//	job_completed  {project_id, job_id, status: "completed", result} -> project_<id>
//	job_failed     {project_id, job_id, error}                       -> project_<id>
//
// Ids are rooms.ID values and encode exactly as they were received: 42
// stays a number, "42" a string, and both name room project_42.
//
// A job's end (JobEnd) yields job_completed or job_failed for its project
// and, when the job belongs to a batch, job_progress and batch_status for
// its batch, computed from the batch's counts (BatchCounts). The registry
// counts; this package says what the counts mean.
package event
