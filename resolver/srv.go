package resolver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// ErrServiceUnavailable: the SRV records of a name say that the service
// is not offered there (a single record with target ".", RFC 2782).
var ErrServiceUnavailable = errors.New("service not available (SRV target \".\")")

// srvScheme reports whether scheme is an SRV scheme: "srv" (base "") or
// "SCHEME+srv" for a service SCHEME (base SCHEME).
func (r *URIResolver) srvScheme(scheme string) (base string, ok bool) {
	if scheme == "srv" {
		return "", true
	}
	base, ok = strings.CutSuffix(scheme, "+srv")
	if !ok {
		return "", false
	}
	_, ok = r.services[base]
	return base, ok
}

// resolveSRV resolves srv://_SERVICE._PROTO.NAME (base "") and
// SCHEME+srv://NAME: the SRV records in RFC 2782 order, each target's
// addresses with the record's port. SCHEME+srv falls back to NAME's
// addresses with SCHEME's port when NAME has no SRV records.
func (r *URIResolver) resolveSRV(ctx context.Context, uri string, p *parsedURI, base string, listen bool) ([]Endpoint, time.Duration, error) {
	switch {
	case listen:
		return nil, 0, malformed(uri, "cannot listen on an SRV URI")
	case p.host == "":
		return nil, 0, malformed(uri, "empty host")
	case p.addr.IsValid():
		return nil, 0, malformed(uri, "an SRV URI names a domain, not an IP address")
	case p.port >= 0:
		return nil, 0, malformed(uri, "port not allowed in an SRV URI (the SRV records give the ports)")
	}
	name := p.host
	qname := name
	var svc Service
	if base == "" {
		labels := strings.SplitN(name, ".", 3)
		if len(labels) < 3 || !strings.HasPrefix(labels[0], "_") || !strings.HasPrefix(labels[1], "_") {
			return nil, 0, malformed(uri, "want srv://_SERVICE._PROTO.NAME")
		}
	} else {
		svc = r.services[base]
		qname = "_" + base + "._tcp." + name
	}
	serverName := strings.TrimSuffix(name, ".")
	wrap := func(ep Endpoint) Endpoint {
		if svc.TLS {
			return TLS{ServerName: serverName, Inner: ep}
		}
		return ep
	}

	if err := ctx.Err(); err != nil {
		return nil, 0, &URIError{URI: uri, Err: &lookupError{host: qname, err: err}}
	}
	recs, err := r.lookupSRV(ctx, qname)
	if err != nil {
		lerr := &lookupError{host: qname, err: err}
		if base == "" || !errors.Is(lerr, ErrNotFound) {
			return nil, 0, &URIError{URI: uri, Err: lerr}
		}
		// No SRV records: NAME's addresses with the service's port.
		addrs, ttl, err := r.lookupHost(ctx, name)
		if err != nil {
			return nil, 0, &URIError{URI: uri, Err: err}
		}
		eps := make([]Endpoint, 0, len(addrs))
		for _, a := range addrs {
			eps = append(eps, wrap(TCP{Host: name, Addr: addrPort(a, svc.Port)}))
		}
		return eps, ttl, nil
	}
	if len(recs) == 1 && strings.Trim(recs[0].Target, ".") == "" {
		return nil, 0, &URIError{URI: uri, Err: fmt.Errorf("%s: %w", qname, ErrServiceUnavailable)}
	}
	var (
		eps  []Endpoint
		errs []error
		ttl  = time.Duration(-1)
	)
	for _, rec := range r.orderSRV(recs) {
		if rec.TTL > 0 {
			ttl = minTTL(ttl, rec.TTL)
		}
		target := strings.TrimSuffix(asciiLower(rec.Target), ".")
		if target == "" || rec.Port == 0 {
			continue
		}
		addrs, t, err := r.lookupHost(ctx, target)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		ttl = minTTL(ttl, t)
		for _, a := range addrs {
			ep := wrap(TCP{Host: target, Addr: addrPort(a, rec.Port)})
			if !slices.Contains(eps, ep) {
				eps = append(eps, ep)
			}
		}
	}
	if len(eps) == 0 {
		if len(errs) == 0 {
			errs = append(errs, &lookupError{host: qname, err: ErrNotFound})
		}
		return nil, 0, &URIError{URI: uri, Err: errors.Join(errs...)}
	}
	if ttl < 0 {
		ttl = 0 // SRV records come from a lookup: never static
	}
	return eps, ttl, nil
}

// minTTL combines TTLs: negative means forever, 0 unknown.
func minTTL(a, b time.Duration) time.Duration {
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// orderSRV returns the records in RFC 2782 order: by priority, and within
// a priority by weighted random selection (zero weights first in the
// running sum, so they are picked rarely).
func (r *URIResolver) orderSRV(recs []dnsstub.SRV) []dnsstub.SRV {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b dnsstub.SRV) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		// Weight 0 first within a priority (RFC 2782).
		return cmp.Compare(min(a.Weight, 1), min(b.Weight, 1))
	})
	out := make([]dnsstub.SRV, 0, len(sorted))
	for i := 0; i < len(sorted); {
		j := i
		for j < len(sorted) && sorted[j].Priority == sorted[i].Priority {
			j++
		}
		group := sorted[i:j]
		for len(group) > 0 {
			total := 0
			for _, g := range group {
				total += int(g.Weight)
			}
			pick := 0
			if total > 0 {
				n, run := r.intN(total+1), 0
				for k, g := range group {
					run += int(g.Weight)
					if run >= n {
						pick = k
						break
					}
				}
			}
			out = append(out, group[pick])
			group = slices.Delete(group, pick, pick+1)
		}
		i = j
	}
	return out
}

// intN returns a random int in [0, n).
func (r *URIResolver) intN(n int) int {
	if r.rand == nil {
		return rand.IntN(n)
	}
	r.randMu.Lock()
	defer r.randMu.Unlock()
	return r.rand.IntN(n)
}

// addrPort joins an address and a port.
func addrPort(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
