package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshgen/gateway/rooms"
)

// Session is what a client's connection state recovery brings back: the
// rooms it was in and the jobs whose logs it followed, recorded from the
// moment they change so that they survive the client's node being killed.
type Session struct {
	// PID is the private session id the client was given in its CONNECT
	// reply and sends back to recover.
	PID string
	// Owner is the socket id holding the session now. A write by another
	// socket (an older connection of the same client, still open on a
	// node that has not noticed it is gone) is refused.
	Owner string
	// User is the authenticated user of the session ("" without
	// authentication). A session is only given back to the same user.
	User string
	// Held is what the client holds: project and batch rooms, and log
	// follows (Kind rooms.AccessJob).
	Held []rooms.Access
	// Seen is the last time the client was known connected.
	Seen time.Time
	// Quiet, when set, is a stretch of the stream in which the held rooms
	// had no event, up to Seen.
	Quiet Quiet
}

// Ref names one session and its owner, for Store.Touch.
type Ref struct {
	PID, Owner string
	Quiet      Quiet
}

// Store keeps sessions for the recovery window. Every write is
// conditional on the owner: only the socket holding a session changes it.
type Store interface {
	// Save writes s; false when another socket owns the session now.
	Save(ctx context.Context, s Session) (bool, error)
	// Claim makes owner the session's owner and returns the session as it
	// was; found is false when there is none (never, or expired).
	Claim(ctx context.Context, pid, owner string) (s Session, found bool, err error)
	// Touch records that each session is still connected (Seen = now,
	// with its quiet stretch), for those still owned by the given socket.
	// It returns the refs whose session is gone (expired, or lost with a
	// Redis that restarted empty), which the caller should save again.
	Touch(ctx context.Context, refs []Ref, now time.Time) (missing []Ref, err error)
	// Delete removes pid's session if owner holds it.
	Delete(ctx context.Context, pid, owner string) error
}

// held is the stored form of one rooms.Access: the ids as the client gave
// them (number or string), checked again when read back.
type held struct {
	Kind    string `json:"k"`
	ID      any    `json:"id"`
	Project any    `json:"p,omitempty"`
}

