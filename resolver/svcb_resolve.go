package resolver

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// SVCBWait is how long a resolution waits for the HTTPS or SVCB answer
// after the first answer of the origin's A/AAAA lookup (or its end):
// RFC 9460 §3 lets a client proceed without it after a short wait. After
// it, the origin's addresses are used plainly and a late SVCB answer is
// not waited for (the DNS stub still caches it for the next resolution).
const SVCBWait = 50 * time.Millisecond

// maxAliasChain bounds the AliasMode records followed (RFC 9460 §2.4.2
// asks for a limit; 8 as for CNAME chains).
const maxAliasChain = 8

// svcbQuery returns the record type and name to ask for a service URI's
// SVCB records (RFC 9460 §2.3 and §9.1): the HTTPS record of the host
// for https on port 443, else _PORT._SCHEME.HOST, of type HTTPS for
// https and SVCB for the other schemes.
func svcbQuery(scheme, host string, port int) (uint16, string) {
	if scheme == "https" {
		if port == 443 {
			return dnsstub.TypeHTTPS, host
		}
		return dnsstub.TypeHTTPS, "_" + strconv.Itoa(port) + "._https." + host
	}
	return dnsstub.TypeSVCB, "_" + strconv.Itoa(port) + "._" + scheme + "." + host
}

// svcbResult is what the SVCB lookup of a URI gave once AliasMode
// records are followed: the ServiceMode records in SvcPriority order,
// or, for an alias chain ending at a name without records, that name.
type svcbResult struct {
	recs  []dnsstub.SVCB
	alias string // the end of an alias chain without ServiceMode records
	ttl   time.Duration
}

// followSVCB looks up (qtype, qname), following AliasMode records up to
// maxAliasChain, detecting loops (counted in Stats). No usable record
// (none, NXDOMAIN, a failure, an alias to ".", a loop) is an empty
// result.
func (r *URIResolver) followSVCB(ctx context.Context, qtype uint16, qname string) svcbResult {
	res := svcbResult{ttl: ttlForever}
	seen := map[string]bool{hostsKey(qname): true}
	name := qname
	for depth := 0; ; depth++ {
		recs, err := r.lookupSVCB(ctx, name, qtype)
		if err != nil {
			if depth > 0 && errors.Is(&lookupError{host: name, err: err}, ErrNotFound) {
				res.alias = name
			}
			return res
		}
		var alias *dnsstub.SVCB
		var service []dnsstub.SVCB
		for i := range recs {
			res.ttl = minTTL(res.ttl, recs[i].TTL)
			if recs[i].Priority == 0 {
				if alias == nil {
					alias = &recs[i]
				}
			} else {
				service = append(service, recs[i])
			}
		}
		if alias == nil {
			slices.SortStableFunc(service, func(a, b dnsstub.SVCB) int { return cmp.Compare(a.Priority, b.Priority) })
			res.recs = service
			return res
		}
		// AliasMode: ServiceMode records beside it are ignored (RFC 9460
		// §2.4.2); "." says the service is not available (§2.5.1).
		if alias.Target == "." {
			return res
		}
		next := alias.Target
		if seen[hostsKey(next)] || depth+1 >= maxAliasChain {
			r.stats.svcbAliasBroken.Add(1)
			if r.log != nil {
				r.log.Debug("resolver: SVCB alias chain loops or is too long", "name", qname, "at", next)
			}
			return svcbResult{ttl: res.ttl}
		}
		seen[hostsKey(next)] = true
		name = next
	}
}

// svcbGroup is one ServiceMode record of a resolution (or the end of an
// alias chain, svc nil): its endpoints' group.
type svcbGroup struct {
	target string // lower case, without the trailing dot
	port   uint16
	svc    *endpoint.SVCParams
	hint   *endpoint.SVCParams // svc with Hint set
	hints  []netip.Addr
	hinted bool // hint endpoints sent, not yet replaced
}

// svcbEvent is what the lookups of a resolution report to its loop.
type svcbEvent struct {
	name  string // the host looked up (hostsKey); "" for the SVCB lookup
	addrs []netip.Addr
	done  bool
	ttl   time.Duration
	err   error
	svcb  svcbResult
}

