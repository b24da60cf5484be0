package dnsstub

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// SRV is a service record (RFC 2782).
type SRV struct {
	Target   string // a fully qualified name, "." when the service is unavailable
	Port     uint16
	Priority uint16
	Weight   uint16
	TTL      time.Duration // how long the answer stays valid
}

// LookupHost returns the IPv4 and IPv6 addresses of name (A records
// first, then AAAA), asked in parallel. A name without a trailing dot goes
// through the search list (see Config.Ndots). The error is an *Error.
// The returned slice may be shared with the cache, and with other
// callers: it must not be modified (copy it first, with slices.Clone).
func (s *Stub) LookupHost(ctx context.Context, name string) ([]netip.Addr, error) {
	addrs, _, err := s.LookupHostTTL(ctx, name)
	return addrs, err
}

// LookupHostTTL is LookupHost that also returns how long the answer stays
// valid: the lowest remaining TTL of the A and AAAA answers (30 s for a
// stale answer), leaving out a negative answer that may not be cached.
func (s *Stub) LookupHostTTL(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, &Error{Name: name, Type: "A/AAAA", Err: err}
	}
	hostKey := strings.ToLower(name) // no allocation when already lower case
	if addrs, ttl, ok := s.cachedHost(hostKey); ok {
		return addrs, ttl, nil
	}
	if err := checkName(name); err != nil {
		return nil, 0, &Error{Name: name, Type: "A/AAAA", Err: err}
	}
	var failure *Error
	notFound := ErrNoData
	var deps []*entry // the entries the answer depends on; nil after a failure
	cacheable := true
	for i := 0; ; i++ {
		fqdn, ok := s.candidate(name, i)
		if !ok {
			break
		}
		e4, f4, err4 := s.begin(fqdn, dns.TypeA)
		e6, f6, err6 := s.begin(fqdn, dns.TypeAAAA)
		if f4 != nil {
			e4, err4 = wait(ctx, f4)
		}
		if f6 != nil {
			e6, err6 = wait(ctx, f6)
		}
		if err4 != nil && !errors.Is(err4.Err, ErrNotFound) {
			failure = err4
		}
		if err6 != nil && !errors.Is(err6.Err, ErrNotFound) {
			failure = err6
		}
		if e4 == nil || e6 == nil {
			cacheable = false
		} else if cacheable {
			deps = append(deps, e4, e6)
		}
		if failure != nil && (errors.Is(failure.Err, context.Canceled) || errors.Is(failure.Err, context.DeadlineExceeded) || failure.Err == ErrClosed) {
			break
		}
		now := s.now()
		var addrs []netip.Addr
		if e4 != nil && e6 != nil {
			addrs = make([]netip.Addr, 0, len(e4.addrs)+len(e6.addrs))
		}
		ttl := time.Duration(-1)
		for _, e := range [2]*entry{e4, e6} {
			if e == nil {
				continue
			}
			if e.err == ErrNXDomain {
				notFound = ErrNXDomain
			}
			addrs = append(addrs, e.addrs...)
			// A negative half that may not be cached (NODATA without
			// an SOA record, as dnsmasq sends for AAAA) does not make
			// the addresses of the other half uncacheable.
			t := e.remaining(now)
			if len(e.addrs) == 0 && t == 0 {
				continue
			}
			if ttl < 0 || t < ttl {
				ttl = t
			}
		}
		if len(addrs) > 0 {
			if cacheable {
				s.storeHost(hostKey, addrs, deps, now)
			}
			return addrs, ttl, nil
		}
	}
	if failure != nil {
		return nil, 0, &Error{Name: name, Type: "A/AAAA", Err: failure.Err, Attempts: failure.Attempts}
	}
	return nil, 0, &Error{Name: name, Type: "A/AAAA", Err: notFound}
}

// LookupSRV returns the SRV records of name (for example
// "_http._tcp.example.com"), in the order received: see RFC 2782 for the
// order to try them in. Each record's TTL is the answer's remaining TTL.
func (s *Stub) LookupSRV(ctx context.Context, name string) ([]SRV, error) {
	if err := checkName(name); err != nil {
		return nil, &Error{Name: name, Type: "SRV", Err: err}
	}
	e, err := s.searchRecords(ctx, name, dns.TypeSRV, "SRV", func(e *entry) bool { return true })
	if err != nil {
		return nil, err
	}
	ttl := e.remaining(s.now())
	out := make([]SRV, len(e.srvs))
	for i, r := range e.srvs {
		r.TTL = ttl
		out[i] = r
	}
	return out, nil
}

// searchRecords asks for the records of type qtype at name through the
// search list (the first candidate whose answer is usable wins) and
// returns that answer's entry, or the error of the lookup: the last
// server failure if there was one, else NXDOMAIN if a candidate had it,
// else ErrNoData. A cancelled context or a closed stub ends the search.
// typ names the type in errors.
func (s *Stub) searchRecords(ctx context.Context, name string, qtype uint16, typ string, usable func(*entry) bool) (*entry, error) {
	var failure *Error
	notFound := ErrNoData
	for i := 0; ; i++ {
		fqdn, ok := s.candidate(name, i)
		if !ok {
			break
		}
		e, f, err := s.begin(fqdn, qtype)
		if f != nil {
			e, err = wait(ctx, f)
		}
		if err != nil {
			if errors.Is(err.Err, ErrNotFound) {
				if err.Err == ErrNXDomain {
					notFound = ErrNXDomain
				}
				continue
			}
			failure = err
			if errors.Is(err.Err, context.Canceled) || errors.Is(err.Err, context.DeadlineExceeded) || err.Err == ErrClosed {
				break
			}
			continue
		}
		if e.err != nil || !usable(e) {
			if e.err == ErrNXDomain {
				notFound = ErrNXDomain
			}
			continue
		}
		return e, nil
	}
	if failure != nil {
		return nil, &Error{Name: name, Type: typ, Err: failure.Err, Attempts: failure.Attempts}
	}
	return nil, &Error{Name: name, Type: typ, Err: notFound}
}
