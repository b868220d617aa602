package auth

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/meshgen/gateway/rooms"
)

// Defaults of JWTConfig.
const (
	DefaultProjectsClaim = "projects"
	DefaultBatchesClaim  = "batches"
	DefaultLeeway        = 30 * time.Second
	// DefaultJWKSRefresh is how often the JWKS is fetched again, and the
	// least time between two fetches for an unknown key id.
	DefaultJWKSRefresh = 5 * time.Minute
	// jwksTimeout bounds one JWKS fetch.
	jwksTimeout = 5 * time.Second
)

// hmacMethods and publicMethods are the algorithms accepted; "none" never is.
var (
	hmacMethods   = []string{"HS256", "HS384", "HS512"}
	publicMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

// JWTConfig configures the jwt mode. At least one of Secrets, PublicKeys
// and JWKSURL is required.
type JWTConfig struct {
	// Secrets verify HS256/384/512 tokens; each is accepted (rotation).
	Secrets []string
	// PublicKeys are paths of PEM files (PKIX public keys or certificates:
	// RSA, ECDSA, Ed25519) verifying RS/PS/ES/EdDSA tokens.
	PublicKeys []string
	// JWKSURL is a JSON Web Key Set, fetched at start, every JWKSRefresh,
	// and on an unknown key id at most once per JWKSRefresh.
	JWKSURL string
	// JWKSRefresh: zero means DefaultJWKSRefresh.
	JWKSRefresh time.Duration
	// Issuer and Audience, when set, must match iss and aud.
	Issuer   string
	Audience string
	// Leeway allowed on exp and nbf. Zero means DefaultLeeway.
	Leeway time.Duration
	// ProjectsClaim and BatchesClaim name the claims listing the ids the
	// user may see (a list of strings or integers, or "*"). Zero means
	// DefaultProjectsClaim and DefaultBatchesClaim.
	ProjectsClaim string
	BatchesClaim  string
	// Owners ties batches and jobs to projects (the registry); nil allows
	// batches only through the batches claim and jobs only through the
	// project the client names.
	Owners Owners
	// MaxIDLength bounds the ids of the claims.
	MaxIDLength int
	// Logger receives the JWKS fetch failures. Nil means slog.Default().
	Logger *slog.Logger
}

// JWT is the jwt mode's Policy.
type JWT struct {
	cfg     JWTConfig
	parser  *jwt.Parser
	secrets [][]byte
	keys    []crypto.PublicKey
	jwks    keyfunc.Keyfunc // nil without JWKSURL
}

var _ Policy = (*JWT)(nil)

// NewJWT checks cfg, reads the public keys and, with a JWKS URL, starts its
// refresh, which runs until ctx ends. A JWKS that cannot be fetched at start
// is not an error: tokens are refused until it can be.
func NewJWT(ctx context.Context, cfg JWTConfig) (*JWT, error) {
	if len(cfg.Secrets) == 0 && len(cfg.PublicKeys) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("auth: jwt needs secrets, public keys or a JWKS URL")
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.ProjectsClaim == "" {
		cfg.ProjectsClaim = DefaultProjectsClaim
	}
	if cfg.BatchesClaim == "" {
		cfg.BatchesClaim = DefaultBatchesClaim
	}
	if cfg.JWKSRefresh <= 0 {
		cfg.JWKSRefresh = DefaultJWKSRefresh
	}
	j := &JWT{cfg: cfg}
	for _, s := range cfg.Secrets {
		j.secrets = append(j.secrets, []byte(s))
	}
	for _, path := range cfg.PublicKeys {
		key, err := readPublicKey(path)
		if err != nil {
			return nil, err
		}
		j.keys = append(j.keys, key)
	}
	if cfg.JWKSURL != "" {
		log := cfg.Logger
		if log == nil {
			log = slog.Default()
		}
		k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			HTTPTimeout:       jwksTimeout,
			RefreshInterval:   cfg.JWKSRefresh,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(cfg.JWKSRefresh), 1),
			// Bounds the refresh for an unknown key id, the fetch
			// included. The limiter refuses at once when its next token
			// is further away than this (so with a refresh interval over
			// jwksTimeout an unknown kid never waits for it).
			RateLimitWaitMax: jwksTimeout,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					log.WarnContext(ctx, "JWKS not fetched: tokens of keys not yet known are refused", slog.String("url", u), slog.String("error", err.Error()))
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS %s: %w", cfg.JWKSURL, err)
		}
		j.jwks = k
	}
	var methods []string
	if len(j.secrets) > 0 {
		methods = append(methods, hmacMethods...)
	}
	if len(j.keys) > 0 || j.jwks != nil {
		methods = append(methods, publicMethods...)
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(cfg.Leeway), jwt.WithExpirationRequired()}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	j.parser = jwt.NewParser(opts...)
	return j, nil
}

