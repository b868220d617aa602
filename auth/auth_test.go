package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshgen/gateway/auth"
	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/registry"
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/signature"
)

const (
	hsSecret    = "jwt-secret-one-of-at-least-32-bytes"
	hsRotated   = "jwt-secret-two-of-at-least-32-bytes"
	backendKey  = "backend-secret-of-at-least-32-bytes"
	testTimeout = 5 * time.Second
)

func id(t testing.TB, v any) rooms.ID {
	t.Helper()
	i, err := rooms.ParseID(v, 0)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func hs(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix(), "projects": []any{"42", 7}}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// owners is the real in-memory registry with two jobs and a batch.
func owners(t *testing.T) auth.Owners {
	b := bus.NewMemory(bus.MemoryOptions{})
	t.Cleanup(func() { _ = b.Close() })
	r := registry.NewMemory(b, time.Hour)
	ctx := context.Background()
	if err := r.Register(ctx, []registry.Job{
		{ID: id(t, "job-42"), Project: id(t, "42"), Batch: id(t, "batch-42")},
		{ID: id(t, "job-77"), Project: id(t, "77"), Batch: id(t, "batch-mixed")},
		{ID: id(t, "job-7"), Project: id(t, float64(7)), Batch: id(t, "batch-mixed")},
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestJWTAuthenticate(t *testing.T) {
	j, err := auth.NewJWT(context.Background(), auth.JWTConfig{Secrets: []string{hsRotated, hsSecret}, Issuer: "https://app", Audience: "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	base := jwt.MapClaims{"iss": "https://app", "aud": "gateway"}
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := claims(base)
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, with(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	tests := []struct {
		name       string
		token      string
		wantReason auth.Reason // "" for success
	}{
		{"valid", hs(t, hsSecret, with(nil)), ""},
		{"rotated secret", hs(t, hsRotated, with(nil)), ""},
		{"within the leeway after exp", hs(t, hsSecret, with(jwt.MapClaims{"exp": time.Now().Add(-10 * time.Second).Unix()})), ""},
		{"expired", hs(t, hsSecret, with(jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})), auth.ReasonExpired},
		{"not yet valid", hs(t, hsSecret, with(jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()})), auth.ReasonExpired},
		{"no exp", hs(t, hsSecret, with(jwt.MapClaims{"exp": nil})), auth.ReasonInvalid},
		{"wrong secret", hs(t, "another-secret-of-at-least-32-bytes", with(nil)), auth.ReasonInvalid},
		{"wrong issuer", hs(t, hsSecret, with(jwt.MapClaims{"iss": "https://evil"})), auth.ReasonInvalid},
		{"wrong audience", hs(t, hsSecret, with(jwt.MapClaims{"aud": "other"})), auth.ReasonInvalid},
		{"no sub", hs(t, hsSecret, with(jwt.MapClaims{"sub": nil})), auth.ReasonInvalid},
		{"projects not a list", hs(t, hsSecret, with(jwt.MapClaims{"projects": "42"})), auth.ReasonInvalid},
		{"a project id that is an object", hs(t, hsSecret, with(jwt.MapClaims{"projects": []any{map[string]any{}}})), auth.ReasonInvalid},
		{"alg none", none, auth.ReasonInvalid},
		{"garbage", "not.a.token", auth.ReasonInvalid},
		{"missing", "", auth.ReasonMissing},
		{"too large", string(make([]byte, auth.MaxTokenBytes+1)), auth.ReasonTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := j.Authenticate(context.Background(), auth.Credentials{Token: tc.token})
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if p.User != "u1" || !p.Projects.Allows("42") || !p.Projects.Allows("7") || p.Projects.Allows("77") || p.ExpiresAt.IsZero() {
					t.Fatalf("principal = %+v", p)
				}
				return
			}
			if !errors.Is(err, auth.ErrUnauthorized) || auth.ReasonOf(err) != tc.wantReason {
				t.Fatalf("err = %v (reason %s), want %s", err, auth.ReasonOf(err), tc.wantReason)
			}
		})
	}
}

func TestJWTAuthorize(t *testing.T) {
	j, err := auth.NewJWT(context.Background(), auth.JWTConfig{Secrets: []string{hsSecret}, Owners: owners(t)})
	if err != nil {
		t.Fatal(err)
	}
	principal := func(c jwt.MapClaims) *auth.Principal {
		p, err := j.Authenticate(context.Background(), auth.Credentials{Token: hs(t, hsSecret, claims(c))})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	listed := principal(nil) // projects 42 and 7
	star := principal(jwt.MapClaims{"projects": "*"})
	batches := principal(jwt.MapClaims{"batches": []any{"batch-mixed"}})
	tests := []struct {
		name   string
		p      *auth.Principal
		access rooms.Access
		want   auth.Reason
	}{
		{"listed project", listed, rooms.Access{Kind: rooms.AccessProject, ID: id(t, "42")}, ""},
		{"a number id matches its string", listed, rooms.Access{Kind: rooms.AccessProject, ID: id(t, "7")}, ""},
		{"another tenant's project", listed, rooms.Access{Kind: rooms.AccessProject, ID: id(t, float64(77))}, auth.ReasonDenied},
		{"every project", star, rooms.Access{Kind: rooms.AccessProject, ID: id(t, "77")}, ""},
		{"batch of an allowed project", listed, rooms.Access{Kind: rooms.AccessBatch, ID: id(t, "batch-42")}, ""},
		{"batch with a job of another project", listed, rooms.Access{Kind: rooms.AccessBatch, ID: id(t, "batch-mixed")}, auth.ReasonDenied},
		{"unknown batch", listed, rooms.Access{Kind: rooms.AccessBatch, ID: id(t, "nobody-knows")}, auth.ReasonUnknown},
		{"batch in the batches claim", batches, rooms.Access{Kind: rooms.AccessBatch, ID: id(t, "batch-mixed")}, ""},
		{"job of an allowed project", listed, rooms.Access{Kind: rooms.AccessJob, ID: id(t, "job-42")}, ""},
		{"job of another project, whatever the client names", listed, rooms.Access{Kind: rooms.AccessJob, ID: id(t, "job-77"), Project: id(t, "42")}, auth.ReasonDenied},
		{"unregistered job with an allowed project", listed, rooms.Access{Kind: rooms.AccessJob, ID: id(t, "local-1"), Project: id(t, "42")}, ""},
		{"unregistered job without a project", listed, rooms.Access{Kind: rooms.AccessJob, ID: id(t, "local-1")}, auth.ReasonUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := j.Authorize(context.Background(), tc.p, tc.access)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, auth.ErrForbidden) || auth.ReasonOf(err) != tc.want {
				t.Fatalf("err = %v (reason %s), want %s", err, auth.ReasonOf(err), tc.want)
			}
		})
	}
}

// writePEM writes the public key of a key pair to a PEM file.
func writePEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestJWTPublicKeyFile(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	j, err := auth.NewJWT(context.Background(), auth.JWTConfig{PublicKeys: []string{writePEM(t, &ec.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims(nil)).SignedString(ec)
	if _, err := j.Authenticate(context.Background(), auth.Credentials{Token: token}); err != nil {
		t.Fatalf("ES256 with a PEM key: %v", err)
	}
	// An HS256 token "signed" with the public key's bytes (the classic
	// algorithm confusion) is refused: no secret is configured.
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	confused := hs(t, string(der), claims(nil))
	if _, err := j.Authenticate(context.Background(), auth.Credentials{Token: confused}); err == nil {
		t.Fatal("an HS256 token was accepted by a policy with only public keys")
	}
}

// jwks serves a JSON Web Key Set that a test can change, counting fetches.
type jwks struct {
	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	fetches atomic.Int32
}

func (s *jwks) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.fetches.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out struct {
		Keys []map[string]string `json:"keys"`
	}
	for kid, k := range s.keys {
		out.Keys = append(out.Keys, map[string]string{
			"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		})
	}
	_ = json.NewEncoder(w).Encode(out)
}

func rs(t *testing.T, key *rsa.PrivateKey, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(nil))
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A JWKS key rotation: a token signed with a key published after start is
// accepted once the set is fetched again for its unknown kid; a second
// unknown kid within the refresh interval does not fetch again.
func TestJWTJWKSRotation(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	set := &jwks{keys: map[string]*rsa.PublicKey{"k1": &k1.PublicKey}}
	srv := httptest.NewServer(set)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j, err := auth.NewJWT(ctx, auth.JWTConfig{JWKSURL: srv.URL, JWKSRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	authn := func(tok string) error {
		c, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		_, err := j.Authenticate(c, auth.Credentials{Token: tok})
		return err
	}
	if err := authn(rs(t, k1, "k1")); err != nil {
		t.Fatalf("k1: %v", err)
	}
	before := set.fetches.Load()
	set.mu.Lock()
	set.keys["k2"] = &k2.PublicKey
	set.mu.Unlock()
	if err := authn(rs(t, k2, "k2")); err != nil {
		t.Fatalf("k2 after rotation: %v", err)
	}
	if got := set.fetches.Load(); got != before+1 {
		t.Fatalf("fetches %d -> %d, want one more for the unknown kid", before, got)
	}
	k3, _ := rsa.GenerateKey(rand.Reader, 2048)
	if err := authn(rs(t, k3, "k3")); err == nil {
		t.Fatal("a token of an unpublished key was accepted")
	}
	if got := set.fetches.Load(); got != before+1 {
		t.Fatalf("an unknown kid fetched the set again within the interval (%d fetches)", got)
	}
}

// backend is a test backend: it checks the gateway's signature, and
// answers from its tables.
type backend struct {
	t       *testing.T
	users   map[string]string // cookie -> user
	allowed map[string]bool   // "user kind id" -> allowed
	status  int               // forced status, 0 for none
	delay   time.Duration
	joins   atomic.Int32
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := make([]byte, r.ContentLength)
	_, _ = r.Body.Read(body)
	s, err := signature.ParseStandard(r.Header.Get(signature.HeaderID), r.Header.Get(signature.HeaderTimestamp), r.Header.Get(signature.HeaderSignature))
	if err != nil || signature.NewVerifier([]string{backendKey}).VerifyStandard(s, body) != nil {
		b.t.Errorf("backend request not signed: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	time.Sleep(b.delay)
	if b.status != 0 {
		w.WriteHeader(b.status)
		return
	}
	var req map[string]any
	_ = json.Unmarshal(body, &req)
	switch req["type"] {
	case "connect":
		user, ok := b.users[req["cookie"].(string)]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"user": user})
	case "join":
		b.joins.Add(1)
		key, _ := json.Marshal([]any{req["user"], req["kind"], req["id"]})
		_ = json.NewEncoder(w).Encode(map[string]any{"allow": b.allowed[string(key)]})
	}
}

func TestBackend(t *testing.T) {
	be := &backend{t: t, users: map[string]string{"session=alice": "alice"}, allowed: map[string]bool{`["alice","project","42"]`: true}}
	srv := httptest.NewServer(be)
	defer srv.Close()
	var calls []string
	var mu sync.Mutex
	p, err := auth.NewBackend(auth.BackendConfig{URL: srv.URL, Secret: backendKey, Timeout: 300 * time.Millisecond, CacheTTL: time.Hour,
		OnCall: func(kind, outcome string, _ time.Duration) {
			mu.Lock()
			calls = append(calls, kind+" "+outcome)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Authenticate(ctx, auth.Credentials{Cookie: "session=mallory"}); auth.ReasonOf(err) != auth.ReasonDenied {
		t.Fatalf("unknown session: %v", err)
	}
	if _, err := p.Authenticate(ctx, auth.Credentials{}); auth.ReasonOf(err) != auth.ReasonMissing {
		t.Fatalf("no credentials: %v", err)
	}
	alice, err := p.Authenticate(ctx, auth.Credentials{Cookie: "session=alice"})
	if err != nil || alice.User != "alice" {
		t.Fatalf("alice: %+v, %v", alice, err)
	}
	for range 3 { // decided once, then from the cache
		if err := p.Authorize(ctx, alice, rooms.Access{Kind: rooms.AccessProject, ID: id(t, "42")}); err != nil {
			t.Fatalf("alice project 42: %v", err)
		}
		if err := p.Authorize(ctx, alice, rooms.Access{Kind: rooms.AccessProject, ID: id(t, "77")}); auth.ReasonOf(err) != auth.ReasonDenied {
			t.Fatalf("alice project 77: %v", err)
		}
	}
	if n := be.joins.Load(); n != 2 {
		t.Fatalf("%d join calls, want 2 (the rest cached)", n)
	}
	// Fail closed: a 5xx and a timeout refuse, counted as errors.
	be.status = http.StatusInternalServerError
	if err := p.Authorize(ctx, alice, rooms.Access{Kind: rooms.AccessBatch, ID: id(t, "b")}); auth.ReasonOf(err) != auth.ReasonError || !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("5xx: %v", err)
	}
	be.status, be.delay = 0, time.Second
	if _, err := p.Authenticate(ctx, auth.Credentials{Cookie: "session=alice"}); auth.ReasonOf(err) != auth.ReasonError {
		t.Fatalf("timeout: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"connect denied", "connect ok", "join ok", "join ok", "join error", "connect error"}
	if len(calls) != len(want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("calls %v, want %v", calls, want)
		}
	}
}

func TestExtractOrder(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer from-header")
	h.Set("Cookie", "other=1; gw_token=from-cookie")
	full := auth.Handshake{Auth: map[string]any{"token": "from-auth"}, Headers: h, Query: map[string][]string{"token": {"from-query"}}}
	opts := auth.ExtractOptions{Cookie: "gw_token", Query: true}
	for _, tc := range []struct {
		name   string
		hs     auth.Handshake
		opts   auth.ExtractOptions
		token  string
		source string
	}{
		{"auth payload first", full, opts, "from-auth", auth.SourceAuth},
		{"then the header", auth.Handshake{Auth: map[string]any{"token": 5}, Headers: h, Query: full.Query}, opts, "from-header", auth.SourceHeader},
		{"then the cookie", auth.Handshake{Headers: http.Header{"Cookie": h["Cookie"]}, Query: full.Query}, opts, "from-cookie", auth.SourceCookie},
		{"then the query", auth.Handshake{Headers: http.Header{}, Query: full.Query}, opts, "from-query", auth.SourceQuery},
		{"no query unless allowed", auth.Handshake{Headers: http.Header{}, Query: full.Query}, auth.ExtractOptions{Cookie: "gw_token"}, "", ""},
		{"no cookie unless named", auth.Handshake{Headers: http.Header{"Cookie": h["Cookie"]}}, auth.ExtractOptions{}, "", ""},
		{"a Basic header is not a token", auth.Handshake{Headers: http.Header{"Authorization": {"Basic dTpw"}}}, opts, "", ""},
	} {
		c := auth.Extract(tc.hs, tc.opts)
		if c.Token != tc.token || c.Source != tc.source {
			t.Errorf("%s: token %q from %q, want %q from %q", tc.name, c.Token, c.Source, tc.token, tc.source)
		}
	}
}

// FuzzAuthenticate feeds arbitrary tokens to the jwt policy: no panic, and
// nothing but a token signed with the secret is accepted.
func FuzzAuthenticate(f *testing.F) {
	good := hs(f, hsSecret, claims(nil))
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("")
	j, err := auth.NewJWT(context.Background(), auth.JWTConfig{Secrets: []string{hsSecret}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := j.Authenticate(context.Background(), auth.Credentials{Token: token})
		if err != nil {
			return
		}
		if p.User == "" {
			t.Fatal("accepted a token without a user")
		}
		if _, verr := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(hsSecret), nil }, jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"})); verr != nil {
			t.Fatalf("accepted a token the secret does not verify: %v", verr)
		}
	})
}
