package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks scheme (standardwebhooks.com): three headers, and an
// HMAC-SHA256 over "<id>.<timestamp>.<body>", so that a signature cannot be
// replayed later (the timestamp) or twice (the id), unlike one over the body
// alone.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a webhook-timestamp may be from now, either
// way.
const DefaultTolerance = 5 * time.Minute

// Bounds of the Standard headers, checked before the body is read.
const (
	// MaxIDBytes bounds webhook-id.
	MaxIDBytes = 256
	// MaxSignatures bounds the signatures of one webhook-signature header
	// (several are sent while a secret rotates).
	MaxSignatures = 8
	// maxSignatureHeader bounds the header itself.
	maxSignatureHeader = MaxSignatures * 100
)

// secretPrefix marks a Standard Webhooks secret, whose key is the base64
// after it; any other secret is used as its bytes.
const secretPrefix = "whsec_"

// ErrStale refuses a webhook-timestamp outside the tolerance.
var ErrStale = errors.New("signature: timestamp outside the tolerance")

// Standard holds the parsed Standard Webhooks headers of one request.
type Standard struct {
	ID        string
	Timestamp time.Time
	// Signatures are the v1 digests of the header; other versions are
	// skipped.
	Signatures [][]byte
}

// ParseStandard checks the three headers' form (before the body is read):
// an id of 1 to MaxIDBytes printable ASCII characters, a timestamp in
// decimal Unix seconds, and at most MaxSignatures space-separated
// "v1,<base64 of 32 bytes>" signatures. Errors wrap ErrMissing or
// ErrMalformed.
func ParseStandard(id, timestamp, signatures string) (Standard, error) {
	if id == "" || timestamp == "" || signatures == "" {
		return Standard{}, fmt.Errorf("%w: %s, %s and %s are all required", ErrMissing, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	if len(id) > MaxIDBytes || strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return Standard{}, fmt.Errorf("%w: %s", ErrMalformed, HeaderID)
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || secs <= 0 || len(timestamp) > 12 {
		return Standard{}, fmt.Errorf("%w: %s", ErrMalformed, HeaderTimestamp)
	}
	if len(signatures) > maxSignatureHeader {
		return Standard{}, fmt.Errorf("%w: %s too long", ErrMalformed, HeaderSignature)
	}
	s := Standard{ID: id, Timestamp: time.Unix(secs, 0)}
	for _, sig := range strings.Fields(signatures) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok {
			return Standard{}, fmt.Errorf("%w: %s", ErrMalformed, HeaderSignature)
		}
		if version != "v1" {
			continue
		}
		digest, err := base64.StdEncoding.DecodeString(value)
		if err != nil || len(digest) != sha256.Size {
			return Standard{}, fmt.Errorf("%w: %s", ErrMalformed, HeaderSignature)
		}
		if len(s.Signatures) == MaxSignatures {
			return Standard{}, fmt.Errorf("%w: more than %d signatures", ErrMalformed, MaxSignatures)
		}
		s.Signatures = append(s.Signatures, digest)
	}
	if len(s.Signatures) == 0 {
		return Standard{}, fmt.Errorf("%w: no v1 signature", ErrMalformed)
	}
	return s, nil
}

// Fresh checks the timestamp against now: ErrStale when it is more than
// tolerance away either way.
func (s Standard) Fresh(now time.Time, tolerance time.Duration) error {
	if d := now.Sub(s.Timestamp); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s off", ErrStale, d.Round(time.Second))
	}
	return nil
}

// VerifyStandard checks that one of s's signatures signs body with one of
// the secrets. Every signature is compared with every secret in constant
// time.
func (v *Verifier) VerifyStandard(s Standard, body []byte) error {
	if !v.Enabled() {
		return ErrNoSecret
	}
	matched := 0
	var sum [sha256.Size]byte
	var ts [20]byte
	signed := [][]byte{[]byte(s.ID), {'.'}, strconv.AppendInt(ts[:0], s.Timestamp.Unix(), 10), {'.'}, body}
	for _, key := range v.standardKeys {
		want := key.sum(sum[:0], signed...)
		for _, got := range s.Signatures {
			matched |= subtle.ConstantTimeCompare(want, got)
		}
	}
	if matched == 0 {
		return ErrMismatch
	}
	return nil
}

// standardKey is the HMAC key of a secret in the Standard scheme: the
// base64 after "whsec_", or else the secret's bytes.
func standardKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, secretPrefix); ok {
		if key, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return key
		}
	}
	return []byte(secret)
}

func standardDigest(key []byte, id string, ts int64, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// StandardSignature returns the webhook-signature value signing body with
// secret: "v1,<base64>".
func StandardSignature(secret, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(standardDigest(standardKey(secret), id, ts.Unix(), body))
}

// SignRequest sets the three Standard Webhooks headers on h for body,
// with a new random id and now as the timestamp. It is how the gateway's
// own clients sign (the CLI, the backend auth policy).
func SignRequest(h http.Header, secret string, body []byte, now time.Time) {
	id := NewMessageID()
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, StandardSignature(secret, id, now, body))
}

// NewMessageID returns a random webhook-id: "msg_" and 32 hex digits.
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("msg_%x", b)
}
