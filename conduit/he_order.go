package conduit

import (
	"net/netip"
	"slices"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/addrselect"
)

// heGroup is one group of a race (resolver.Batch.Group): an SRV target,
// an HTTPS record, or the only group of a plain host name.
type heGroup struct {
	id int
	// pending are the endpoints not started yet, in the order they
	// arrived; pick sorts them.
	pending []endpoint.Endpoint
	// replaced is set by the group's first Replaces batch: the
	// endpoints that came before it were hints.
	replaced bool
	// started counts the attempts started from the group; lastFamily
	// is the family of the latest.
	started    int
	lastFamily string
}

// heOrder decides which endpoint a race tries next (RFC 8305 §4): groups
// in increasing order; within a group, the endpoints sorted by RFC 6724
// and the address families alternating (one of each: a "first address
// family count" of 1), starting with the family that won the host's last
// dial. It is used by one goroutine.
type heOrder struct {
	groups []*heGroup // by increasing id
	// source returns the source address towards a destination (nil:
	// no RFC 6724 sort); sources caches its answers for the race.
	source  addrselect.SourceFunc
	sources map[netip.Addr]netip.Addr
	// remembered returns the family that won the host's last dial, or
	// "" (nil: no memory).
	remembered func(host string) string
}

// group returns the group id, created in its place if new.
func (o *heOrder) group(id int) *heGroup {
	i, found := slices.BinarySearchFunc(o.groups, id, func(g *heGroup, id int) int { return g.id - id })
	if found {
		return o.groups[i]
	}
	g := &heGroup{id: id}
	o.groups = slices.Insert(o.groups, i, g)
	return g
}

// pending reports whether an endpoint waits for its attempt.
func (o *heOrder) pending() bool {
	for _, g := range o.groups {
		if len(g.pending) > 0 {
			return true
		}
	}
	return false
}

// next removes and returns the endpoint to try next; pending must have
// reported true.
func (o *heOrder) next() endpoint.Endpoint {
	var g *heGroup
	for _, g = range o.groups {
		if len(g.pending) > 0 {
			break
		}
	}
	if o.source != nil {
		addrselect.Sort(g.pending, o.key)
	}
	family := ""
	if g.started == 0 {
		// The family that won the host's last dial, if there is an
		// endpoint of it; else the family of the first endpoint.
		if o.remembered != nil {
			f := o.remembered(hostOf(g.pending[0]))
			if f != "" && slices.ContainsFunc(g.pending, func(ep endpoint.Endpoint) bool { return endpoint.Family(ep) == f }) {
				family = f
			}
		}
	} else {
		// The other family than the last attempt's (§4), the first
		// one met in the sorted order when there are several.
		for _, ep := range g.pending {
			if f := endpoint.Family(ep); f != g.lastFamily {
				family = f
				break
			}
		}
	}
	i := 0
	if family != "" {
		i = slices.IndexFunc(g.pending, func(ep endpoint.Endpoint) bool { return endpoint.Family(ep) == family })
	}
	ep := g.pending[i]
	g.pending = slices.Delete(g.pending, i, i+1)
	g.started++
	g.lastFamily = endpoint.Family(ep)
	return ep
}

// key is the RFC 6724 sort key of an endpoint: the address its innermost
// TCP endpoint connects to and the source towards it. Other endpoints
// are not IP destinations and keep their places.
func (o *heOrder) key(ep endpoint.Endpoint) (dst, src netip.Addr, ok bool) {
	t, ok := endpoint.Innermost(ep).(endpoint.TCP)
	if !ok || !t.Addr.Addr().IsValid() {
		return netip.Addr{}, netip.Addr{}, false
	}
	dst = t.Addr.Addr()
	src, known := o.sources[dst]
	if !known {
		src = o.source(dst)
		if o.sources == nil {
			o.sources = make(map[netip.Addr]netip.Addr)
		}
		o.sources[dst] = src
	}
	return dst, src, true
}

// interleaveFamilies reorders endpoints so that address families
// alternate (RFC 8305 §4), keeping the order within each family and
// starting with the family of the first endpoint: the order heOrder
// gives a list without sorting it or remembering.
func interleaveFamilies(eps []endpoint.Endpoint) []endpoint.Endpoint {
	if len(eps) < 2 {
		return eps
	}
	o := &heOrder{}
	g := o.group(0)
	g.pending = slices.Clone(eps)
	out := make([]endpoint.Endpoint, 0, len(eps))
	for o.pending() {
		out = append(out, o.next())
	}
	return out
}
