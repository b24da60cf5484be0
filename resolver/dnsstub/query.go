package dnsstub

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/conduit-go/conduit/internal/netaddr"
	"github.com/miekg/dns"
)

// resolve asks the servers for (fqdn, qtype), following CNAME chains
// that the servers did not follow, and returns a positive or negative
// entry, or the error of a failure.
func (s *Stub) resolve(ctx context.Context, fqdn string, qtype uint16) (*entry, *Error) {
	name, hops := fqdn, 0
	ttl := uint32(1<<32 - 1)
	for {
		m, attempts, err := s.ask(ctx, name, qtype)
		if err != nil {
			return nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: err, Attempts: attempts}
		}
		a := extract(m, name, qtype, s.maxCNAME-hops)
		hops += a.hops
		if a.err == ErrCNAMELoop || a.follow && hops >= s.maxCNAME {
			return nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: ErrCNAMELoop}
		}
		if a.follow {
			ttl = min(ttl, a.ttl)
			name = a.cname
			continue
		}
		now := s.now()
		e := &entry{err: a.err}
		if a.err != nil {
			d := min(secs(a.negTTL), s.cachecfg.negativeTTL())
			e.expires = now.Add(d)
			e.stale = e.expires.Add(s.cachecfg.staleTTL())
			return e, nil
		}
		ttl = min(ttl, a.ttl)
		if qtype == TypeSVCB || qtype == TypeHTTPS {
			e.svcbs = s.parseSVCBRecords(a.cname, a.rrs)
			if len(e.svcbs) == 0 {
				// Every record dropped: as NODATA, for the TTL of the
				// records.
				e.err = ErrNoData
				e.expires = now.Add(min(secs(ttl), s.cachecfg.negativeTTL()))
				e.stale = e.expires.Add(s.cachecfg.staleTTL())
				return e, nil
			}
		}
		for _, rr := range a.rrs {
			switch r := rr.(type) {
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(r.A.To4()); ok {
					e.addrs = netaddr.AppendUnique(e.addrs, ip)
				}
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(r.AAAA); ok {
					e.addrs = netaddr.AppendUnique(e.addrs, ip)
				}
			case *dns.SRV:
				e.srvs = append(e.srvs, SRV{Target: r.Target, Port: r.Port, Priority: r.Priority, Weight: r.Weight})
			}
		}
		d := min(max(secs(ttl), s.cachecfg.MinTTL), s.cachecfg.maxTTL())
		e.expires = now.Add(d)
		e.stale = e.expires.Add(s.cachecfg.staleTTL())
		return e, nil
	}
}

// secs converts a TTL to a duration; a TTL with the high bit set is 0
// (RFC 2181 §8).
func secs(ttl uint32) time.Duration {
	if ttl > 1<<31-1 {
		return 0
	}
	return time.Duration(ttl) * time.Second
}

// ask sends the query to each server in turn, Attempts times through the
// list, until one answers NOERROR or NXDOMAIN. It returns that response,
// or the reason for failing (ErrTimeout when every attempt timed out,
// else ErrRefused, or ctx's error) with every attempt's error.
func (s *Stub) ask(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, []error, error) {
	var errs []error
	for range s.attempts {
		for i, ns := range s.servers {
			if err := ctx.Err(); err != nil {
				return nil, errs, err
			}
			q := newQuery(fqdn, qtype, s.udpSize)
			s.stats.queries.Add(1)
			m, err := s.exchange(ctx, i, q, s.timeout)
			if err != nil {
				if ctx.Err() != nil {
					return nil, errs, ctx.Err()
				}
				cls := ErrRefused
				if errors.Is(err, ErrTimeout) {
					cls = ErrTimeout
				}
				if !errors.Is(err, cls) {
					err = fmt.Errorf("%w: %w", cls, err)
				}
				errs = append(errs, &ServerError{Server: ns.String(), Rcode: -1, Err: err})
				continue
			}
			switch m.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return m, errs, nil
			}
			if s.log != nil {
				s.log.Debug("dns: server failed", "server", ns, "name", fqdn, "rcode", dns.RcodeToString[m.Rcode])
			}
			errs = append(errs, &ServerError{Server: ns.String(), Rcode: m.Rcode, Err: ErrRefused})
		}
	}
	reason := ErrTimeout
	for _, e := range errs {
		if !errors.Is(e, ErrTimeout) {
			reason = ErrRefused
		}
	}
	return nil, errs, reason
}
