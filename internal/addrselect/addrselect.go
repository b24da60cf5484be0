// Package addrselect orders destination addresses by RFC 6724's
// destination address selection (§6): the default policy table (§2.1),
// and rules 1 (avoid unusable destinations), 2 (prefer matching scope),
// 5 (prefer matching label), 6 (prefer higher precedence), 8 (prefer
// smaller scope), 9 (longest matching prefix, applied to IPv6 only, as
// Go's net package does: on IPv4 it sorts by accident of numbering) and 10
// (otherwise keep the order: the sort is stable). Rules 3, 4 and 7 need
// what the system does not tell a user program (deprecated and home
// addresses, encapsulation) and are left out, as in Go's net package.
//
// Each destination is compared with the source address the system would
// use to reach it. Source finds it as Go's resolver does, with a UDP
// socket "connected" to the destination, which sends nothing.
//
// The functions are safe for concurrent use; nothing here keeps state.
package addrselect

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
)

// Scope is an address's scope (RFC 6724 §3.1, the values of RFC 4291's
// multicast scope field): smaller is narrower.
type Scope uint8

// The scopes of unicast addresses; a multicast address's scope is the
// value of its scope field.
const (
	ScopeInterfaceLocal Scope = 0x1
	ScopeLinkLocal      Scope = 0x2
	ScopeAdminLocal     Scope = 0x4
	ScopeSiteLocal      Scope = 0x5
	ScopeOrgLocal       Scope = 0x8
	ScopeGlobal         Scope = 0xe
)

// policy is one row of the policy table.
type policy struct {
	prefix     netip.Prefix
	precedence uint8
	label      uint8
}

// defaultPolicy is RFC 6724 §2.1's default policy table, longest prefix
// first so that the first match is the longest. IPv4 addresses are
// looked up as IPv4-mapped IPv6 addresses (::ffff:0:0/96).
var defaultPolicy = func() []policy {
	t := []policy{
		{netip.MustParsePrefix("::1/128"), 50, 0},
		{netip.MustParsePrefix("::/0"), 40, 1},
		{netip.MustParsePrefix("::ffff:0:0/96"), 35, 4},
		{netip.MustParsePrefix("2002::/16"), 30, 2},
		{netip.MustParsePrefix("2001::/32"), 5, 5},
		{netip.MustParsePrefix("fc00::/7"), 3, 13},
		{netip.MustParsePrefix("::/96"), 1, 3},
		{netip.MustParsePrefix("fec0::/10"), 1, 11},
		{netip.MustParsePrefix("3ffe::/16"), 1, 12},
	}
	slices.SortStableFunc(t, func(a, b policy) int { return cmp.Compare(b.prefix.Bits(), a.prefix.Bits()) })
	return t
}()

// lookup returns the policy table's row for a: the longest prefix that
// contains it.
func lookup(a netip.Addr) policy {
	a16 := netip.AddrFrom16(a.As16()) // an IPv4 address as ::ffff:a.b.c.d
	for _, p := range defaultPolicy {
		if p.prefix.Contains(a16) {
			return p
		}
	}
	return policy{} // not reached: ::/0 contains every address
}

// Precedence returns a's precedence in the default policy table.
func Precedence(a netip.Addr) uint8 { return lookup(a.Unmap().WithZone("")).precedence }

// Label returns a's label in the default policy table.
func Label(a netip.Addr) uint8 { return lookup(a.Unmap().WithZone("")).label }

// ScopeOf returns a's scope. IPv4 loopback (127/8) and link-local
// (169.254/16) addresses are link-local, every other IPv4 address is
// global (RFC 6724 §3.2); IPv6 loopback is link-local (RFC 4007 §4).
func ScopeOf(a netip.Addr) Scope {
	a = a.Unmap()
	switch {
	case a.IsLoopback(), a.IsLinkLocalUnicast():
		return ScopeLinkLocal
	case a.Is6() && a.IsMulticast():
		return Scope(a.As16()[1] & 0x0f)
	case a.Is6() && a.As16()[0] == 0xfe && a.As16()[1]&0xc0 == 0xc0:
		return ScopeSiteLocal // fec0::/10, deprecated by RFC 3879
	}
	return ScopeGlobal
}

