// Package bus carries events (event.Event) from the producers (the Modal
// webhook, the job registry's batch progress, the publish API) to every
// gateway node. The Flask-SocketIO bridge does not use it: every node reads
// Flask-SocketIO's own queue (package flaskbridge).
//
// An event is built once by its producer, through package event: its name,
// the rooms it goes to and its payload already encoded as JSON. The bus
// only carries it; nobody downstream re-derives the rooms or re-encodes the
// payload per recipient. The bus owns the stream's entry format: only this
// package encodes and decodes what is written to the Redis stream (a part
// that must append events in one transaction with its own state asks
// Redis.AddArgs for the XADD).
//
// A Bus has two sides. Publish returns only once the event has been accepted
// by the bus (queued in memory for the in-process bus); an error means the
// event was not accepted and the producer must say so to its caller.
// Consume delivers events to one handler, one at a time, in publish order.
//
// The in-process bus (NewMemory) is the embedded default for a single node:
// delivery is in order and exactly once while the process lives, and nothing
// survives a restart. Publish blocks while the consumer's bounded queue is
// full (back-pressure instead of an unbounded queue or a silent drop).
//
// The Redis bus (NewRedis) is for several nodes. Events are appended to one
// Redis Stream (XADD, trimmed by length and age) and every node reads the
// whole stream with plain XREAD BLOCK from its own last-seen id, no consumer
// group: every node needs every event. Guarantees:
//
//   - Publish returns nil only once Redis has stored the event; otherwise it
//     returns an *UnavailableError (nothing stored) and the producer answers
//     503 so that the sender retries.
//   - With RedisOptions.MinReplicas N, Publish returns nil only once N
//     replicas acknowledged the event (Redis WAIT on the connection that ran
//     the XADD), so an acknowledged event survives a Sentinel failover;
//     when they do not in time it returns an *UnavailableError wrapping a
//     *ReplicaError (the event is on the master: it may still be delivered,
//     or be lost in a failover). A retry of an event with a dedupe key is
//     idempotent (see Redis.Publish); one without is stored again.
//     Consumers read the master, so they may deliver an event a failover
//     then loses (it was never acknowledged; its retry is delivered again).
//   - Each consuming node delivers every event stored after the node started,
//     exactly once, in stream order (so in order per room), across
//     connection losses and Redis restarts with persistence: after a
//     reconnect it resumes from its last id.
//   - Limits: a node away longer than the stream retains (max length / max
//     age) misses what was trimmed meanwhile, and says so in its log; a Redis
//     restarted without persistence (no AOF/RDB) loses the stream, so events
//     not yet read are lost.
//   - Dedupe keys live in Redis (SET NX with the window as TTL) and are set
//     in the same Lua script as the XADD, so a duplicate is refused on every
//     node and a failed publish never counts as seen.
//   - Readiness (Health): Redis answers PING, the consumer is not in an error
//     state, and a canary the node writes to the stream every canary
//     interval is read back by its own consumer within the canary timeout.
//     Canaries are internal: they never reach a client.
//
// Memory use is bounded: the consumer reads at most a batch of entries at a
// time and delivers it before reading more; a slow node falls behind in
// Redis (bounded by the stream's trimming), never in an unbounded queue.
package bus