// readPublicKey reads one PEM public key or certificate.
func readPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: public key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("auth: public key %s: no PEM block", path)
	}
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: public key %s: %w", path, err)
		}
		return cert.PublicKey, nil
	default:
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: public key %s: %w", path, err)
		}
		return key, nil
	}
}

// keyFor returns the keys that may have signed t: every secret for HMAC,
// every PEM key and the JWKS key named by kid for the others.
func (j *JWT) keyFor(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if strings.HasPrefix(t.Method.Alg(), "HS") {
			set := jwt.VerificationKeySet{}
			for _, s := range j.secrets {
				set.Keys = append(set.Keys, s)
			}
			return set, nil
		}
		set := jwt.VerificationKeySet{}
		for _, k := range j.keys {
			set.Keys = append(set.Keys, k)
		}
		if _, hasKID := t.Header["kid"]; hasKID && j.jwks != nil {
			if key, err := j.jwks.KeyfuncCtx(ctx)(t); err == nil {
				set.Keys = append(set.Keys, key)
			}
		}
		if len(set.Keys) == 0 {
			return nil, errors.New("no key for this token")
		}
		return set, nil
	}
}

// Authenticate implements Policy.
func (j *JWT) Authenticate(ctx context.Context, creds Credentials) (*Principal, error) {
	if err := creds.Check(); err != nil {
		return nil, err
	}
	if creds.Token == "" {
		return nil, unauthorized(ReasonMissing, "no token")
	}
	claims := jwt.MapClaims{}
	_, err := j.parser.ParseWithClaims(creds.Token, claims, j.keyFor(ctx))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, unauthorized(ReasonExpired, err.Error())
	case err != nil:
		return nil, unauthorized(ReasonInvalid, err.Error())
	}
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return nil, unauthorized(ReasonInvalid, "no sub claim")
	}
	p := &Principal{User: sub}
	if p.Projects, err = grantClaim(claims[j.cfg.ProjectsClaim], j.cfg.MaxIDLength); err != nil {
		return nil, unauthorized(ReasonInvalid, j.cfg.ProjectsClaim+" claim: "+err.Error())
	}
	if p.Batches, err = grantClaim(claims[j.cfg.BatchesClaim], j.cfg.MaxIDLength); err != nil {
		return nil, unauthorized(ReasonInvalid, j.cfg.BatchesClaim+" claim: "+err.Error())
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		// The end of what Authenticate accepts: a token taken within the
		// leeway after exp must not be closed at once, then let in again.
		p.ExpiresAt = exp.Time.Add(j.cfg.Leeway)
	}
	return p, nil
}

// Authorize implements Policy.
func (j *JWT) Authorize(ctx context.Context, p *Principal, r rooms.Access) error {
	return authorizeByGrants(ctx, j.cfg.Owners, p, r)
}

// maxGrantIDs bounds the ids a claim may list.
const maxGrantIDs = 10_000

// grantClaim reads a claim listing ids ("*" for all; absent for none).
func grantClaim(v any, maxIDLength int) (Grant, error) {
	switch c := v.(type) {
	case nil:
		return Grant{}, nil
	case string:
		if c == "*" {
			return Grant{All: true}, nil
		}
		return Grant{}, errors.New(`must be a list of ids or "*"`)
	case []any:
		if len(c) > maxGrantIDs {
			return Grant{}, fmt.Errorf("more than %d ids", maxGrantIDs)
		}
		g := Grant{IDs: make(map[string]struct{}, len(c))}
		for _, item := range c {
			if item == "*" {
				return Grant{All: true}, nil
			}
			id, err := rooms.ParseID(item, maxIDLength)
			if err != nil {
				return Grant{}, err
			}
			g.IDs[id.Key] = struct{}{}
		}
		return g, nil
	}
	return Grant{}, errors.New(`must be a list of ids or "*"`)
}
