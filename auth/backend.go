package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/signature"
)

// Defaults of BackendConfig.
const (
	DefaultBackendTimeout = 2 * time.Second
	DefaultCacheTTL       = 30 * time.Second
	DefaultCacheSize      = 100_000
	// maxBackendAnswer bounds the body of a backend answer.
	maxBackendAnswer = 64 << 10
)

// BackendConfig configures the backend mode.
type BackendConfig struct {
	// URL receives the signed POSTs. Required.
	URL string
	// Secret signs them (Standard Webhooks headers), so the backend knows
	// they come from the gateway. Required.
	Secret string
	// Timeout bounds one call; a call that takes longer refuses. Zero means
	// DefaultBackendTimeout.
	Timeout time.Duration
	// CacheTTL is how long a join decision is kept per (user, room). Zero
	// means DefaultCacheTTL.
	CacheTTL time.Duration
	// CacheSize bounds the decisions kept. Zero means DefaultCacheSize.
	CacheSize int
	// MaxIDLength bounds the ids of the answers' lists.
	MaxIDLength int
	// Client makes the calls. Nil means a client with no proxy and no
	// redirects followed.
	Client *http.Client
	// OnCall, when set, is called after every call with its kind
	// ("connect" or "join"), its outcome ("ok", "denied", "error") and its
	// duration (for metrics).
	OnCall func(kind, outcome string, d time.Duration)
}

// Backend is the backend mode's Policy: the existing backend decides.
//
// On connect it receives
//
//	{"type": "connect", "token": "...", "cookie": "...", "authorization": "..."}
//
// (the client's token, when it gave one, and its handshake's Cookie and
// Authorization headers) and answers 200
//
//	{"user": "u1", "projects": ["42", 7] | "*", "batches": [...], "expires_at": 1767225600}
//
// (projects, batches and expires_at, in Unix seconds, optional), or 401/403
// to refuse. On a join not decided by the connect answer's lists it
// receives
//
//	{"type": "join", "user": "u1", "kind": "project" | "batch" | "job", "id": 42, "project": 7}
//
// and answers 200 {"allow": true | false}, or 403 to refuse. Anything else,
// a timeout included, refuses and counts as an error.
type Backend struct {
	cfg    BackendConfig
	client *http.Client

	mu    sync.Mutex
	cache map[string]decision
}

type decision struct {
	allow   bool
	expires time.Time
}

var _ Policy = (*Backend)(nil)