// resolveSVCB resolves a service host by its HTTPS or SVCB records
// (RFC 9460) when its service opts in (Service.SVCB) and the resolver
// can ask for them; ok is false when it does not. The origin's A/AAAA and
// the SVCB records are asked at once; see docs/uris.md for the order of
// events. Every endpoint goes to out (or to a collector of its own for
// Resolve) and the answer is what was sent, in group order.
func (r *URIResolver) resolveSVCB(ctx context.Context, uri string, p *parsedURI, port int, tls, listen bool, out *collector) (a answer, ok bool, err error) {
	svc, isService := r.services[p.scheme]
	if !isService || !svc.SVCB || p.kind != schemeService || listen || r.lookupSVCB == nil ||
		p.addr.IsValid() || p.host == "" || port <= 0 || r.isStatic(p.host) {
		return answer{}, false, nil
	}
	if err := ctx.Err(); err != nil {
		return answer{}, true, &URIError{URI: uri, Err: &lookupError{host: p.host, err: err}}
	}
	c := out
	if c == nil {
		c = &collector{}
	}
	qtype, qname := svcbQuery(p.scheme, strings.TrimSuffix(p.host, "."), port)
	origin := hostsKey(p.host)
	serverName := p.serverName(strings.TrimSuffix(p.host, "."))

	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	events := make(chan svcbEvent)
	report := func(ev svcbEvent) {
		select {
		case events <- ev:
		case <-lctx.Done():
		}
	}
	pending := 0
	lookup := func(host string) {
		pending++
		wg.Go(func() {
			key := hostsKey(host)
			_, ttl, err := r.lookupHostStream(lctx, host, func(addrs []netip.Addr) {
				report(svcbEvent{name: key, addrs: slices.Clone(addrs)})
			})
			report(svcbEvent{name: key, done: true, ttl: ttl, err: err})
		})
	}
	lookup(p.host)
	wg.Go(func() { report(svcbEvent{svcb: r.followSVCB(lctx, qtype, qname)}) })

	var (
		svcbPending = true
		abandoned   bool
		waitC       chan struct{}
		stopWait    func() bool
		addrs       = map[string][]netip.Addr{} // each host's addresses so far
		groups      []*svcbGroup
		ttl         = ttlForever
		originErr   error
	)
	defer func() {
		if stopWait != nil {
			stopWait()
		}
	}()
	startWait := func() {
		if waitC != nil {
			return
		}
		waitC = make(chan struct{}, 1)
		ch := waitC
		t := r.clock.AfterFunc(SVCBWait, func() {
			select {
			case ch <- struct{}{}:
			default:
			}
		})
		stopWait = t.Stop
	}
	endpoints := func(g *svcbGroup, as []netip.Addr, params *endpoint.SVCParams) []endpoint.Endpoint {
		eps := make([]endpoint.Endpoint, 0, len(as))
		for _, a := range as {
			var ep endpoint.Endpoint = endpoint.TCP{Host: g.target, Addr: netip.AddrPortFrom(a, g.port)}
			if tls {
				ep = endpoint.TLS{ServerName: serverName, Inner: ep, SVC: params}
			}
			eps = append(eps, ep)
		}
		return eps
	}
	deliver := func(host string, as []netip.Addr) {
		for i, g := range groups {
			if g.target != host {
				continue
			}
			c.emit(Batch{Endpoints: endpoints(g, as, g.svc), Group: i, Replaces: g.hinted})
			g.hinted = false
		}
	}
	// plain makes the origin's addresses group 0, without SVCB params.
	plain := func() {
		groups = []*svcbGroup{{target: origin, port: uint16(port)}}
		if as := addrs[origin]; len(as) > 0 {
			deliver(origin, as)
		}
	}
	useSVCB := func(res svcbResult) {
		started := map[string]bool{origin: true}
		add := func(g *svcbGroup) {
			groups = append(groups, g)
			if !started[g.target] {
				started[g.target] = true
				lookup(g.target + ".")
			}
		}
		for _, rec := range res.recs {
			target := rec.Target
			if target == "." {
				target = rec.Owner
			}
			g := &svcbGroup{target: hostsKey(target), port: uint16(port)}
			if rec.Port != 0 {
				g.port = rec.Port
			}
			if tls {
				params := &endpoint.SVCParams{Priority: rec.Priority, Target: g.target, ALPN: slices.Clone(rec.ALPN), NoDefaultALPN: rec.NoDefaultALPN, ECH: rec.ECH}
				if qtype == dnsstub.TypeHTTPS && !rec.NoDefaultALPN && !slices.Contains(params.ALPN, "http/1.1") {
					params.ALPN = append(params.ALPN, "http/1.1")
				}
				g.svc = params
				hint := *params
				hint.Hint = true
				g.hint = &hint
			}
			g.hints = append(slices.Clone(rec.IPv4Hint), rec.IPv6Hint...)
			add(g)
		}
		if len(res.recs) == 0 && res.alias != "" {
			add(&svcbGroup{target: hostsKey(res.alias), port: uint16(port)})
		}
		if !slices.ContainsFunc(groups, func(g *svcbGroup) bool { return g.target == origin }) {
			// SVCB-optional (RFC 9460 §3): the origin itself, last.
			groups = append(groups, &svcbGroup{target: origin, port: uint16(port)})
		}
		for i, g := range groups {
			if as := addrs[g.target]; len(as) > 0 {
				c.emit(Batch{Endpoints: endpoints(g, as, g.svc), Group: i})
			} else if len(g.hints) > 0 {
				c.emit(Batch{Endpoints: endpoints(g, g.hints, g.hint), Group: i})
				g.hinted = true
			}
		}
	}

	for pending > 0 || svcbPending {
		select {
		case <-ctx.Done():
			return answer{}, true, &URIError{URI: uri, Err: &lookupError{host: p.host, err: ctx.Err()}}
		case <-waitC:
			waitC = nil
			if svcbPending {
				svcbPending, abandoned = false, true
				plain()
			}
		case ev := <-events:
			switch {
			case ev.name == "":
				if !svcbPending {
					continue // abandoned: too late
				}
				svcbPending = false
				if stopWait != nil {
					stopWait()
				}
				if len(ev.svcb.recs) == 0 && ev.svcb.alias == "" {
					plain()
					continue
				}
				ttl = minTTL(ttl, ev.svcb.ttl)
				useSVCB(ev.svcb)
			case ev.done:
				pending--
				if ev.err == nil {
					ttl = minTTL(ttl, ev.ttl)
				} else if ev.name == origin {
					originErr = ev.err
				}
				if ev.name == origin && svcbPending {
					startWait()
				}
			default:
				addrs[ev.name] = append(addrs[ev.name], ev.addrs...)
				if svcbPending {
					if ev.name == origin {
						startWait()
					}
					continue
				}
				deliver(ev.name, ev.addrs)
			}
		}
	}
	if !c.sentAny() {
		if originErr != nil {
			return answer{}, true, &URIError{URI: uri, Err: originErr}
		}
		return answer{}, true, &URIError{URI: uri, Err: &lookupError{host: p.host, err: ErrNotFound}}
	}
	if ttl == ttlForever {
		ttl = ttlUnknown
	}
	a = c.answer(ttl)
	a.volatile = abandoned // the HTTPS answer may come next time
	return a, true, nil
}
