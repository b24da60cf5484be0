package netaddr

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func TestAddrPort(t *testing.T) {
	mapped := netip.MustParseAddr("::ffff:127.0.0.1")
	for _, tc := range []struct {
		name string
		in   net.Addr
		want netip.AddrPort
	}{
		{"tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, netip.MustParseAddrPort("127.0.0.1:80")},
		{"tcp mapped", net.TCPAddrFromAddrPort(netip.AddrPortFrom(mapped, 443)), netip.MustParseAddrPort("127.0.0.1:443")},
		{"tcp6 zone", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 22, Zone: "lo"}, netip.MustParseAddrPort("[fe80::1%lo]:22")},
		{"udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: 53}, netip.MustParseAddrPort("[::1]:53")},
		{"udp mapped", net.UDPAddrFromAddrPort(netip.AddrPortFrom(mapped, 5353)), netip.MustParseAddrPort("127.0.0.1:5353")},
		{"unix", &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, netip.AddrPort{}},
		{"nil", nil, netip.AddrPort{}},
		{"nil tcp", (*net.TCPAddr)(nil), netip.AddrPort{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AddrPort(tc.in); got != tc.want {
				t.Errorf("AddrPort(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestAppendUnique(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("2001:db8::1")
	c := netip.MustParseAddr("192.0.2.3")
	for _, tc := range []struct {
		name      string
		base, add []netip.Addr
		want      []netip.Addr
	}{
		{"into nil", nil, []netip.Addr{a, b}, []netip.Addr{a, b}},
		{"skips present", []netip.Addr{a}, []netip.Addr{b, a, c}, []netip.Addr{a, b, c}},
		{"skips repeated in add", nil, []netip.Addr{c, c, a, c}, []netip.Addr{c, a}},
		{"skips invalid", []netip.Addr{a}, []netip.Addr{{}, b, {}}, []netip.Addr{a, b}},
		{"nothing to add", []netip.Addr{a, b}, nil, []netip.Addr{a, b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := slices.Clone(tc.base)
			if got := AppendUnique(base, tc.add...); !slices.Equal(got, tc.want) {
				t.Errorf("AppendUnique(%v, %v) = %v, want %v", tc.base, tc.add, got, tc.want)
			}
		})
	}
}