// NewBackend checks cfg and returns the policy.
func NewBackend(cfg BackendConfig) (*Backend, error) {
	if cfg.URL == "" || cfg.Secret == "" {
		return nil, errors.New("auth: backend needs a URL and a secret")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultBackendTimeout
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{
			Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32, IdleConnTimeout: time.Minute},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Backend{cfg: cfg, client: client, cache: make(map[string]decision)}, nil
}

type connectAnswer struct {
	User      string `json:"user"`
	Projects  any    `json:"projects"`
	Batches   any    `json:"batches"`
	ExpiresAt int64  `json:"expires_at"`
}

// Authenticate implements Policy.
func (b *Backend) Authenticate(ctx context.Context, creds Credentials) (*Principal, error) {
	if err := creds.Check(); err != nil {
		return nil, err
	}
	if creds.Token == "" && creds.Cookie == "" && creds.Authorization == "" {
		return nil, unauthorized(ReasonMissing, "no token, cookie or authorization header")
	}
	var answer connectAnswer
	status, err := b.call(ctx, "connect", map[string]string{
		"type": "connect", "token": creds.Token, "cookie": creds.Cookie, "authorization": creds.Authorization,
	}, &answer)
	switch {
	case err != nil:
		return nil, &Refusal{Reason: ReasonError, Err: ErrUnauthorized, Detail: err.Error()}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, unauthorized(ReasonDenied, "the backend refused the client")
	case answer.User == "":
		return nil, &Refusal{Reason: ReasonError, Err: ErrUnauthorized, Detail: "the backend's answer names no user"}
	}
	p := &Principal{User: answer.User}
	if p.Projects, err = grantClaim(answer.Projects, b.cfg.MaxIDLength); err != nil {
		return nil, &Refusal{Reason: ReasonError, Err: ErrUnauthorized, Detail: "backend projects: " + err.Error()}
	}
	if p.Batches, err = grantClaim(answer.Batches, b.cfg.MaxIDLength); err != nil {
		return nil, &Refusal{Reason: ReasonError, Err: ErrUnauthorized, Detail: "backend batches: " + err.Error()}
	}
	if answer.ExpiresAt > 0 {
		p.ExpiresAt = time.Unix(answer.ExpiresAt, 0)
	}
	return p, nil
}

// Authorize implements Policy: the connect answer's lists decide what they
// cover; the backend the rest, once per (user, room) per cache TTL.
func (b *Backend) Authorize(ctx context.Context, p *Principal, a rooms.Access) error {
	switch {
	case a.Kind == rooms.AccessProject && p.Projects.Allows(a.ID.Key),
		a.Kind == rooms.AccessBatch && p.Batches.Allows(a.ID.Key),
		a.Kind == rooms.AccessJob && p.Projects.All:
		return nil
	}
	key := strings.Join([]string{p.User, a.Kind, a.ID.Key, a.Project.Key}, "\x00")
	if allow, ok := b.cached(key); ok {
		return verdict(allow)
	}
	body := map[string]any{"type": "join", "user": p.User, "kind": a.Kind, "id": a.ID}
	if a.Project.Key != "" {
		body["project"] = a.Project
	}
	var answer struct {
		Allow *bool `json:"allow"`
	}
	status, err := b.call(ctx, "join", body, &answer)
	switch {
	case err != nil:
		return &Refusal{Reason: ReasonError, Err: ErrForbidden, Detail: err.Error()}
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		b.remember(key, false)
		return verdict(false)
	case answer.Allow == nil:
		return &Refusal{Reason: ReasonError, Err: ErrForbidden, Detail: `the backend's answer has no "allow"`}
	}
	b.remember(key, *answer.Allow)
	return verdict(*answer.Allow)
}

func verdict(allow bool) error {
	if allow {
		return nil
	}
	return forbidden(ReasonDenied, "the backend denied the join")
}

func (b *Backend) cached(key string) (allow, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.cache[key]
	if !ok || time.Now().After(d.expires) {
		return false, false
	}
	return d.allow, true
}

// remember keeps a decision; when the cache is full, expired decisions go
// first, then any (a dropped decision is only asked again).
func (b *Backend) remember(key string, allow bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if len(b.cache) >= b.cfg.CacheSize {
		for k, d := range b.cache {
			if now.After(d.expires) {
				delete(b.cache, k)
			}
		}
		for k := range b.cache {
			if len(b.cache) < b.cfg.CacheSize {
				break
			}
			delete(b.cache, k)
		}
	}
	b.cache[key] = decision{allow: allow, expires: now.Add(b.cfg.CacheTTL)}
}

// call POSTs body, signed, and decodes a 200 answer into out. It returns
// the status for 401 and 403; any other status, a transport error, a
// timeout or an unreadable 200 is an error.
func (b *Backend) call(ctx context.Context, kind string, body any, out any) (status int, err error) {
	start := time.Now()
	outcome := "error"
	defer func() {
		if b.cfg.OnCall != nil {
			b.cfg.OnCall(kind, outcome, time.Since(start))
		}
	}()
	payload, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.URL, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	signature.SignRequest(req.Header, b.cfg.Secret, payload, time.Now())
	res, err := b.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("auth backend %s: %w", kind, err)
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, maxBackendAnswer+1))
	if err != nil {
		return 0, fmt.Errorf("auth backend %s: reading the answer: %w", kind, err)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		outcome = "denied"
		return res.StatusCode, nil
	case res.StatusCode != http.StatusOK:
		return 0, fmt.Errorf("auth backend %s: answered %d", kind, res.StatusCode)
	case len(answer) > maxBackendAnswer:
		return 0, fmt.Errorf("auth backend %s: answer over %d bytes", kind, maxBackendAnswer)
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return 0, fmt.Errorf("auth backend %s: answer does not decode: %w", kind, err)
	}
	outcome = "ok"
	return res.StatusCode, nil
}
