package status

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// CookieName is the session cookie the login form sets.
const CookieName = "gateway_status"

// Errors of the request parsers.
var (
	// ErrNoToken means the request carries no token.
	ErrNoToken = errors.New("status: no token")
	// ErrMalformed means a header or form is not of the expected form.
	ErrMalformed = errors.New("status: malformed credentials")
)

// verdict is what auth decides about one request.
type verdict int

const (
	allowed verdict = iota
	denied          // no or wrong credentials: 401
	limited         // wrong tokens spent for this minute: 429
)

// auth checks the token of a request: a bearer token or the session
// cookie. A zero token allows everything.
type auth struct {
	token   []byte
	session []byte // the cookie's value: HMAC(token, "status-session")
	limits  *Limits

	mu          sync.Mutex // guards the two fields below
	windowStart time.Time
	failures    int
	perMinute   int
}

func newAuth(token string, perMinute int, limits *Limits) *auth {
	a := &auth{limits: limits, perMinute: perMinute}
	if token != "" {
		a.token = []byte(token)
		mac := hmac.New(sha256.New, a.token)
		mac.Write([]byte("gateway status session v1"))
		a.session = []byte(hex.EncodeToString(mac.Sum(nil)))
	}
	return a
}

// open reports whether no token is needed.
func (a *auth) open() bool { return a.token == nil }

// check decides about r: a valid session cookie passes without touching
// the attempt budget; a bearer token is a login attempt.
func (a *auth) check(r *http.Request) verdict {
	if a.open() {
		return allowed
	}
	if c, err := r.Cookie(CookieName); err == nil && subtle.ConstantTimeCompare([]byte(c.Value), a.session) == 1 {
		return allowed
	}
	token, err := ParseBearer(r.Header.Get("Authorization"))
	if err != nil {
		return denied
	}
	return a.attempt(token)
}

// attempt checks one token against the budget of wrong ones.
func (a *auth) attempt(token string) verdict {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if now.Sub(a.windowStart) >= time.Minute {
		a.windowStart, a.failures = now, 0
	}
	if a.failures >= a.perMinute {
		a.limits.LoginAttempts.Add(1)
		return limited
	}
	if subtle.ConstantTimeCompare([]byte(token), a.token) == 1 {
		return allowed
	}
	a.failures++
	return denied
}

// cookie returns the session cookie; secure when the request came over
// TLS (directly or, by X-Forwarded-Proto, through the ingress).
func (a *auth) cookie(r *http.Request) *http.Cookie {
	return &http.Cookie{
		Name: CookieName, Value: string(a.session), Path: Path,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: behindTLS(r),
		MaxAge: int((12 * time.Hour).Seconds()),
	}
}

func behindTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// ParseBearer returns the token of an Authorization header
// "Bearer <token>" (the scheme in any case).
func ParseBearer(header string) (string, error) {
	if header == "" {
		return "", ErrNoToken
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformed
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", ErrMalformed
	}
	return token, nil
}

// ParseLoginForm returns the token of a login form body
// (application/x-www-form-urlencoded, field "token", given once).
func ParseLoginForm(body []byte) (string, error) {
	if len(body) > MaxLoginBodyBytes {
		return "", ErrMalformed
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return "", ErrMalformed
	}
	tokens := values["token"]
	switch {
	case len(tokens) == 0 || tokens[0] == "":
		return "", ErrNoToken
	case len(tokens) > 1:
		return "", ErrMalformed
	}
	return strings.TrimSpace(tokens[0]), nil
}
