package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/rooms"
)

// maxJobEndAttempts bounds the optimistic transaction of JobEnded: each
// attempt fails only when another end of the same batch (or a batch
// registration) committed in between.
const maxJobEndAttempts = 50

// Redis is the cluster Store. Its keys live next to the bus stream:
// <prefix>:job:<job>, <prefix>:batch:<batch> (hash: total, completed,
// failed), <prefix>:batch:<batch>:jobs and :ended (sets of job keys) and
// :projects (the set of its jobs' project ids, as JSON).
type Redis struct {
	bus    *bus.Redis
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on b's Redis whose batch events are appended to
// b's stream.
func NewRedis(b *bus.Redis, ttl time.Duration) *Redis {
	return &Redis{bus: b, client: b.Client(), prefix: b.Prefix(), ttl: ttl}
}

func (r *Redis) jobKey(job string) string     { return r.prefix + ":job:" + job }
func (r *Redis) batchKey(batch string) string { return r.prefix + ":batch:" + batch }

// Resolve implements Store.
func (r *Redis) Resolve(ctx context.Context, job string) (event.Owner, bool, error) {
	b, err := r.client.Get(ctx, r.jobKey(job)).Bytes()
	if errors.Is(err, redis.Nil) {
		return event.Owner{}, false, nil
	}
	if err != nil {
		return event.Owner{}, false, unavailable("resolve", err)
	}
	o, err := decodeOwner(b)
	return o, err == nil, err
}

// JobProject implements Store.
func (r *Redis) JobProject(ctx context.Context, job string) (rooms.ID, bool, error) {
	o, found, err := r.Resolve(ctx, job)
	return o.Project, found, err
}

// BatchProjects implements Store.
func (r *Redis) BatchProjects(ctx context.Context, batch string) ([]rooms.ID, error) {
	members, err := r.client.SMembers(ctx, r.batchKey(batch)+":projects").Result()
	if err != nil {
		return nil, unavailable("batch projects", err)
	}
	out := make([]rooms.ID, 0, len(members))
	for _, m := range members {
		id, err := decodeID(json.RawMessage(m))
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// Register implements Store.
func (r *Redis) Register(ctx context.Context, jobs []Job) error {
	owners := make([][]byte, len(jobs))
	projects := make([][]byte, len(jobs))
	for i, j := range jobs {
		o, err := encodeOwner(j)
		if err != nil {
			return err
		}
		owners[i] = o
		if projects[i], err = json.Marshal(j.Project); err != nil {
			return fmt.Errorf("registry: encode project id: %w", err)
		}
	}
	err := r.write(ctx, func(p redis.Pipeliner) error {
		for i, j := range jobs {
			p.Set(ctx, r.jobKey(j.ID.Key), owners[i], r.ttl)
			if j.Batch.Key != "" {
				key := r.batchKey(j.Batch.Key)
				p.SAdd(ctx, key+":jobs", j.ID.Key)
				p.SAdd(ctx, key+":projects", projects[i])
				p.PExpire(ctx, key+":jobs", r.ttl)
				p.PExpire(ctx, key+":projects", r.ttl)
			}
		}
		return nil
	})
	if err != nil {
		return unavailable("register", err)
	}
	return nil
}

// RegisterBatch implements Store.
func (r *Redis) RegisterBatch(ctx context.Context, batch rooms.ID, total int) error {
	key := r.batchKey(batch.Key)
	err := r.write(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "total", total)
		p.PExpire(ctx, key, r.ttl)
		return nil
	})
	if err != nil {
		return unavailable("register batch", err)
	}
	return nil
}

// JobEnded implements Store. The batch's keys are WATCHed while its counts
// are read; the count, the expiries and the two events' XADDs are then one
// MULTI/EXEC, which Redis refuses if another end of the batch committed
// first, and the end is counted again from the new counts. So the stream
// holds each batch's batch_status in counting order, whichever nodes count,
// and a failure leaves nothing half-done. With the bus's min-replicas, an
// end is acknowledged once the replicas confirm it (bus.Redis.WaitReplicas),
// a repeated end once they confirm the first: the count and its events
// replicate, or are lost in a failover, together, so a retry after a
// replica timeout counts the end once.
func (r *Redis) JobEnded(ctx context.Context, end event.JobEnd) (bool, error) {
	key := r.batchKey(end.Owner.Batch.Key)
	jobsKey, endedKey := key+":jobs", key+":ended"
	first := false
	txn := func(tx *redis.Tx) error {
		first = false
		var (
			ended  *redis.BoolCmd
			counts *redis.SliceCmd
			jobs   *redis.IntCmd
		)
		if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			ended = p.SIsMember(ctx, endedKey, end.Job.Key)
			counts = p.HMGet(ctx, key, "completed", "failed", "total")
			jobs = p.SCard(ctx, jobsKey)
			return nil
		}); err != nil {
			return err
		}
		if ended.Val() {
			if r.bus.MinReplicas() <= 0 {
				return nil
			}
			// A repeated end (a retry after a replica timeout) confirms the
			// first end's events on the replicas before it answers: WAIT
			// covers the connection's last write, so make one (the expiry
			// every end sets anyway).
			if _, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.PExpire(ctx, endedKey, r.ttl)
				return nil
			}); err != nil {
				return err
			}
			return r.bus.WaitReplicas(ctx, tx)
		}
		c, err := batchCounts(counts.Val(), jobs.Val())
		if err != nil {
			return err
		}
		field := "completed"
		if end.Failed {
			field = "failed"
			c.Failed++
		} else {
			c.Completed++
		}
		events, err := end.BatchEvents(c)
		if err != nil {
			return err
		}
		adds := make([]*redis.XAddArgs, len(events))
		for i, e := range events {
			if adds[i], err = r.bus.AddArgs(e); err != nil {
				return err
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SAdd(ctx, endedKey, end.Job.Key)
			p.HIncrBy(ctx, key, field, 1)
			for _, k := range []string{key, jobsKey, endedKey} {
				p.PExpire(ctx, k, r.ttl)
			}
			for _, a := range adds {
				p.XAdd(ctx, a)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// The count and its events are stored; with min-replicas they are
		// acknowledged only once replicated. On a replica timeout the end
		// stays counted (a retry is a repeated end, above).
		if err := r.bus.WaitReplicas(ctx, tx); err != nil {
			return err
		}
		first = true
		return nil
	}
	for range maxJobEndAttempts {
		err := r.client.Watch(ctx, txn, key, endedKey, jobsKey)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return false, unavailable("job end", err)
		}
		return first, nil
	}
	return false, unavailable("job end", fmt.Errorf("batch %s changed under %d attempts in a row", end.Owner.Batch.Key, maxJobEndAttempts))
}

