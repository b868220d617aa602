package status

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzParseLoginForm: the login form's parser never panics, never returns
// a token with an error, and finds the token of a well-formed form.
func FuzzParseLoginForm(f *testing.F) {
	for _, seed := range []string{"token=abc", "token=a&token=b", "token=", "", "%zz", "a=1&token=x%20y", strings.Repeat("token=x&", 600)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		token, err := ParseLoginForm(body)
		if err != nil && token != "" {
			t.Fatalf("token %q with error %v", token, err)
		}
		if len(body) > MaxLoginBodyBytes && err == nil {
			t.Fatal("an oversized body parsed")
		}
	})
}

// FuzzAuthorization: any Authorization header and cookie either pass with
// the right token or are refused; a wrong one never passes.
func FuzzAuthorization(f *testing.F) {
	for _, seed := range []string{"Bearer " + testToken, "bearer  " + testToken, "Bearer", "Basic x", "Bearer a b", "", "Bearer \t"} {
		f.Add(seed, "")
	}
	f.Add("", CookieName+"=abc")
	f.Fuzz(func(t *testing.T, header, cookie string) {
		if tok, err := ParseBearer(header); err == nil && (tok == "" || strings.ContainsAny(tok, " \t\r\n")) {
			t.Fatalf("ParseBearer(%q) = %q", header, tok)
		}
		a := newAuth(testToken, 1<<30, &Limits{})
		r, _ := http.NewRequest(http.MethodGet, "http://x/status", nil)
		r.Header.Set("Authorization", header)
		r.Header.Set("Cookie", cookie)
		got := a.check(r)
		tok, err := ParseBearer(header)
		validBearer := err == nil && tok == testToken
		validCookie := strings.Contains(cookie, string(a.session))
		if got == allowed && !validBearer && !validCookie {
			t.Fatalf("allowed header %q cookie %q", header, cookie)
		}
		if validBearer && got != allowed {
			t.Fatalf("refused the right bearer token: %q", header)
		}
	})
}
