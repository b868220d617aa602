// Package publish is the gateway's publish API, POST /api/events: the mesh
// workers and the backend send the server -> client events of the client protocol (docs/protocol.md)
// (log_line, job_progress, batch_status, job_completed, job_failed) over
// HTTP; the gateway checks them, encodes each payload once and puts them on
// the bus, which delivers them to the Socket.IO rooms on every node. It
// knows nothing of sockets.
//
// # Request
//
// POST /api/events, Content-Type application/json, signed like the other
// producer endpoints: header X-Gateway-Signature: sha256=<hex HMAC-SHA256 of
// the raw body> under one of the GATEWAY_EVENTS_SECRET secrets (several
// secrets: any of them is accepted, for rotation). In development without a
// secret, unsigned requests are accepted with a warning; in production
// without a secret the route is not served.
//
// The body is either one event or a batch of them (a worker streaming log
// lines batches them: one request, many events):
//
//	{"event": "log_line", "data": {...}, ...}
//	{"events": [{"event": "log_line", "data": {...}}, {"event": "job_progress", ...}, ...]}
//
// A body with an "events" member is a batch, and must have no other
// member. A batch holds 1 to MaxEvents events (default 1000).
//
// An event is an object with these members and no other:
//
//	event       required: the event name, one of the five of the client protocol (docs/protocol.md) or
//	            one of the configured extra events (GATEWAY_EXTRA_EVENTS)
//	data        required: the payload, a JSON object, sent to the clients
//	room        optional: "project_<id>" or "batch_<id>"
//	project_id  optional: sends the event to project_<project_id>
//	batch_id    optional: sends the event to batch_<batch_id>
//	id          optional: idempotency key (a string or an integer)
//
// # Rooms
//
// An event goes only to project and batch rooms; no other room name (and so
// no socket id) can be targeted, and nothing is broadcast.
//
//   - "room" names one room. It must be project_<id> or batch_<id> with a
//     valid id; it cannot be combined with the event-level ids.
//   - Otherwise the event-level "project_id" and/or "batch_id" name the
//     rooms: with both, the event goes to both rooms as one bus event (a
//     client in both rooms gets it once).
//   - Otherwise the room comes from the payload, by the protocol's rule:
//     log_line -> project_<data.project_id>; job_progress ->
//     batch_<data.batch_id> when the payload has one, else
//     project_<data.project_id>; batch_status -> batch_<data.batch_id>;
//     job_completed and job_failed -> project_<data.project_id>.
//
// When a payload carries a project_id (batch_id) and the event goes to a
// project (batch) room, the two must name the same id. Extra events need
// "room", "project_id" or "batch_id": their payload is not looked into.
//
// Ids (event level, payload and room suffix) are strings or integers,
// validated as the client protocol validates them (non-empty, at most
// MaxIDLength bytes, no control characters; integers up to 2^53). They are
// echoed in payloads exactly as sent: 42 stays a number, "42" a string, and
// both name room project_42.
//
// # Payloads
//
// Every protocol payload is checked and built through its type in package
// event, which encodes it once, compactly: the protocol members first in
// the order below, then the unknown members, passed through as sent
// (whitespace aside), in the order sent. An optional protocol member that
// is null is left out.
//
//	log_line       job_id (id), message (string), timestamp (ISO-8601
//	               date-time string, e.g. 2024-05-01T12:00:00.000Z or
//	               Python's isoformat(); missing or null: the gateway fills
//	               in the receipt time, UTC, RFC 3339 with milliseconds, the
//	               same for every event of the request)
//	job_progress   batch_id (id; required when the event goes to a batch
//	               room, because the batch view filters on
//	               data.batch_id === batchId: when missing, the event-level
//	               batch_id is inserted), job_id (id), progress (number 0 to
//	               100), status (non-empty string), message (string, optional)
//	batch_status   batch_id (id; the event-level batch_id is inserted when
//	               missing), status (processing, completed or failed),
//	               completed_jobs and total_jobs (non-negative integers),
//	               failed_jobs (non-negative integer, optional)
//	job_completed  project_id (id; the event-level project_id is inserted
//	               when missing), job_id (id), status ("completed", filled in
//	               when missing), result (anything; null when missing)
//	job_failed     project_id (id; inserted as for job_completed), job_id
//	               (id), error (anything; "Unknown error" when missing or null)
//	extra events   any JSON object, passed through
//
// A batch_id or project_id is inserted only from the event-level
// "batch_id"/"project_id", never from "room" (a room name does not say
// whether the id was a number or a string, and the front end compares with
// ===).
//
// # Answers
//
// Validation is all or nothing: when any event is invalid, nothing is
// published, so the sender fixes the batch and sends all of it again.
//
//	200 {"status": "ok", "accepted": n, "duplicates": d}
//	    all n events of the request are on the bus, in request order; d of
//	    them were duplicates of events already published (see id) and were
//	    not sent again
//	400 {"error": "Invalid events", "items": [{"index": i, "error": "..."}, ...]}
//	    one entry per invalid event (index in the batch, 0 for a single
//	    event), with the first problem found, naming the field
//	400 {"error": "Invalid JSON"}: not a JSON object (or not UTF-8)
//	400 {"error": "No events"}, {"error": "\"events\" must be a list of
//	    events"}, {"error": "Unexpected field \"x\" next to \"events\""},
//	    {"error": "Field \"events\" appears twice"},
//	    {"error": "Too many events: n (limit m per request)"}
//	401 {"error": "Invalid signature"}
//	413 {"error": "Request body too large (limit n bytes)"}
//	503 {"error": "Event bus unavailable, retry later", "accepted": k}
//	    with Retry-After; 500 {"error": "Failed to publish event",
//	    "accepted": k}: publishing stopped at event k (0-based); events 0 to
//	    k-1 are on the bus and will be delivered, the others are not
//
// # Order and idempotency
//
// Events are published one by one in request order, so they reach each room
// in that order (the bus keeps publish order). An event with an "id" is
// published with the bus dedupe key "events:<id>": within the bus's dedupe
// window (GATEWAY_DEDUPE_WINDOW, default 24h, shared through Redis), a
// second event with the same id is not sent again and counts as a
// duplicate. Ids must therefore be unique per event, not per request (for
// example "<job_id>:log:<sequence>"); two events of one request with the
// same id are invalid. With ids on every event, retrying a whole request
// after a 5xx, a timeout or a lost answer is safe: what was stored is not
// sent twice. Without ids, a retry after a partial failure re-sends the
// first k events.
//
// # Logs
//
// One line per request: the count, the duplicates and the event names
// ("log_line=200 job_progress=1"); never payload contents at INFO (the
// reasons of invalid events, which may quote a sent value, are logged at
// DEBUG).
package publish
