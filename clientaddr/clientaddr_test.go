package clientaddr

import (
	"net/http"
	"testing"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not-an-ip", "not-an-ip"},
	} {
		if got := Key(tc.in); got != tc.want {
			t.Errorf("Key(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestResolverIP(t *testing.T) {
	r, err := NewResolver([]string{"10.0.0.0/8", "fd00::/8"}, "X-Forwarded-For")
	if err != nil {
		t.Fatal(err)
	}
	req := func(remote string, xff ...string) *http.Request {
		q, _ := http.NewRequest(http.MethodGet, "/", nil)
		q.RemoteAddr = remote
		for _, v := range xff {
			q.Header.Add("X-Forwarded-For", v)
		}
		return q
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		want string
	}{
		{"direct", req("198.51.100.1:4000"), "198.51.100.1"},
		{"untrusted peer's header ignored", req("198.51.100.1:4000", "1.2.3.4"), "198.51.100.1"},
		{"trusted peer: last entry", req("10.1.2.3:4000", "6.6.6.6, 1.2.3.4"), "1.2.3.4"},
		{"trusted peer: last header", req("10.1.2.3:4000", "6.6.6.6", "1.2.3.5"), "1.2.3.5"},
		{"trusted peer, no header", req("10.1.2.3:4000"), "10.1.2.3"},
		{"trusted peer, garbage", req("10.1.2.3:4000", "x"), "10.1.2.3"},
		{"trusted IPv6 peer", req("[fd00::1]:4000", "2001:db8::5"), "2001:db8::5"},
	} {
		if got := r.IP(tc.req); got != tc.want {
			t.Errorf("%s: IP = %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := NewResolver([]string{"10.0.0.0/33"}, ""); err == nil {
		t.Error("NewResolver accepted a bad CIDR")
	}
}
