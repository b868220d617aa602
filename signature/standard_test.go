package signature

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification and its reference
// libraries (standard-webhooks/libraries test suites).
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = "1614265330"
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestStandardSpecVector(t *testing.T) {
	ts, _ := strconv.ParseInt(specTS, 10, 64)
	if got := StandardSignature(specSecret, specID, time.Unix(ts, 0), []byte(specBody)); got != specSig {
		t.Fatalf("StandardSignature = %q, want the spec's %q", got, specSig)
	}
	s, err := ParseStandard(specID, specTS, "v2,ignored "+specSig)
	if err != nil {
		t.Fatal(err)
	}
	if err := NewVerifier([]string{"other", specSecret}).VerifyStandard(s, []byte(specBody)); err != nil {
		t.Fatalf("VerifyStandard: %v", err)
	}
	if err := NewVerifier([]string{specSecret}).VerifyStandard(s, []byte(specBody+" ")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("tampered body: %v", err)
	}
}

func TestStandardSignsIDAndTimestamp(t *testing.T) {
	body := []byte(`{"job_id":"j1"}`)
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier([]string{"plain-secret-of-at-least-32-bytes!"})
	sig := StandardSignature("plain-secret-of-at-least-32-bytes!", "msg_1", now, body)
	for _, tc := range []struct {
		name, id, ts string
		want         error
	}{
		{"as signed", "msg_1", "1800000000", nil},
		{"another id", "msg_2", "1800000000", ErrMismatch},
		{"another timestamp", "msg_1", "1800000001", ErrMismatch},
	} {
		s, err := ParseStandard(tc.id, tc.ts, sig)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyStandard(s, body); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseStandard(t *testing.T) {
	good := StandardSignature("k", "msg_1", time.Unix(1, 0), nil)
	for _, tc := range []struct {
		name, id, ts, sig string
		want              error
	}{
		{"good", "msg_1", "1700000000", good, nil},
		{"two signatures", "msg_1", "1700000000", good + " " + good, nil},
		{"missing id", "", "1700000000", good, ErrMissing},
		{"missing timestamp", "msg_1", "", good, ErrMissing},
		{"missing signature", "msg_1", "1700000000", "", ErrMissing},
		{"id with a space", "msg 1", "1700000000", good, ErrMalformed},
		{"id too long", strings.Repeat("a", MaxIDBytes+1), "1700000000", good, ErrMalformed},
		{"timestamp in ms", "msg_1", "1700000000000000", good, ErrMalformed},
		{"negative timestamp", "msg_1", "-5", good, ErrMalformed},
		{"timestamp not a number", "msg_1", "soon", good, ErrMalformed},
		{"no comma", "msg_1", "1700000000", "v1" + good[3:], ErrMalformed},
		{"not base64", "msg_1", "1700000000", "v1,***", ErrMalformed},
		{"short digest", "msg_1", "1700000000", "v1,AAAA", ErrMalformed},
		{"only other versions", "msg_1", "1700000000", "v1a,xyz", ErrMalformed},
		{"too many signatures", "msg_1", "1700000000", strings.TrimSpace(strings.Repeat(good+" ", MaxSignatures+1)), ErrMalformed},
	} {
		_, err := ParseStandard(tc.id, tc.ts, tc.sig)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: ParseStandard = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestFresh(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		offset time.Duration
		fresh  bool
	}{{0, true}, {-5 * time.Minute, true}, {5 * time.Minute, true}, {-5*time.Minute - time.Second, false}, {6 * time.Minute, false}} {
		err := Standard{Timestamp: now.Add(tc.offset)}.Fresh(now, DefaultTolerance)
		if (err == nil) != tc.fresh || (err != nil && !errors.Is(err, ErrStale)) {
			t.Errorf("offset %s: %v", tc.offset, err)
		}
	}
}

func TestSignRequest(t *testing.T) {
	h := http.Header{}
	now := time.Now()
	body := []byte(`{"a":1}`)
	SignRequest(h, "k", body, now)
	s, err := ParseStandard(h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature))
	if err != nil {
		t.Fatal(err)
	}
	if err := NewVerifier([]string{"k"}).VerifyStandard(s, body); err != nil {
		t.Fatal(err)
	}
	if err := s.Fresh(now, time.Second); err != nil {
		t.Fatal(err)
	}
	other := http.Header{}
	SignRequest(other, "k", body, now)
	if other.Get(HeaderID) == h.Get(HeaderID) {
		t.Fatal("two requests got the same webhook-id")
	}
}

// FuzzParseStandard: the header parser never panics, bounds what it
// accepts, and nothing but a correct signature verifies.
func FuzzParseStandard(f *testing.F) {
	f.Add(specID, specTS, specSig, []byte(specBody))
	f.Add("msg_1", "1", "v1,", []byte{})
	f.Add("", "", "", []byte("x"))
	f.Add("a", "99999999999", "v1,"+strings.Repeat("A", 44)+" v1,x", []byte("{}"))
	v := NewVerifier([]string{specSecret})
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		s, err := ParseStandard(id, ts, sig)
		if err != nil {
			return
		}
		if len(s.ID) > MaxIDBytes || len(s.Signatures) == 0 || len(s.Signatures) > MaxSignatures {
			t.Fatalf("accepted out-of-bounds headers: %+v", s)
		}
		if v.VerifyStandard(s, body) == nil {
			want, _ := ParseStandard(s.ID, ts, StandardSignature(specSecret, s.ID, s.Timestamp, body))
			found := false
			for _, got := range s.Signatures {
				found = found || string(got) == string(want.Signatures[0])
			}
			if !found {
				t.Fatalf("verified %q without the right signature", sig)
			}
		}
	})
}
