package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The signatures are computed here from their definitions (README, "The
// Modal webhook"), not with the project's signature package, so the
// attacks check the gateway against the documented scheme.

// bodySignature is the body-only header value: sha256=<hex HMAC of the
// raw body>.
func bodySignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// standardHeaders are the Standard Webhooks headers of body.
func standardHeaders(secret, id string, ts time.Time, body []byte) http.Header {
	t := strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%s.%s.", id, t)
	m.Write(body)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", t)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	return h
}

// producer posts to the producer routes on one keep-alive connection.
type producer struct {
	g *gwProc
	c *http.Client
}

func newProducer(g *gwProc) *producer {
	return &producer{g: g, c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 4, MaxIdleConnsPerHost: 4}}}
}

// honestAddr is the loopback address the honest client and producer come
// from: not an attacker's (127.0.0.1, 127.0.1.x), as Modal and the users'
// browsers are not the attacker, so the per-address shares can tell them
// apart.
var honestAddr = net.IPv4(127, 0, 0, 2)

// newHonestProducer is newProducer dialling from honestAddr.
func newHonestProducer(g *gwProc) *producer {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: honestAddr}}
	return &producer{g: g, c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, MaxConnsPerHost: 4, MaxIdleConnsPerHost: 4,
	}}}
}

// post sends body to path with the headers; it returns the status and the
// answer's body.
func (p *producer) post(path string, body []byte, h http.Header) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, p.g.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := p.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, b, nil
}

// webhook posts a Modal webhook signed the body-only way (what Modal does
// today, and what both builds accept by default).
func (p *producer) webhook(body []byte) (int, []byte, error) {
	return p.post("/api/webhooks/modal", body, http.Header{"X-Modal-Signature": {bodySignature(webhookSecret, body)}})
}

// jwtToken is an HS256 token for user sub with the projects claim.
func jwtToken(sub string, projects any, ttl time.Duration) string {
	claims := jwt.MapClaims{"sub": sub, "projects": projects, "exp": time.Now().Add(ttl).Unix(), "iat": time.Now().Unix()}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(jwtSecret))
	if err != nil {
		panic(err)
	}
	return s
}