func encodeHeld(h []rooms.Access) (string, error) {
	out := make([]held, len(h))
	for i, a := range h {
		out[i] = held{Kind: a.Kind, ID: a.ID.Raw}
		if a.Project.Key != "" {
			out[i].Project = a.Project.Raw
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("recovery: encode session: %w", err)
	}
	return string(b), nil
}

// decodeHeld reads a stored list back; entries that do not check (a kind
// or id that is not one the protocol gives) are dropped.
func decodeHeld(s string) ([]rooms.Access, error) {
	var in []held
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("recovery: stored session does not decode: %w", err)
	}
	out := make([]rooms.Access, 0, len(in))
	for _, h := range in {
		switch h.Kind {
		case rooms.AccessProject, rooms.AccessBatch, rooms.AccessJob:
		default:
			continue
		}
		id, err := rooms.ParseID(h.ID, rooms.MaxIDLengthLimit)
		if err != nil {
			continue
		}
		a := rooms.Access{Kind: h.Kind, ID: id}
		if h.Project != nil {
			if a.Project, err = rooms.ParseID(h.Project, rooms.MaxIDLengthLimit); err != nil {
				continue
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// MemoryStore is the Store of a single node.
type MemoryStore struct {
	ttl time.Duration
	now func() time.Time

	mu        sync.Mutex
	sessions  map[string]*memSession
	lastSweep time.Time
}

type memSession struct {
	s       Session
	expires time.Time
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an in-process store keeping a session ttl after
// its last write.
func NewMemoryStore(ttl time.Duration) *MemoryStore {
	return &MemoryStore{ttl: ttl, now: time.Now, sessions: map[string]*memSession{}}
}

// Save implements Store.
func (m *MemoryStore) Save(_ context.Context, s Session) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if cur, ok := m.sessions[s.PID]; ok && cur.s.Owner != s.Owner {
		return false, nil
	}
	s.Held = append([]rooms.Access(nil), s.Held...)
	m.sessions[s.PID] = &memSession{s: s, expires: now.Add(m.ttl)}
	return true, nil
}

// Claim implements Store.
func (m *MemoryStore) Claim(_ context.Context, pid, owner string) (Session, bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	cur, ok := m.sessions[pid]
	if !ok {
		return Session{}, false, nil
	}
	was := cur.s
	cur.s.Owner = owner
	return was, true, nil
}

// Touch implements Store.
func (m *MemoryStore) Touch(_ context.Context, refs []Ref, now time.Time) ([]Ref, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var missing []Ref
	for _, r := range refs {
		cur, ok := m.sessions[r.PID]
		switch {
		case !ok:
			missing = append(missing, r)
		case cur.s.Owner == r.Owner:
			cur.s.Seen, cur.s.Quiet = now, r.Quiet
			cur.expires = m.now().Add(m.ttl)
		}
	}
	return missing, nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(_ context.Context, pid, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.sessions[pid]; ok && cur.s.Owner == owner {
		delete(m.sessions, pid)
	}
	return nil
}

// Len is the number of sessions kept.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// sweep drops expired sessions, at most every quarter of the ttl; m.mu
// held.
func (m *MemoryStore) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < m.ttl/4 {
		return
	}
	m.lastSweep = now
	for pid, s := range m.sessions {
		if now.After(s.expires) {
			delete(m.sessions, pid)
		}
	}
}

// RedisStore is the cluster's Store: one hash per session,
// <prefix>:session:<pid>, expiring ttl after its last write.
type RedisStore struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns the Redis store; keys start with prefix.
func NewRedisStore(client redis.UniversalClient, prefix string, ttl time.Duration) *RedisStore {
	return &RedisStore{client: client, prefix: prefix + ":session:", ttl: ttl}
}

// saveScript writes the session unless another socket owns it.
var saveScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'owner')
if cur and cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'user', ARGV[2], 'held', ARGV[3], 'seen', ARGV[4], 'qfrom', ARGV[5], 'qto', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
`)

// claimScript hands the session to a new owner and returns it as it was.
var claimScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'owner', 'user', 'held', 'seen', 'qfrom', 'qto')
if not v[1] then return false end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
return v
`)

// touchScript records a connected session's heartbeat if its owner still
// holds it: 1 done, 0 another owner, -1 no session.
var touchScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return -1 end
if owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'seen', ARGV[2], 'qfrom', ARGV[3], 'qto', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

// deleteScript removes the session if its owner holds it.
var deleteScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`)

func (r *RedisStore) ttlMillis() string { return strconv.FormatInt(r.ttl.Milliseconds(), 10) }

// Save implements Store.
func (r *RedisStore) Save(ctx context.Context, s Session) (bool, error) {
	h, err := encodeHeld(s.Held)
	if err != nil {
		return false, err
	}
	n, err := saveScript.Run(ctx, r.client, []string{r.prefix + s.PID}, s.Owner, s.User, h,
		s.Seen.UnixMilli(), s.Quiet.From, s.Quiet.To, r.ttlMillis()).Int()
	if err != nil {
		return false, fmt.Errorf("recovery: save session: %w", err)
	}
	return n == 1, nil
}

// Claim implements Store.
func (r *RedisStore) Claim(ctx context.Context, pid, owner string) (Session, bool, error) {
	v, err := claimScript.Run(ctx, r.client, []string{r.prefix + pid}, owner).Slice()
	if errors.Is(err, redis.Nil) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, fmt.Errorf("recovery: claim session: %w", err)
	}
	field := func(i int) string {
		if i < len(v) {
			if s, ok := v[i].(string); ok {
				return s
			}
		}
		return ""
	}
	s := Session{PID: pid, Owner: field(0), User: field(1), Quiet: Quiet{From: field(4), To: field(5)}}
	if s.Held, err = decodeHeld(field(2)); err != nil {
		return Session{}, false, err
	}
	ms, err := strconv.ParseInt(field(3), 10, 64)
	if err != nil {
		return Session{}, false, fmt.Errorf("recovery: stored session time %q: %w", field(3), err)
	}
	s.Seen = time.UnixMilli(ms)
	return s, true, nil
}

// Touch implements Store, in one pipeline.
func (r *RedisStore) Touch(ctx context.Context, refs []Ref, now time.Time) ([]Ref, error) {
	return r.touch(ctx, refs, now, false)
}

func (r *RedisStore) touch(ctx context.Context, refs []Ref, now time.Time, loaded bool) ([]Ref, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	ms := now.UnixMilli()
	cmds, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ref := range refs {
			touchScript.EvalSha(ctx, p, []string{r.prefix + ref.PID}, ref.Owner, ms, ref.Quiet.From, ref.Quiet.To, r.ttlMillis())
		}
		return nil
	})
	if err != nil && !loaded && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A Redis that restarted or flushed its scripts: load it, once.
		if err = touchScript.Load(ctx, r.client).Err(); err == nil {
			return r.touch(ctx, refs, now, true)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("recovery: touch %d sessions: %w", len(refs), err)
	}
	var missing []Ref
	for i, c := range cmds {
		if n, _ := c.(*redis.Cmd).Int(); n == -1 {
			missing = append(missing, refs[i])
		}
	}
	return missing, nil
}

// Delete implements Store.
func (r *RedisStore) Delete(ctx context.Context, pid, owner string) error {
	if err := deleteScript.Run(ctx, r.client, []string{r.prefix + pid}, owner).Err(); err != nil {
		return fmt.Errorf("recovery: delete session: %w", err)
	}
	return nil
}
