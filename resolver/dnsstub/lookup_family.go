package dnsstub

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Family says which address records an answer of LookupHostFamilies
// holds: IPv4 (A), IPv6 (AAAA) or both (IPv4|IPv6, from the cache).
type Family uint8

// The address families.
const (
	IPv4 Family = 1 << iota // A records
	IPv6                    // AAAA records
)

// String returns "A", "AAAA" or "A/AAAA".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "A"
	case IPv6:
		return "AAAA"
	case IPv4 | IPv6:
		return "A/AAAA"
	}
	return "none"
}

// A FamilyAnswer is one answer of LookupHostFamilies.
type FamilyAnswer struct {
	// Family is IPv4 or IPv6 for an answer that came on its own, IPv4|IPv6
	// for both answered at once (both cached).
	Family Family
	// Addrs are the addresses, never empty, A records first. The slice
	// may be shared with the cache: it must not be modified.
	Addrs []netip.Addr
	// TTL is how long the addresses stay valid.
	TTL time.Duration
}

// LookupHostFamilies is LookupHostTTL with each family's answer delivered
// as soon as it arrives: the A and AAAA queries are asked at once and
// send is called (on the calling goroutine, never after the method
// returns) with each non-empty answer, so that a dialer can start on the
// first one (RFC 8305 §3). An answer cached whole is sent once, both
// families together.
//
// The search list behaves as for LookupHost: the candidate names are
// tried in order, the A and AAAA of one candidate at a time, and the
// first candidate with an address of either family wins. A positive
// answer of one family is sent at once even while the other family of
// the same candidate is pending (it can only add to that candidate:
// whatever it says, the candidate has won); an empty answer of one
// family waits for the other before the next candidate is asked. So the
// addresses sent are exactly those LookupHostTTL returns.
//
// It returns the TTL of the whole answer (as LookupHostTTL), or the
// *Error LookupHostTTL would have returned when nothing was sent. When
// ctx ends after something was sent, the error is ctx's (in an *Error)
// and the answers sent stand.
func (s *Stub) LookupHostFamilies(ctx context.Context, name string, send func(FamilyAnswer)) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, &Error{Name: name, Type: "A/AAAA", Err: err}
	}
	hostKey := strings.ToLower(name)
	if addrs, ttl, ok := s.cachedHost(hostKey); ok {
		send(FamilyAnswer{Family: familiesOf(addrs), Addrs: addrs, TTL: ttl})
		return ttl, nil
	}
	if err := checkName(name); err != nil {
		return 0, &Error{Name: name, Type: "A/AAAA", Err: err}
	}
	var failure *Error
	notFound := ErrNoData
	var deps []*entry
	cacheable := true
	for i := 0; ; i++ {
		fqdn, ok := s.candidate(name, i)
		if !ok {
			break
		}
		h := [2]half{{fam: IPv4}, {fam: IPv6}}
		h[0].e, h[0].f, h[0].err = s.begin(fqdn, dns.TypeA)
		h[1].e, h[1].f, h[1].err = s.begin(fqdn, dns.TypeAAAA)
		won := false
		if h[0].f == nil && h[1].f == nil {
			// Both known at once (cached): one answer.
			var addrs []netip.Addr
			for _, x := range h {
				if x.e != nil {
					addrs = append(addrs, x.e.addrs...)
				}
			}
			if len(addrs) > 0 {
				now := s.now()
				send(FamilyAnswer{Family: familiesOf(addrs), Addrs: addrs, TTL: hostTTL(now, h[0].e, h[1].e)})
				won = true
			}
		} else {
			// A family already known (cached) goes first, without
			// waiting for the other's query.
			for i := range h {
				if x := &h[i]; x.f == nil && x.e != nil && len(x.e.addrs) > 0 {
					send(FamilyAnswer{Family: x.fam, Addrs: x.e.addrs, TTL: x.e.remaining(s.now())})
					won = true
				}
			}
			for h[0].f != nil || h[1].f != nil {
				var c0, c1 <-chan struct{}
				if h[0].f != nil {
					c0 = h[0].f.done
				}
				if h[1].f != nil {
					c1 = h[1].f.done
				}
				var x *half
				select {
				case <-c0:
					x = &h[0]
				case <-c1:
					x = &h[1]
				case <-ctx.Done():
					return 0, &Error{Name: name, Type: "A/AAAA", Err: ctx.Err()}
				}
				x.e, x.err, x.f = x.f.e, x.f.err, nil
				if x.e != nil && len(x.e.addrs) > 0 {
					send(FamilyAnswer{Family: x.fam, Addrs: x.e.addrs, TTL: x.e.remaining(s.now())})
					won = true
				}
			}
		}
		for _, x := range h {
			if x.err != nil && !errors.Is(x.err.Err, ErrNotFound) {
				failure = x.err
			}
			if x.e != nil && x.e.err == ErrNXDomain {
				notFound = ErrNXDomain
			}
		}
		if h[0].e == nil || h[1].e == nil {
			cacheable = false
		} else if cacheable {
			deps = append(deps, h[0].e, h[1].e)
		}
		if won {
			now := s.now()
			if cacheable {
				var addrs []netip.Addr
				for _, x := range h {
					addrs = append(addrs, x.e.addrs...)
				}
				s.storeHost(hostKey, addrs, deps, now)
			}
			return hostTTL(now, h[0].e, h[1].e), nil
		}
		if failure != nil && (errors.Is(failure.Err, context.Canceled) || errors.Is(failure.Err, context.DeadlineExceeded) || failure.Err == ErrClosed) {
			break
		}
	}
	if failure != nil {
		return 0, &Error{Name: name, Type: "A/AAAA", Err: failure.Err, Attempts: failure.Attempts}
	}
	return 0, &Error{Name: name, Type: "A/AAAA", Err: notFound}
}

// half is one family's query of a candidate name in LookupHostFamilies.
type half struct {
	fam Family
	e   *entry
	f   *flight // in flight; nil once answered
	err *Error
}

// hostTTL is the TTL of an answer built from e4 and e6 (either may be
// nil), as LookupHostTTL computes it: the lowest remaining TTL, leaving
// out a negative half that may not be cached.
func hostTTL(now time.Time, e4, e6 *entry) time.Duration {
	ttl := time.Duration(-1)
	for _, e := range [2]*entry{e4, e6} {
		if e == nil {
			continue
		}
		t := e.remaining(now)
		if len(e.addrs) == 0 && t == 0 {
			continue
		}
		if ttl < 0 || t < ttl {
			ttl = t
		}
	}
	return max(ttl, 0)
}

// familiesOf returns the families of addrs.
func familiesOf(addrs []netip.Addr) Family {
	var f Family
	for _, a := range addrs {
		if a.Is4() || a.Is4In6() {
			f |= IPv4
		} else {
			f |= IPv6
		}
	}
	return f
}
