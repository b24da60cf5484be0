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
	"sync"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/endpoint"
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
//
// With out (ResolveStream), each target's addresses are delivered as they
// come, with Group the rank of their record.
func (r *URIResolver) resolveSRV(ctx context.Context, uri string, p *parsedURI, base string, listen bool, out *collector) (answer, error) {
	eps, groups, ttl, err := r.resolveSRVGroups(ctx, uri, p, base, listen, out)
	return answer{eps: eps, groups: groups, ttl: ttl}, err
}

// resolveSRVGroups is resolveSRV: the endpoints, each one's group (nil:
// all 0), and the TTL.
func (r *URIResolver) resolveSRVGroups(ctx context.Context, uri string, p *parsedURI, base string, listen bool, out *collector) ([]endpoint.Endpoint, []int, time.Duration, error) {
	switch {
	case listen:
		return nil, nil, 0, malformed(uri, "cannot listen on an SRV URI")
	case p.host == "":
		return nil, nil, 0, malformed(uri, "empty host")
	case p.addr.IsValid():
		return nil, nil, 0, malformed(uri, "an SRV URI names a domain, not an IP address")
	case p.port >= 0:
		return nil, nil, 0, malformed(uri, "port not allowed in an SRV URI (the SRV records give the ports)")
	}
	name := p.host
	qname := name
	var svc Service
	if base == "" {
		labels := strings.SplitN(name, ".", 3)
		if len(labels) < 3 || !strings.HasPrefix(labels[0], "_") || !strings.HasPrefix(labels[1], "_") {
			return nil, nil, 0, malformed(uri, "want srv://_SERVICE._PROTO.NAME")
		}
	} else {
		svc = r.services[base]
		qname = "_" + base + "._tcp." + name
	}
	serverName := strings.TrimSuffix(name, ".")
	wrap := func(ep endpoint.Endpoint) endpoint.Endpoint {
		if svc.TLS {
			return endpoint.TLS{ServerName: serverName, Inner: ep}
		}
		return ep
	}

	if err := ctx.Err(); err != nil {
		return nil, nil, 0, &URIError{URI: uri, Err: &lookupError{host: qname, err: err}}
	}
	recs, err := r.lookupSRV(ctx, qname)
	if err != nil {
		lerr := &lookupError{host: qname, err: err}
		if base == "" || !errors.Is(lerr, ErrNotFound) {
			return nil, nil, 0, &URIError{URI: uri, Err: lerr}
		}
		// No SRV records: NAME's addresses with the service's port.
		endpoints := func(addrs []netip.Addr) []endpoint.Endpoint {
			eps := make([]endpoint.Endpoint, 0, len(addrs))
			for _, a := range addrs {
				eps = append(eps, wrap(endpoint.TCP{Host: name, Addr: netip.AddrPortFrom(a, svc.Port)}))
			}
			return eps
		}
		var found func([]netip.Addr)
		if out != nil {
			found = func(addrs []netip.Addr) { out.emit(Batch{Endpoints: endpoints(addrs)}) }
		}
		addrs, ttl, err := r.lookupHostStream(ctx, name, found)
		if err != nil {
			return nil, nil, 0, &URIError{URI: uri, Err: err}
		}
		return endpoints(addrs), nil, ttl, nil
	}
	if len(recs) == 1 && strings.Trim(recs[0].Target, ".") == "" {
		return nil, nil, 0, &URIError{URI: uri, Err: fmt.Errorf("%s: %w", qname, ErrServiceUnavailable)}
	}
	eps, groups, ttl, err := r.resolveTargets(ctx, qname, recs, wrap, out)
	if err != nil {
		return nil, nil, 0, &URIError{URI: uri, Err: err}
	}
	return eps, groups, ttl, nil
}

// Defaults of the SRV target fan-out.
const (
	defaultSRVConcurrency   = 8
	defaultMaxSRVTargets    = 32
	defaultSRVTargetTimeout = 2 * time.Second
)

// targetResult is what the lookup of one SRV target gave.
type targetResult struct {
	addrs []netip.Addr
	ttl   time.Duration
	err   error
}