// commonPrefixLen is CommonPrefixLen (RFC 6724 §2.2) of two IPv6
// addresses: the leading bits they share, up to the 64 bits of the
// prefix (the interface identifier is not compared).
func commonPrefixLen(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	n := 0
	for i := 0; i < 8; i++ {
		d := x[i] ^ y[i]
		if d == 0 {
			n += 8
			continue
		}
		for d&0x80 == 0 {
			n++
			d <<= 1
		}
		break
	}
	return n
}

// Compare compares destination da, reached from source sa, with
// destination db, reached from sb, by the rules of RFC 6724 §6 listed in
// the package comment. It returns a negative number when da is preferred,
// a positive one when db is, and 0 when the rules do not tell them apart
// (rule 10: keep their order). An invalid source means the destination
// is unusable (no route to it).
func Compare(da, sa, db, sb netip.Addr) int {
	const preferA, preferB = -1, 1
	da, sa, db, sb = da.Unmap(), sa.Unmap(), db.Unmap(), sb.Unmap()

	// Rule 1: avoid unusable destinations.
	switch {
	case !sa.IsValid() && !sb.IsValid():
		return 0
	case !sb.IsValid():
		return preferA
	case !sa.IsValid():
		return preferB
	}

	// Rule 2: prefer matching scope.
	scopeDA, scopeDB := ScopeOf(da), ScopeOf(db)
	matchA, matchB := scopeDA == ScopeOf(sa), scopeDB == ScopeOf(sb)
	if matchA != matchB {
		if matchA {
			return preferA
		}
		return preferB
	}

	// Rule 5: prefer matching label.
	polDA, polDB := lookup(da.WithZone("")), lookup(db.WithZone(""))
	matchA, matchB = polDA.label == Label(sa), polDB.label == Label(sb)
	if matchA != matchB {
		if matchA {
			return preferA
		}
		return preferB
	}

	// Rule 6: prefer higher precedence.
	if polDA.precedence != polDB.precedence {
		if polDA.precedence > polDB.precedence {
			return preferA
		}
		return preferB
	}

	// Rule 8: prefer smaller scope.
	if scopeDA != scopeDB {
		if scopeDA < scopeDB {
			return preferA
		}
		return preferB
	}

	// Rule 9: use the longest matching prefix, between IPv6 addresses
	// only (Go's net package: golang/go#13283, #18518).
	if da.Is6() && db.Is6() {
		ca, cb := 0, 0
		if sa.Is6() {
			ca = commonPrefixLen(sa, da)
		}
		if sb.Is6() {
			cb = commonPrefixLen(sb, db)
		}
		if ca != cb {
			if ca > cb {
				return preferA
			}
			return preferB
		}
	}

	// Rule 10: leave the order unchanged.
	return 0
}

// Sort orders s by Compare, stably. key returns an element's destination
// and source address (an invalid source: unusable), or ok false for an
// element that is not an IP destination (a Unix socket, a vchan): those
// keep their places, and the IP destinations are sorted in the places
// left. key is called once per element.
func Sort[E any](s []E, key func(E) (dst, src netip.Addr, ok bool)) {
	if len(s) < 2 {
		return
	}
	type item struct {
		e        E
		dst, src netip.Addr
	}
	var (
		slots []int
		items []item
	)
	for i, e := range s {
		if dst, src, ok := key(e); ok {
			slots = append(slots, i)
			items = append(items, item{e, dst, src})
		}
	}
	if len(items) < 2 {
		return
	}
	slices.SortStableFunc(items, func(a, b item) int { return Compare(a.dst, a.src, b.dst, b.src) })
	for i, slot := range slots {
		s[slot] = items[i].e
	}
}

// SourceFunc returns the source address for dst, or the invalid Addr
// when dst is unreachable. Source is one; tests give their own.
type SourceFunc func(dst netip.Addr) netip.Addr

// Source returns the source address the system would use to reach dst,
// or the invalid Addr when it has no route to dst: it "connects" a UDP
// socket to dst (port 53; a UDP connect only selects the route and the
// source, and sends nothing) and reads the socket's local address, as
// Go's net package does before sorting.
func Source(dst netip.Addr) netip.Addr {
	if !dst.IsValid() {
		return netip.Addr{}
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 53)))
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	ua, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return netip.Addr{}
	}
	return ua.AddrPort().Addr().Unmap()
}
