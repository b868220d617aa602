package auth

import (
	"net/http"
	"strings"
)

// MaxTokenBytes bounds a token (and the cookie and authorization headers
// forwarded to the backend): longer credentials are refused unread.
const MaxTokenBytes = 8 << 10

// Credential sources, in the order Extract looks.
const (
	SourceAuth   = "auth"   // the CONNECT auth payload's token
	SourceHeader = "header" // Authorization: Bearer
	SourceCookie = "cookie" // the cookie named by auth-cookie
	SourceQuery  = "query"  // ?token=, only when allowed
)

// Credentials are what a client presents on its handshake.
type Credentials struct {
	// Token is the first token found (empty when none), and Source where
	// it was found.
	Token  string
	Source string
	// Cookie and Authorization are the handshake's headers as received,
	// forwarded to the backend policy.
	Cookie        string
	Authorization string
}

// Handshake is what Extract reads: the CONNECT payload's auth object, the
// handshake request's headers and query.
type Handshake struct {
	Auth    map[string]any
	Headers http.Header
	Query   map[string][]string
}

// ExtractOptions say where tokens may come from besides the auth payload
// and the Authorization header.
type ExtractOptions struct {
	// Cookie names the cookie holding a token; empty reads no cookie.
	Cookie string
	// Query allows a "token" query parameter.
	Query bool
}

// Extract finds the client's credentials, in order: the auth payload's
// "token" (a string), an "Authorization: Bearer <token>" header, the named
// cookie, and the "token" query parameter when allowed. Values over
// MaxTokenBytes are kept whole here; Check refuses them.
func Extract(h Handshake, opts ExtractOptions) Credentials {
	c := Credentials{Cookie: h.Headers.Get("Cookie"), Authorization: h.Headers.Get("Authorization")}
	if t, ok := h.Auth["token"].(string); ok && t != "" {
		c.Token, c.Source = t, SourceAuth
		return c
	}
	if scheme, t, ok := strings.Cut(c.Authorization, " "); ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(t) != "" {
		c.Token, c.Source = strings.TrimSpace(t), SourceHeader
		return c
	}
	if opts.Cookie != "" && c.Cookie != "" {
		req := http.Request{Header: http.Header{"Cookie": {c.Cookie}}}
		if ck, err := req.Cookie(opts.Cookie); err == nil && ck.Value != "" {
			c.Token, c.Source = ck.Value, SourceCookie
			return c
		}
	}
	if opts.Query {
		if v := h.Query["token"]; len(v) > 0 && v[0] != "" {
			c.Token, c.Source = v[0], SourceQuery
		}
	}
	return c
}

// Check refuses credentials over MaxTokenBytes.
func (c Credentials) Check() error {
	if len(c.Token) > MaxTokenBytes || len(c.Cookie) > MaxTokenBytes || len(c.Authorization) > MaxTokenBytes {
		return unauthorized(ReasonTooLarge, "credentials over the size limit")
	}
	return nil
}