// resolveTargets turns the records of an SRV answer for qname into
// endpoints in RFC 2782 order. The usable records (a target and a
// non-zero port) are ordered, the first r.maxTargets kept and the others
// dropped (counted in Stats), and the distinct targets of those kept
// looked up, r.concurrency at a time, each within r.targetTimeout. A
// target whose lookup fails is skipped; the answer fails only when no
// target resolved, with an error keeping every target's. Each endpoint's
// group is the rank of its record among those kept.
//
// With out (ResolveStream), each target's addresses are delivered as they
// come, a batch for each record naming the target, Group its rank.
func (r *URIResolver) resolveTargets(ctx context.Context, qname string, recs []dnsstub.SRV, wrap func(endpoint.Endpoint) endpoint.Endpoint, out *collector) ([]endpoint.Endpoint, []int, time.Duration, error) {
	ttl := ttlForever
	usable := make([]dnsstub.SRV, 0, len(recs))
	for _, rec := range recs {
		ttl = minTTL(ttl, r.srvTTL(rec))
		rec.Target = strings.TrimSuffix(asciiLower(rec.Target), ".")
		if rec.Target != "" && rec.Port != 0 {
			usable = append(usable, rec)
		}
	}
	if len(usable) == 0 {
		return nil, nil, 0, &lookupError{host: qname, err: ErrNotFound}
	}
	kept := r.orderSRV(usable, r.maxTargets)
	dropped := len(usable) - len(kept)
	if dropped > 0 {
		r.stats.srvCapped.Add(1)
		r.stats.srvDropped.Add(uint64(dropped))
		if r.log != nil {
			r.log.Debug("resolver: SRV answer capped", "name", qname, "records", len(usable), "kept", len(kept), "dropped", dropped)
		}
	}

	// The distinct targets, in the order of their first record.
	index := make(map[string]int, len(kept))
	names := make([]string, 0, len(kept))
	for _, rec := range kept {
		if _, ok := index[rec.Target]; !ok {
			index[rec.Target] = len(names)
			names = append(names, rec.Target)
		}
	}
	var found func(i int, addrs []netip.Addr)
	if out != nil {
		found = func(i int, addrs []netip.Addr) {
			for k, rec := range kept {
				if rec.Target != names[i] {
					continue
				}
				eps := make([]endpoint.Endpoint, len(addrs))
				for j, a := range addrs {
					eps[j] = wrap(endpoint.TCP{Host: rec.Target, Addr: netip.AddrPortFrom(a, rec.Port)})
				}
				out.emit(Batch{Endpoints: eps, Group: k})
			}
		}
	}
	results := r.lookupTargets(ctx, names, found)

	var (
		eps    []endpoint.Endpoint
		groups []int
	)
	for k, rec := range kept {
		res := results[index[rec.Target]]
		if res.err != nil {
			continue
		}
		ttl = minTTL(ttl, res.ttl)
		for _, a := range res.addrs {
			ep := wrap(endpoint.TCP{Host: rec.Target, Addr: netip.AddrPortFrom(a, rec.Port)})
			if !slices.Contains(eps, ep) {
				eps = append(eps, ep)
				groups = append(groups, k)
			}
		}
	}
	if len(eps) == 0 {
		errs := make([]error, len(results))
		for i, res := range results {
			errs[i] = res.err
		}
		return nil, nil, 0, &targetsError{name: qname, errs: errs, dropped: dropped}
	}
	if ttl == ttlForever {
		ttl = ttlUnknown // SRV records come from a lookup: never static
	}
	return eps, groups, ttl, nil
}

// srvTTL returns the TTL of an SRV record: a zero TTL is "do not cache"
// from the DNS stub, but no TTL at all from a LookupSRV hook or the
// system resolver.
func (r *URIResolver) srvTTL(rec dnsstub.SRV) time.Duration {
	if rec.TTL > 0 || r.srvTTLKnown && rec.TTL == 0 {
		return rec.TTL
	}
	return ttlUnknown
}

// lookupTargets looks up the addresses of each name, r.concurrency at a
// time: the calling goroutine and up to r.concurrency-1 others, which
// end before it returns. The i-th result is names[i]'s. When found is not
// nil, each target's addresses are also delivered as they come
// (lookupHostStream), found(i, addrs) for names[i], from any of those
// goroutines.
func (r *URIResolver) lookupTargets(ctx context.Context, names []string, found func(i int, addrs []netip.Addr)) []targetResult {
	results := make([]targetResult, len(names))
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= len(names) {
				return
			}
			var f func([]netip.Addr)
			if found != nil {
				f = func(addrs []netip.Addr) { found(i, addrs) }
			}
			results[i] = r.lookupTarget(ctx, names[i], f)
		}
	}
	for range min(r.concurrency, len(names)) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	return results
}