// BatchStatus implements Store: the counts and the stream's newest entry
// read in one MULTI, so the position is the one the counts are current at
// (JobEnded appends its events in the same transaction as its count).
func (r *Redis) BatchStatus(ctx context.Context, batch string) (event.BatchCounts, string, bool, error) {
	key := r.batchKey(batch)
	var (
		exists *redis.IntCmd
		counts *redis.SliceCmd
		jobs   *redis.IntCmd
		tail   *redis.XMessageSliceCmd
	)
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, key, key+":jobs")
		counts = p.HMGet(ctx, key, "completed", "failed", "total")
		jobs = p.SCard(ctx, key+":jobs")
		tail = p.XRevRangeN(ctx, r.prefix, "+", "-", 1)
		return nil
	})
	if err != nil {
		return event.BatchCounts{}, "", false, unavailable("batch status", err)
	}
	if exists.Val() == 0 {
		return event.BatchCounts{}, "", false, nil
	}
	c, err := batchCounts(counts.Val(), jobs.Val())
	if err != nil {
		return event.BatchCounts{}, "", false, err
	}
	position := "0-0"
	if t := tail.Val(); len(t) > 0 {
		position = t[0].ID
	}
	return c, position, true, nil
}

// batchCounts reads the batch hash's completed, failed and total fields and
// the number of jobs registered with the batch.
func batchCounts(fields []any, registered int64) (event.BatchCounts, error) {
	var n [3]int64
	for i, f := range fields {
		s, ok := f.(string)
		if !ok {
			continue // absent
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return event.BatchCounts{}, fmt.Errorf("registry: batch counter %q: %w", s, err)
		}
		n[i] = v
	}
	return event.BatchCounts{Completed: n[0], Failed: n[1], Total: max(n[2], registered)}, nil
}

// unavailable marks a storage error as retryable: nothing was changed.
func unavailable(op string, err error) error {
	var ue *bus.UnavailableError
	if errors.As(err, &ue) {
		return err
	}
	return &bus.UnavailableError{Err: fmt.Errorf("registry: %s: %w", op, err)}
}

// write runs fn's commands in one MULTI/EXEC and, with the bus's
// min-replicas, waits on the same connection until the replicas confirm
// them: a registration acknowledged is not lost in a failover (a job
// forgotten would make its webhook answer 404). Registrations are
// idempotent, so a retry after a replica timeout is safe.
func (r *Redis) write(ctx context.Context, fn func(redis.Pipeliner) error) error {
	return r.client.Watch(ctx, func(tx *redis.Tx) error {
		if _, err := tx.TxPipelined(ctx, fn); err != nil {
			return err
		}
		return r.bus.WaitReplicas(ctx, tx)
	})
}
