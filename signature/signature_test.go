package signature

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	body := []byte(`{"job_id":"j1","status":"completed"}`)
	good := Header("s3cret", body)
	bare := strings.TrimPrefix(good, Prefix)
	tests := []struct {
		name    string
		secrets []string
		header  string
		body    []byte
		want    error
	}{
		{"good with prefix", []string{"s3cret"}, good, body, nil},
		{"good bare hex", []string{"s3cret"}, bare, body, nil},
		{"upper-case hex", []string{"s3cret"}, Prefix + strings.ToUpper(bare), body, nil},
		{"upper-case prefix", []string{"s3cret"}, "SHA256=" + bare, body, nil},
		{"surrounding spaces", []string{"s3cret"}, "  " + good + " ", body, nil},
		{"rotated: old secret still accepted", []string{"new", "s3cret"}, good, body, nil},
		{"rotated: new secret accepted", []string{"new", "s3cret"}, Header("new", body), body, nil},
		{"empty body signed", []string{"s3cret"}, Header("s3cret", nil), nil, nil},
		{"empty body, signature of other body", []string{"s3cret"}, good, nil, ErrMismatch},
		{"wrong secret", []string{"other"}, good, body, ErrMismatch},
		{"tampered body", []string{"s3cret"}, good, append([]byte(" "), body...), ErrMismatch},
		{"missing", []string{"s3cret"}, "", body, ErrMissing},
		{"blank", []string{"s3cret"}, "   ", body, ErrMissing},
		{"wrong prefix", []string{"s3cret"}, "sha1=" + bare, body, ErrMalformed},
		{"md5 length", []string{"s3cret"}, Prefix + bare[:32], body, ErrMalformed},
		{"not hex", []string{"s3cret"}, Prefix + strings.Repeat("zz", 32), body, ErrMalformed},
		{"too long", []string{"s3cret"}, good + "00", body, ErrMalformed},
		{"seed mock header", []string{"s3cret"}, "sha256=MOCKED_SIGNATURE_IF_SECRET_NOT_SET", body, ErrMalformed},
		{"no secret configured", nil, good, body, ErrNoSecret},
		{"only empty secrets", []string{""}, good, body, ErrNoSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := NewVerifier(tc.secrets).Verify(tc.header, tc.body)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Verify() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestHeaderMatchesOpenSSL(t *testing.T) {
	// printf '{"job_id": "test-job"}' | openssl dgst -sha256 -hmac s3cret
	const want = "sha256=ab94a0874ca9ab3fde5e16f7bbb27768277a7bcc0dc8c5113330b86fd5b1dd9d"
	if got := Header("s3cret", []byte(`{"job_id": "test-job"}`)); got != want {
		t.Fatalf("Header() = %q, want %q", got, want)
	}
}

func FuzzVerify(f *testing.F) {
	body := []byte(`{"job_id":"j1"}`)
	f.Add(Header("k", body), body)
	f.Add("sha256=", []byte{})
	f.Add("", []byte("x"))
	f.Add(strings.Repeat("a", 64), []byte("{}"))
	v := NewVerifier([]string{"k", "k2"})
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := v.Verify(header, body)
		if err == nil && header != Header("k", body) && header != Header("k2", body) {
			// Only a correct digest (in any accepted spelling) may verify.
			digest, perr := Parse(header)
			if perr != nil || (hex.EncodeToString(digest) != hex.EncodeToString(Sign([]byte("k"), body)) &&
				hex.EncodeToString(digest) != hex.EncodeToString(Sign([]byte("k2"), body))) {
				t.Fatalf("accepted a wrong signature %q", header)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	for _, size := range []int{256, 4 << 10, 64 << 10} {
		body := []byte(strings.Repeat("x", size))
		header := Header("secret", body)
		v := NewVerifier([]string{"old", "secret"})
		b.Run(fmt.Sprintf("%dB_2secrets", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := v.Verify(header, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A Verifier reuses its keyed MACs: many verifications, concurrent, of
// both schemes and with two secrets, each give the answer a fresh HMAC
// gives.
func TestVerifierReusesMACs(t *testing.T) {
	v := NewVerifier([]string{"old-secret", "whsec_" + "bmV3LXNlY3JldA=="})
	now := time.Unix(1764690000, 0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				body := []byte(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))
				if err := v.Verify(Header("old-secret", body), body); err != nil {
					t.Errorf("body-only %s: %v", body, err)
				}
				if err := v.Verify(Header("old-secret", body), append(body, ' ')); !errors.Is(err, ErrMismatch) {
					t.Errorf("body-only, other body: %v", err)
				}
				id := fmt.Sprintf("msg_%d_%d", g, i)
				std, err := ParseStandard(id, strconv.FormatInt(now.Unix(), 10), StandardSignature("whsec_bmV3LXNlY3JldA==", id, now, body))
				if err != nil {
					t.Error(err)
					return
				}
				if err := v.VerifyStandard(std, body); err != nil {
					t.Errorf("standard %s: %v", body, err)
				}
				std.ID += "x"
				if err := v.VerifyStandard(std, body); !errors.Is(err, ErrMismatch) {
					t.Errorf("standard, other id: %v", err)
				}
			}
		})
	}
	wg.Wait()
}
