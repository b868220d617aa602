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
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/webhook"
)

// Redis is the cluster Store. Its keys live next to the bus stream:
// <stream>:job:<job>, <stream>:batch:<batch> (hash: total, completed,
// failed), <stream>:batch:<batch>:jobs and :ended (sets).
type Redis struct {
	client redis.UniversalClient
	stream string
	maxLen int64
	ttl    time.Duration
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on client whose batch events are appended to the
// bus stream (bus.Redis.Stream(), entries in the bus's format).
func NewRedis(client redis.UniversalClient, stream string, maxLen int64, ttl time.Duration) *Redis {
	return &Redis{client: client, stream: stream, maxLen: maxLen, ttl: ttl}
}

func (r *Redis) jobKey(job string) string     { return r.stream + ":job:" + job }
func (r *Redis) batchKey(batch string) string { return r.stream + ":batch:" + batch }

// Resolve implements webhook.Resolver.
func (r *Redis) Resolve(ctx context.Context, job string) (webhook.Owner, error) {
	b, err := r.client.Get(ctx, r.jobKey(job)).Bytes()
	if errors.Is(err, redis.Nil) {
		return webhook.Owner{}, webhook.ErrJobNotFound
	}
	if err != nil {
		return webhook.Owner{}, unavailable("resolve", err)
	}
	return decodeOwner(b)
}

// Register implements Store.
func (r *Redis) Register(ctx context.Context, jobs []Job) error {
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, j := range jobs {
			o, err := encodeOwner(j)
			if err != nil {
				return err
			}
			p.Set(ctx, r.jobKey(j.ID.Key), o, r.ttl)
			if j.Batch.Key != "" {
				key := r.batchKey(j.Batch.Key) + ":jobs"
				p.SAdd(ctx, key, j.ID.Key)
				p.PExpire(ctx, key, r.ttl)
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
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "total", total)
		p.PExpire(ctx, key, r.ttl)
		return nil
	})
	if err != nil {
		return unavailable("register batch", err)
	}
	return nil
}

// jobEndScript counts a job's first end and appends job_progress and
// batch_status to the bus stream, atomically. KEYS: stream, batch hash,
// batch jobs set, batch ended set. ARGV: job key, "1" when failed, stream
// max length, batch id JSON, job id JSON, message JSON, rooms JSON, TTL ms.
// Returns 0 for a repeated end, 1 otherwise.
var jobEndScript = redis.NewScript(`
if redis.call('SADD', KEYS[4], ARGV[1]) == 0 then return 0 end
local failedEnd = ARGV[2] == '1'
redis.call('HINCRBY', KEYS[2], failedEnd and 'failed' or 'completed', 1)
local completed = tonumber(redis.call('HGET', KEYS[2], 'completed') or '0')
local failed = tonumber(redis.call('HGET', KEYS[2], 'failed') or '0')
local total = tonumber(redis.call('HGET', KEYS[2], 'total') or '0')
local registered = redis.call('SCARD', KEYS[3])
if registered > total then total = registered end
local status = 'processing'
local totalJSON = 'null'
if total > 0 then
  if completed + failed > total then total = completed + failed end
  totalJSON = string.format('%d', total)
  if completed + failed >= total then
    if failed > 0 then status = 'failed' else status = 'completed' end
  end
end
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
local jobStatus = failedEnd and 'failed' or 'completed'
local progress = '{"batch_id":' .. ARGV[4] .. ',"job_id":' .. ARGV[5] .. ',"progress":100,"status":"' .. jobStatus .. '","message":' .. ARGV[6] .. '}'
local batchStatus = '{"batch_id":' .. ARGV[4] .. ',"status":"' .. status .. '","completed_jobs":' .. string.format('%d', completed) .. ',"total_jobs":' .. totalJSON .. ',"failed_jobs":' .. string.format('%d', failed) .. '}'
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', '{"n":"job_progress","r":' .. ARGV[7] .. ',"p":' .. progress .. '}')
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', '{"n":"batch_status","r":' .. ARGV[7] .. ',"p":' .. batchStatus .. '}')
return 1
`)

// JobEnded implements Store.
func (r *Redis) JobEnded(ctx context.Context, end JobEnd) (bool, error) {
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	key := r.batchKey(end.Batch.Key)
	failed := "0"
	if end.Failed {
		failed = "1"
	}
	n, err := jobEndScript.Run(ctx, r.client,
		[]string{r.stream, key, key + ":jobs", key + ":ended"},
		end.Job.Key, failed, r.maxLen, enc(end.Batch.Raw), enc(end.Job.Raw), enc(end.Message),
		enc([]string{rooms.BatchRoom(end.Batch)}), strconv.FormatInt(r.ttl.Milliseconds(), 10),
	).Int()
	if err != nil {
		return false, unavailable("job end", err)
	}
	return n == 1, nil
}

// unavailable marks a storage error as retryable: nothing was changed.
func unavailable(op string, err error) error {
	return &bus.UnavailableError{Err: fmt.Errorf("registry: %s: %w", op, err)}
}
