// Package signature verifies HMAC-SHA256 request signatures of the form
// "sha256=<hex>" (or a bare hex digest) over a raw request body, against
// one or more secrets, so that a secret can be rotated without downtime.
//
// Comparison is constant-time and every configured secret is tried, so the
// time taken does not reveal which secret matched or how much of a digest was
// right. Secrets never appear in errors.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
)

// Prefix precedes the hex digest in a signature header.
const Prefix = "sha256="

// Sentinel errors of Verify; all mean "reject the request".
var (
	ErrMissing   = errors.New("signature: missing")
	ErrMalformed = errors.New("signature: malformed")
	ErrMismatch  = errors.New("signature: does not match")
	ErrNoSecret  = errors.New("signature: no secret configured")
)

// Verifier checks signatures against a fixed set of secrets.
type Verifier struct {
	secrets [][]byte
}

// NewVerifier returns a Verifier accepting a signature made with any of
// secrets. Empty secrets are ignored.
func NewVerifier(secrets []string) *Verifier {
	v := &Verifier{}
	for _, s := range secrets {
		if s != "" {
			v.secrets = append(v.secrets, []byte(s))
		}
	}
	return v
}

// Enabled reports whether at least one secret is configured.
func (v *Verifier) Enabled() bool { return len(v.secrets) > 0 }

// Parse decodes a signature header value into its 32-byte digest.
func Parse(header string) ([]byte, error) {
	value := strings.TrimSpace(header)
	if value == "" {
		return nil, ErrMissing
	}
	if len(value) >= len(Prefix) && strings.EqualFold(value[:len(Prefix)], Prefix) {
		value = value[len(Prefix):]
	}
	if len(value) != 2*sha256.Size {
		return nil, ErrMalformed
	}
	digest, err := hex.DecodeString(value)
	if err != nil {
		return nil, ErrMalformed
	}
	return digest, nil
}

// Verify checks that header signs body with one of the secrets.
func (v *Verifier) Verify(header string, body []byte) error {
	if !v.Enabled() {
		return ErrNoSecret
	}
	digest, err := Parse(header)
	if err != nil {
		return err
	}
	matched := 0
	for _, secret := range v.secrets {
		matched |= subtle.ConstantTimeCompare(Sign(secret, body), digest)
	}
	if matched == 0 {
		return ErrMismatch
	}
	return nil
}

// Sign returns the HMAC-SHA256 of body under secret.
func Sign(secret, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}

// Header returns the header value signing body with secret: "sha256=<hex>".
func Header(secret string, body []byte) string {
	return Prefix + hex.EncodeToString(Sign([]byte(secret), body))
}

// SignRequest signs an outgoing request: it sets header to Header(secret,
// body), body being the exact bytes r sends. Every request the gateway
// signs itself (the CLI's webhook, publish and job registry commands)
// goes through here, so a change of signature scheme is made once.
func SignRequest(r *http.Request, header, secret string, body []byte) {
	r.Header.Set(header, Header(secret, body))
}
