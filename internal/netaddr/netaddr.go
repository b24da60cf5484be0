// Package netaddr holds the small conversions between net's and netip's
// address types that several packages of conduit need (the flows of
// tcpflow and tlsflow, the resolver and its DNS stub). It has no state;
// its functions are safe for concurrent use.
package netaddr

import (
	"net"
	"net/netip"
	"slices"
)

// AddrPort returns the address and port of a *net.TCPAddr or *net.UDPAddr,
// an IPv4-mapped IPv6 address unmapped, and the zero AddrPort for any
// other net.Addr (nil, a Unix or vchan address).
func AddrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// AppendUnique appends to addrs the addresses of add that are valid and
// not already in it (nor earlier in add), keeping their order, and
// returns the extended slice.
func AppendUnique(addrs []netip.Addr, add ...netip.Addr) []netip.Addr {
	for _, a := range add {
		if a.IsValid() && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs
}
