// Package replay remembers the message ids of signed producer requests
// (Standard Webhooks' webhook-id), so that a captured request sent again
// within the signature's freshness window has no effect. Memory keeps them
// on one node; Redis shares them across the cluster (and a restart).
//
// An id goes through three states. Begin claims a fresh id; the request is
// then handled, and Finish either marks the id done (it is remembered for
// the TTL, which must be longer than the signatures' tolerance) or, when
// the request did not succeed, forgets it, so that the sender's retry (the
// same id, as Standard Webhooks senders retry) is handled anew. A request
// whose id is in progress or done is a replay.
package replay

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// State of an id as Begin finds it.
type State int

// States.
const (
	// Fresh: the id was not seen; the caller owns it and must Finish it.
	Fresh State = iota
	// InProgress: a request with this id is being handled.
	InProgress
	// Done: a request with this id succeeded within the TTL.
	Done
)

// ErrFull is returned by Memory.Begin when it holds MaxIDs ids none of
// which has expired: refusing is safer than forgetting an id too early.
var ErrFull = errors.New("replay: too many message ids remembered")

// Store remembers message ids.
type Store interface {
	// Begin claims id, or reports what it is.
	Begin(ctx context.Context, id string) (State, error)
	// Finish marks a claimed id done, or forgets it when ok is false.
	Finish(ctx context.Context, id string, ok bool) error
}

// DefaultMaxIDs bounds a Memory store.
const DefaultMaxIDs = 200_000

// Memory is the single-node Store.
type Memory struct {
	ttl    time.Duration
	maxIDs int
	now    func() time.Time

	mu  sync.Mutex
	ids map[string]entry
}

type entry struct {
	state   State
	expires time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory remembers up to maxIDs ids (zero: DefaultMaxIDs) for ttl each.
func NewMemory(ttl time.Duration, maxIDs int) *Memory {
	if maxIDs <= 0 {
		maxIDs = DefaultMaxIDs
	}
	return &Memory{ttl: ttl, maxIDs: maxIDs, now: time.Now, ids: make(map[string]entry)}
}

// Begin implements Store.
func (m *Memory) Begin(_ context.Context, id string) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if e, ok := m.ids[id]; ok && now.Before(e.expires) {
		return e.state, nil
	}
	if len(m.ids) >= m.maxIDs {
		for k, e := range m.ids {
			if !now.Before(e.expires) {
				delete(m.ids, k)
			}
		}
		if len(m.ids) >= m.maxIDs {
			return Fresh, ErrFull
		}
	}
	m.ids[id] = entry{state: InProgress, expires: now.Add(m.ttl)}
	return Fresh, nil
}

// Finish implements Store.
func (m *Memory) Finish(_ context.Context, id string, ok bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !ok {
		delete(m.ids, id)
		return nil
	}
	m.ids[id] = entry{state: Done, expires: m.now().Add(m.ttl)}
	return nil
}

// Redis is the cluster Store: one key per id, <prefix>:replay:<id>,
// expiring with the TTL.
type Redis struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
}

var _ Store = (*Redis)(nil)

// NewRedis keeps ids under prefix (the bus stream's key) for ttl.
func NewRedis(client redis.UniversalClient, prefix string, ttl time.Duration) *Redis {
	return &Redis{client: client, prefix: prefix + ":replay:", ttl: ttl}
}

const (
	inProgress = "p"
	done       = "d"
)

// Begin implements Store.
func (r *Redis) Begin(ctx context.Context, id string) (State, error) {
	key := r.prefix + id
	for range 3 { // the key may expire between SET NX and GET
		set, err := r.client.SetNX(ctx, key, inProgress, r.ttl).Result()
		if err != nil {
			return Fresh, err
		}
		if set {
			return Fresh, nil
		}
		v, err := r.client.Get(ctx, key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return Fresh, err
		case v == done:
			return Done, nil
		}
		return InProgress, nil
	}
	return InProgress, nil
}

// Finish implements Store.
func (r *Redis) Finish(ctx context.Context, id string, ok bool) error {
	if !ok {
		return r.client.Del(ctx, r.prefix+id).Err()
	}
	return r.client.Set(ctx, r.prefix+id, done, r.ttl).Err()
}
