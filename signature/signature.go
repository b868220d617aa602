// Package signature verifies HMAC-SHA256 request signatures against one or
// more secrets, so that a secret can be rotated without downtime, in two
// schemes: "sha256=<hex>" (or a bare hex digest) over the raw request body,
// as Modal's X-Modal-Signature; and Standard Webhooks (standard.go), over
// "<id>.<timestamp>.<body>", which a replay cannot reuse. A secret starting
// with "whsec_" is, in the Standard scheme, the base64 of its key, as the
// Standard Webhooks libraries expect.
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
	"hash"
	"strings"
	"sync"
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

// Verifier checks signatures against a fixed set of secrets. It is safe
// for concurrent use.
type Verifier struct {
	secrets      []*keyedMAC // the body-only scheme: the secrets' bytes
	standardKeys []*keyedMAC // the Standard Webhooks scheme (standardKey)
}

// NewVerifier returns a Verifier accepting a signature made with any of
// secrets. Empty secrets are ignored.
func NewVerifier(secrets []string) *Verifier {
	v := &Verifier{}
	for _, s := range secrets {
		if s != "" {
			v.secrets = append(v.secrets, newKeyedMAC([]byte(s)))
			v.standardKeys = append(v.standardKeys, newKeyedMAC(standardKey(s)))
		}
	}
	return v
}

// keyedMAC computes HMAC-SHA256 under one key, reusing the keyed states:
// a reset HMAC starts from its saved keyed state, where a new one hashes
// the key's two blocks again and allocates five objects.
type keyedMAC struct {
	key  []byte
	macs sync.Pool // of hash.Hash keyed with key
}

func newKeyedMAC(key []byte) *keyedMAC {
	k := &keyedMAC{key: key}
	k.macs.New = func() any { return hmac.New(sha256.New, k.key) }
	return k
}

// sum appends the HMAC of the concatenated parts to dst.
func (k *keyedMAC) sum(dst []byte, parts ...[]byte) []byte {
	mac := k.macs.Get().(hash.Hash)
	defer k.macs.Put(mac)
	mac.Reset()
	for _, p := range parts {
		mac.Write(p)
	}
	return mac.Sum(dst)
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
	var sum [sha256.Size]byte
	for _, secret := range v.secrets {
		matched |= subtle.ConstantTimeCompare(secret.sum(sum[:0], body), digest)
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