// lookupTarget looks up one SRV target within r.targetTimeout (and ctx).
// A name of the static tables needs no deadline. found, when not nil,
// gets the addresses as they come (lookupHostStream).
func (r *URIResolver) lookupTarget(ctx context.Context, host string, found func([]netip.Addr)) targetResult {
	if r.isStatic(host) {
		addrs, ttl, err := r.lookupHostStream(ctx, host, found)
		return targetResult{addrs, ttl, err}
	}
	tctx, stop := r.targetContext(ctx)
	addrs, ttl, err := r.lookupHostStream(tctx, host, found)
	if expired := stop(); err != nil && expired && ctx.Err() == nil {
		r.stats.srvTimeouts.Add(1)
		err = &lookupError{host: host, err: &targetTimeoutError{r.targetTimeout}}
	}
	return targetResult{addrs, ttl, err}
}

// errTargetDeadline is the cause of a target's context ending at its
// deadline.
var errTargetDeadline = errors.New("resolver: SRV target deadline")

// targetContext returns ctx ending at the per-target deadline, timed by
// Config.Clock so that tests can advance it, and stop, which releases it
// (the timer's function has returned, or will never run, when stop
// returns) and reports whether the deadline was reached.
func (r *URIResolver) targetContext(ctx context.Context) (context.Context, func() (expired bool)) {
	tctx, cancel := context.WithCancelCause(ctx)
	fired := make(chan struct{})
	t := r.clock.AfterFunc(r.targetTimeout, func() {
		cancel(errTargetDeadline)
		close(fired)
	})
	return tctx, func() bool {
		if !t.Stop() {
			<-fired
		}
		cancel(context.Canceled)
		return context.Cause(tctx) == errTargetDeadline
	}
}

// A targetTimeoutError is the failure of an SRV target that did not
// resolve within Config.SRVTargetTimeout. It matches
// context.DeadlineExceeded, and is a timeout (net.Error's Timeout).
type targetTimeoutError struct{ d time.Duration }

func (e *targetTimeoutError) Error() string {
	return "no answer within " + e.d.String() + " (SRVTargetTimeout)"
}
func (e *targetTimeoutError) Timeout() bool        { return true }
func (e *targetTimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// A targetsError is the failure of every SRV target looked up for an
// answer: it keeps each target's error (Unwrap), and says how many
// records were dropped beyond Config.MaxSRVTargets. Its message stays on
// one line, naming the first few causes.
type targetsError struct {
	name    string
	errs    []error
	dropped int
}

// maxCausesShown is how many of a targetsError's causes its message shows.
const maxCausesShown = 3

func (e *targetsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: no SRV target resolved (%d tried", e.name, len(e.errs))
	if e.dropped > 0 {
		fmt.Fprintf(&b, ", %d more beyond MaxSRVTargets not tried", e.dropped)
	}
	b.WriteString("): ")
	for i, err := range e.errs[:min(len(e.errs), maxCausesShown)] {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(strings.TrimPrefix(err.Error(), "dns: ")) // one prefix, the URIError's
	}
	if n := len(e.errs) - maxCausesShown; n > 0 {
		fmt.Fprintf(&b, "; and %d more", n)
	}
	return b.String()
}

func (e *targetsError) Unwrap() []error { return e.errs }

// orderSRV returns the first limit records in RFC 2782 order: by
// priority, and within a priority by weighted random selection (zero
// weights first in the running sum, so they are picked rarely). Picking
// stops at limit, so that a long answer costs len(recs)*limit, not its
// square.
func (r *URIResolver) orderSRV(recs []dnsstub.SRV, limit int) []dnsstub.SRV {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b dnsstub.SRV) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		// Weight 0 first within a priority (RFC 2782).
		return cmp.Compare(min(a.Weight, 1), min(b.Weight, 1))
	})
	out := make([]dnsstub.SRV, 0, min(len(sorted), limit))
	for i := 0; i < len(sorted) && len(out) < limit; {
		j := i
		for j < len(sorted) && sorted[j].Priority == sorted[i].Priority {
			j++
		}
		group := sorted[i:j]
		total := 0
		for _, g := range group {
			total += int(g.Weight)
		}
		for len(group) > 0 && len(out) < limit {
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
			total -= int(group[pick].Weight)
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
