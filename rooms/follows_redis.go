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

	mu    sync.Mutex                   // guards local
	local map[string]map[string]Follow // this node's follows, by member then job key, refreshed
}

var _ Follows = (*RedisFollows)(nil)

// NewRedisFollows returns the cluster Follows. Keys start with prefix;
// control events go to channel; node names this process; a follow
// outlives its node's last refresh by ttl (DefaultFollowTTL when not
// positive).
func NewRedisFollows(client redis.UniversalClient, prefix, channel, node string, ttl time.Duration, log *slog.Logger) *RedisFollows {
	if ttl <= 0 {
		ttl = DefaultFollowTTL
	}
	return &RedisFollows{client: client, prefix: prefix, channel: channel, node: node, ttl: ttl, log: log, local: map[string]map[string]Follow{}}
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
	jobs := r.local[f.Member]
	if jobs == nil {
		jobs = map[string]Follow{}
		r.local[f.Member] = jobs
	}
	_, again := jobs[f.Job.Key]
	jobs[f.Job.Key] = f
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
	if known, ok := r.local[f.Member][f.Job.Key]; ok {
		f.Project = known.Project
		delete(r.local[f.Member], f.Job.Key)
		if len(r.local[f.Member]) == 0 {
			delete(r.local, f.Member)
		}
	}
	r.mu.Unlock()
	if after < 0 {
		return false, nil
	}
	r.publish(ctx, ControlEvent{Action: ActionUnsubscribe, Last: after == 0, Followers: after}, f, "")
	return true, nil
}

// Count implements Follows: the follows of member on this node.
func (r *RedisFollows) Count(member string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.local[member])
}

// Drop implements Follows: the member disconnected. Its follows are
// released in one round trip (a pipeline of unfollows), and every job it
// made idle gets its control event with last: true, in a second one. A
// failure leaves the follows to expire after the follow TTL.
func (r *RedisFollows) Drop(ctx context.Context, member string) {
	r.mu.Lock()
	jobs := r.local[member]
	delete(r.local, member)
	r.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	mine := make([]Follow, 0, len(jobs))
	for _, f := range jobs {
		mine = append(mine, f)
	}
	now := nowMillis(time.Now())
	cmds := make([]*redis.Cmd, len(mine))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, f := range mine {
			cmds[i] = unfollowScript.Eval(ctx, p, []string{r.key(f.Job.Key)}, now, r.member(f.Member)) // EVALSHA cannot fall back inside a pipeline
		}
		return nil
	})
	if err != nil {
		r.log.Warn("follows not released; they expire by themselves", slog.Int("follows", len(mine)), slog.Duration("ttl", r.ttl), slog.String("error", err.Error()))
		return
	}
	events := make([][]byte, 0, len(mine))
	for i, f := range mine {
		after, err := cmds[i].Int64()
		if err != nil || after < 0 {
			continue
		}
		if b, ok := r.controlEvent(ControlEvent{Action: ActionUnsubscribe, Last: after == 0, Followers: after}, f, "disconnect"); ok {
			events = append(events, b)
		}
	}
	if len(events) == 0 {
		return
	}
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, b := range events {
			p.Publish(ctx, r.channel, b)
		}
		return nil
	})
	if err != nil {
		r.log.Warn("log control events of a disconnect not published", slog.Int("events", len(events)), slog.String("error", err.Error()))
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
		var follows []Follow
		for _, jobs := range r.local {
			for _, f := range jobs {
				follows = append(follows, f)
			}
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
	b, ok := r.controlEvent(ev, f, reason)
	if !ok {
		return
	}
	if err := r.client.Publish(ctx, r.channel, b).Err(); err != nil {
		r.log.Warn("log control event not published", slog.String("job_id", f.Job.Key), slog.String("action", ev.Action), slog.String("error", err.Error()))
	}
}

// controlEvent completes ev for f and encodes it.
func (r *RedisFollows) controlEvent(ev ControlEvent, f Follow, reason string) ([]byte, bool) {
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
	return b, err == nil
}

func mustFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
