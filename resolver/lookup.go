package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/conduit-go/conduit/internal/netaddr"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// isLocalhost reports whether name is "localhost" or under it (RFC 6761
// §6.3): loopback without asking the system.
func isLocalhost(key string) bool {
	return key == "localhost" || strings.HasSuffix(key, ".localhost")
}

// lookupHost returns the addresses of a host name: from Config.Hosts, the
// hosts file, the loopback addresses for localhost, or LookupHost, first
// match wins. The result is non-empty, deduplicated, IPv4-mapped addresses
// unmapped, and ordered by Config.PreferIPv4.
//
// The TTL is ttlForever for the static tables, ttlUnknown when the
// lookup gives none.
func (r *URIResolver) lookupHost(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
	key := hostsKey(host)
	var addrs []netip.Addr
	ttl := ttlForever
	if a, ok := r.hosts[key]; ok && len(a) > 0 {
		addrs = a
	} else if a, ok := r.fileHosts[key]; ok && len(a) > 0 {
		addrs = a
	} else if isLocalhost(key) {
		addrs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
	} else {
		if err := ctx.Err(); err != nil {
			return nil, 0, &lookupError{host: host, err: err}
		}
		found, t, err := r.lookup(ctx, host)
		if err != nil {
			return nil, 0, &lookupError{host: host, err: err}
		}
		ttl = t
		for _, a := range found {
			if a.Is4In6() {
				a = a.Unmap()
			}
			addrs = netaddr.AppendUnique(addrs, a)
		}
		if len(addrs) == 0 {
			return nil, 0, &lookupError{host: host, err: ErrNotFound}
		}
	}
	if r.preferIPv4 {
		v4 := make([]netip.Addr, 0, len(addrs))
		var v6 []netip.Addr
		for _, a := range addrs {
			if a.Is4() {
				v4 = append(v4, a)
			} else {
				v6 = append(v6, a)
			}
		}
		addrs = append(v4, v6...)
	}
	return addrs, ttl, nil
}

// isStatic reports whether lookupHost answers host from the static
// tables (Config.Hosts, the hosts file, localhost), without a lookup.
func (r *URIResolver) isStatic(host string) bool {
	key := hostsKey(host)
	return len(r.hosts[key]) > 0 || len(r.fileHosts[key]) > 0 || isLocalhost(key)
}

// A lookupError is a failed host lookup. It matches ErrNotFound when the
// name does not exist, and unwraps to the lookup's error (a *net.DNSError
// from the system resolver).
type lookupError struct {
	host string
	err  error
}

func (e *lookupError) Error() string {
	var dnsErr *net.DNSError
	if errors.As(e.err, &dnsErr) && dnsErr.Name != "" {
		return e.err.Error() // "lookup HOST on SERVER: …" already names the host
	}
	var stubErr *dnsstub.Error
	if errors.As(e.err, &stubErr) {
		return e.err.Error() // "dns: lookup NAME TYPE: …"
	}
	return "lookup " + e.host + ": " + e.err.Error()
}

func (e *lookupError) Unwrap() error { return e.err }

func (e *lookupError) Is(target error) bool {
	if target != ErrNotFound {
		return false
	}
	if errors.Is(e.err, dnsstub.ErrNotFound) {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(e.err, &dnsErr) && dnsErr.IsNotFound
}
