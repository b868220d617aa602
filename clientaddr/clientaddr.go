// Package clientaddr tells who a request comes from, for the per-client
// bounds: the connection's address, or a trusted proxy's forwarding header,
// and the key one client is counted under (an IPv6 client owns a whole /64,
// so it is counted as one).
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// IPv6PrefixBits is the prefix an IPv6 client is counted under: a /64 is
// what one subscriber or host is routinely given, so counting single
// addresses would let one client use 2^64 of them.
const IPv6PrefixBits = 64

// Resolver finds a request's client address.
type Resolver struct {
	trusted []netip.Prefix
	header  string
}

// NewResolver returns a Resolver that believes header (e.g.
// X-Forwarded-For; its last entry, the one the nearest proxy added) only
// on connections from the trusted CIDRs. An empty header means the
// connection's address always.
func NewResolver(trusted []string, header string) (*Resolver, error) {
	r := &Resolver{header: http.CanonicalHeaderKey(header)}
	for _, cidr := range trusted {
		p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
		if err != nil {
			return nil, fmt.Errorf("clientaddr: trusted proxy %q: %w", cidr, err)
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r, nil
}

// Trusted reports whether addr is one of the trusted proxies.
func (r *Resolver) Trusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range r.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// IP returns the client address of req as text: the connection's, or the
// forwarding header's when the connection comes from a trusted proxy and
// the header holds an address.
func (r *Resolver) IP(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	if r == nil || r.header == "" {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !r.Trusted(peer) {
		return host
	}
	values := req.Header.Values(r.header)
	if len(values) == 0 {
		return host
	}
	last := values[len(values)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(last))
	if err != nil {
		return host
	}
	return ip.Unmap().String()
}

// Key returns what one client is counted under for the per-client bounds:
// req's client address, its /64 for IPv6.
func (r *Resolver) Key(req *http.Request) string {
	return Key(r.IP(req))
}

// Key returns the counting key of an address given as text: an IPv4
// address itself, an IPv6 address's /64 prefix ("2001:db8::/64"). Text that
// is not an address is its own key.
func Key(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	return KeyOf(addr)
}

// KeyOf is Key for a parsed address.
func KeyOf(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	p, _ := addr.Prefix(IPv6PrefixBits)
	return p.String()
}
