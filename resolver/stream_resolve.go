package resolver

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

var _ Streamer = (*URIResolver)(nil)

// ResolveStream resolves uri as Resolve does, delivering the endpoints as
// the lookups answer (see Streamer): for a host name looked up by the DNS
// stub, the AAAA and A answers each in its own Batch as it arrives; for
// an SRV name, each target's answers with Group the rank of its record
// in RFC 2782 order; for an HTTPS or SVCB name (see docs/uris.md), the
// hints of each ServiceMode record at once, replaced by its target's
// answers, Group the record's rank in SvcPriority order. An answer known
// at once (an IP literal, the hosts tables, localhost, a Unix path, a
// vchan, a rewrite, Config.LookupHost's answer, or one cached) comes in
// one batch per group. Endpoints already sent are not sent again.
//
// ResolveStream fills and uses Resolve's cache: a later Resolve of the
// same URI returns what was streamed, in group order.
func (r *URIResolver) ResolveStream(ctx context.Context, uri string, send func(Batch)) error {
	if r.closed.Load() {
		return &URIError{URI: uri, Err: errClosed}
	}
	out := &collector{send: send}
	defer out.close()
	if e, ok := r.cache.entry(uri, false, r.now); ok {
		out.emitAnswer(answer{eps: e.eps, groups: e.groups})
		return nil
	}
	a, err := r.resolveURI(ctx, uri, false, out)
	if err := ctx.Err(); err != nil {
		return &URIError{URI: uri, Err: err}
	}
	if err != nil {
		if out.sentAny() {
			return nil
		}
		return err
	}
	if !out.used() {
		out.emitAnswer(a)
	}
	r.remember(uri, false, a)
	return nil
}

// A collector receives the batches of one streamed resolution and hands
// them to the caller's send, one at a time, never after close. It drops
// endpoints already sent (in any group) and keeps what was sent, by
// group, with hints replaced.
type collector struct {
	mu     sync.Mutex
	send   func(Batch) // nil: only collect
	closed bool
	groups map[int][]endpoint.Endpoint
	any    bool // an endpoint was sent
	calls  bool // a batch was emitted (even an empty Replaces)
}

// emit sends b, less the endpoints sent before (a Replaces batch first
// forgets the group's).
func (c *collector) emit(b Batch) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.groups == nil {
		c.groups = make(map[int][]endpoint.Endpoint)
	}
	if b.Replaces {
		delete(c.groups, b.Group)
	}
	fresh := make([]endpoint.Endpoint, 0, len(b.Endpoints))
	for _, ep := range b.Endpoints {
		if c.has(ep) || slices.Contains(fresh, ep) {
			continue
		}
		fresh = append(fresh, ep)
	}
	if len(fresh) == 0 && !b.Replaces {
		return
	}
	b.Endpoints = fresh
	c.groups[b.Group] = append(c.groups[b.Group], fresh...)
	c.any = c.any || len(fresh) > 0
	c.calls = true
	if c.send != nil {
		c.send(b)
	}
}

// has reports whether ep was sent. c.mu is held.
func (c *collector) has(ep endpoint.Endpoint) bool {
	for _, eps := range c.groups {
		if slices.Contains(eps, ep) {
			return true
		}
	}
	return false
}

// emitAnswer sends an answer known at once: one batch per group.
func (c *collector) emitAnswer(a answer) {
	if a.groups == nil {
		c.emit(Batch{Endpoints: a.eps})
		return
	}
	for i := 0; i < len(a.eps); {
		j := i
		for j < len(a.eps) && a.groups[j] == a.groups[i] {
			j++
		}
		c.emit(Batch{Endpoints: a.eps[i:j], Group: a.groups[i]})
		i = j
	}
}

// used reports whether anything was emitted.
func (c *collector) used() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// sentAny reports whether an endpoint was sent.
func (c *collector) sentAny() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.any
}

// answer returns what was sent as one answer in group order, IPv4
// addresses before IPv6 ones within a group (the order of Resolve's
// answers from the DNS stub, A then AAAA).
func (c *collector) answer(ttl time.Duration) answer {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]int, 0, len(c.groups))
	for g := range c.groups {
		keys = append(keys, g)
	}
	slices.Sort(keys)
	var a answer
	a.ttl = ttl
	allZero := true
	for _, g := range keys {
		eps := slices.Clone(c.groups[g])
		slices.SortStableFunc(eps, func(x, y endpoint.Endpoint) int { return familyRank(x) - familyRank(y) })
		for range eps {
			a.groups = append(a.groups, g)
		}
		a.eps = append(a.eps, eps...)
		allZero = allZero && g == 0
	}
	if allZero {
		a.groups = nil
	}
	return a
}

// familyRank is 0 for an endpoint over IPv4, 1 otherwise.
func familyRank(ep endpoint.Endpoint) int {
	for ep != nil {
		if t, ok := ep.(endpoint.TCP); ok {
			if t.Addr.Addr().Is4() {
				return 0
			}
			return 1
		}
		u, ok := ep.(interface{ Unwrap() endpoint.Endpoint })
		if !ok {
			break
		}
		ep = u.Unwrap()
	}
	return 1
}

// close stops the deliveries: send is not called after close returns.
func (c *collector) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// hostSink returns the function that delivers a host's addresses as
// endpoints of group (nil when c is nil: nothing streams).
func (c *collector) hostSink(p *parsedURI, port uint16, tls bool, group int) func([]netip.Addr) {
	if c == nil {
		return nil
	}
	return func(addrs []netip.Addr) {
		c.emit(Batch{Endpoints: p.hostEndpoints(addrs, port, tls), Group: group})
	}
}

// lookupHostStream is lookupHost delivering the addresses to found as
// they come, when found is not nil: with the DNS stub, each family's
// answer on its own (new addresses only, IPv4-mapped ones unmapped);
// else the whole answer in one call. The addresses returned are
// lookupHost's, A before AAAA.
func (r *URIResolver) lookupHostStream(ctx context.Context, host string, found func([]netip.Addr)) ([]netip.Addr, time.Duration, error) {
	if found == nil || r.lookupFamilies == nil || r.isStatic(host) {
		addrs, ttl, err := r.lookupHost(ctx, host)
		if err == nil && found != nil {
			found(addrs)
		}
		return addrs, ttl, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, &lookupError{host: host, err: err}
	}
	var v4, v6 []netip.Addr
	ttl, err := r.lookupFamilies(ctx, host, func(a dnsstub.FamilyAnswer) {
		var fresh []netip.Addr
		for _, x := range a.Addrs {
			x = x.Unmap()
			if slices.Contains(v4, x) || slices.Contains(v6, x) || slices.Contains(fresh, x) {
				continue
			}
			fresh = append(fresh, x)
		}
		for _, x := range fresh {
			if x.Is4() {
				v4 = append(v4, x)
			} else {
				v6 = append(v6, x)
			}
		}
		if len(fresh) > 0 {
			found(fresh)
		}
	})
	if err != nil {
		return nil, 0, &lookupError{host: host, err: err}
	}
	addrs := append(v4, v6...)
	if len(addrs) == 0 {
		return nil, 0, &lookupError{host: host, err: ErrNotFound}
	}
	return addrs, ttl, nil
}
