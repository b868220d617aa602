package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultLogsChannel is the Redis pub/sub channel on which log follows are
// announced to the log tailer.
const DefaultLogsChannel = "gateway:logs-control"

// DefaultFollowTTL is how long a follow survives without its node
// refreshing it: a node that dies releases its follows after this.
const DefaultFollowTTL = 60 * time.Second

// Control event actions published on the logs channel.
const (
	ActionSubscribe   = "subscribe"
	ActionUnsubscribe = "unsubscribe"
)

// ControlEvent is what RedisFollows publishes on the logs channel for
// every subscribe_logs / unsubscribe_logs (and for follows released by a
// disconnect), so that the component tailing a job's logs knows when to
// start (First) and stop (Last).
type ControlEvent struct {
	Action    string `json:"action"`
	JobID     any    `json:"job_id"`
	Type      string `json:"type"`
	ProjectID any    `json:"project_id,omitempty"`
	// Followers is the number of followers in the cluster after this change.
	Followers int64 `json:"followers"`
	// First is true when this subscribe made the job active.
	First bool `json:"first"`
	// Last is true when this unsubscribe made the job idle.
	Last   bool   `json:"last"`
	Reason string `json:"reason,omitempty"` // "disconnect" for released follows
	Node   string `json:"node"`
	SID    string `json:"sid"`
	Time   string `json:"ts"`
}

// RedisFollows is the cluster-wide Follows: one sorted set per job, members
// node/socket scored by expiry, refreshed by their node.
type RedisFollows struct {
	client  redis.UniversalClient
	prefix  string
	channel string
	node    string
	ttl     time.Duration
	log     *slog.Logger

	mu    sync.Mutex        // guards local
	local map[string]Follow // this node's follows by member+job, refreshed
}

var _ Follows = (*RedisFollows)(nil)

// NewRedisFollows returns the cluster Follows. Keys start with prefix;
// control events go to channel; node names this process.
func NewRedisFollows(client redis.UniversalClient, prefix, channel, node string, log *slog.Logger) *RedisFollows {
	return &RedisFollows{client: client, prefix: prefix, channel: channel, node: node, ttl: DefaultFollowTTL, log: log, local: map[string]Follow{}}
}

// followScript drops expired followers, counts the others, adds (or
// refreshes) ARGV[2] with expiry ARGV[3] and returns the count before.
var followScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return before
`)

// unfollowScript removes ARGV[2]; returns -1 when it was not a follower,
// else the count after.
var unfollowScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return -1 end
return redis.call('ZCARD', KEYS[1])
`)

func (r *RedisFollows) key(job string) string    { return r.prefix + ":follows:" + job }
func (r *RedisFollows) member(sid string) string { return r.node + "/" + sid }
func localKey(member, job string) string         { return member + "\x00" + job }
func nowMillis(t time.Time) string               { return strconv.FormatInt(t.UnixMilli(), 10) }

// Follow implements Follows.
func (r *RedisFollows) Follow(ctx context.Context, f Follow) (bool, error) {
	now := time.Now()
	before, err := followScript.Run(ctx, r.client, []string{r.key(f.Job.Key)},
		nowMillis(now), r.member(f.Member), nowMillis(now.Add(r.ttl)), r.ttl.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("rooms: follow %s: %w", f.Job.Key, err)
	}
	r.mu.Lock()
	_, again := r.local[localKey(f.Member, f.Job.Key)]
	r.local[localKey(f.Member, f.Job.Key)] = f
	r.mu.Unlock()
	followers := before + 1
	if again {
		followers = before
	}
	r.publish(ctx, ControlEvent{Action: ActionSubscribe, First: before == 0, Followers: followers}, f, "")
	return before > 0, nil
}

// Unfollow implements Follows.
func (r *RedisFollows) Unfollow(ctx context.Context, f Follow) (bool, error) {
	after, err := unfollowScript.Run(ctx, r.client, []string{r.key(f.Job.Key)}, nowMillis(time.Now()), r.member(f.Member)).Int64()
	if err != nil {
		return false, fmt.Errorf("rooms: unfollow %s: %w", f.Job.Key, err)
	}
	r.mu.Lock()
	if known, ok := r.local[localKey(f.Member, f.Job.Key)]; ok {
		f.Project = known.Project
		delete(r.local, localKey(f.Member, f.Job.Key))
	}
	r.mu.Unlock()
	if after < 0 {
		return false, nil
	}
	r.publish(ctx, ControlEvent{Action: ActionUnsubscribe, Last: after == 0, Followers: after}, f, "")
	return true, nil
}

// Drop implements Follows: the member disconnected.
func (r *RedisFollows) Drop(ctx context.Context, member string) {
	r.mu.Lock()
	var mine []Follow
	for k, f := range r.local {
		if f.Member == member {
			mine = append(mine, f)
			delete(r.local, k)
		}
	}
	r.mu.Unlock()
	for _, f := range mine {
		after, err := unfollowScript.Run(ctx, r.client, []string{r.key(f.Job.Key)}, nowMillis(time.Now()), r.member(f.Member)).Int64()
		if err != nil {
			r.log.Warn("follow not released; it expires by itself", slog.String("job_id", f.Job.Key), slog.Duration("ttl", r.ttl), slog.String("error", err.Error()))
			continue
		}
		if after >= 0 {
			r.publish(ctx, ControlEvent{Action: ActionUnsubscribe, Last: after == 0, Followers: after}, f, "disconnect")
		}
	}
}

// Run refreshes this node's follows every third of the TTL until ctx ends,
// so they outlive the TTL only while the node lives.
func (r *RedisFollows) Run(ctx context.Context) {
	tick := time.NewTicker(r.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		follows := make([]Follow, 0, len(r.local))
		for _, f := range r.local {
			follows = append(follows, f)
		}
		r.mu.Unlock()
		expiry := nowMillis(time.Now().Add(r.ttl))
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, f := range follows {
				p.ZAddXX(ctx, r.key(f.Job.Key), redis.Z{Score: mustFloat(expiry), Member: r.member(f.Member)})
				p.PExpire(ctx, r.key(f.Job.Key), r.ttl)
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			r.log.Warn("log follows not refreshed", slog.Int("follows", len(follows)), slog.String("error", err.Error()))
		}
	}
}

func (r *RedisFollows) publish(ctx context.Context, ev ControlEvent, f Follow, reason string) {
	ev.JobID = f.Job.Raw
	ev.Type = f.Type
	if f.Project.Key != "" {
		ev.ProjectID = f.Project.Raw
	}
	ev.Reason = reason
	ev.Node = r.node
	ev.SID = f.Member
	ev.Time = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	if err := r.client.Publish(ctx, r.channel, b).Err(); err != nil {
		r.log.Warn("log control event not published", slog.String("job_id", f.Job.Key), slog.String("action", ev.Action), slog.String("error", err.Error()))
	}
}

func mustFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
