package addrselect

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

var ip = netip.MustParseAddr

// dest is a destination with the source the test says the system picks.
type dest struct{ dst, src netip.Addr }

func key(d dest) (netip.Addr, netip.Addr, bool) { return d.dst, d.src, true }

// TestRFC6724Examples are the destination address selection examples of
// RFC 6724 §10.2 that the implemented rules decide (those of rules 3 and
// 4, deprecated and home addresses, are left out with the rules), each
// sorted from both starting orders, plus cases of the rules the examples
// do not show.
func TestRFC6724Examples(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []dest // the preferred first
	}{
		{"prefer matching scope: IPv6 global from a global source", []dest{
			{ip("2001:db8:1::1"), ip("2001:db8:1::2")},
			{ip("198.51.100.121"), ip("169.254.13.78")},
		}},
		{"prefer matching scope: IPv4 global when IPv6 has only a link-local source", []dest{
			{ip("198.51.100.121"), ip("198.51.100.117")},
			{ip("2001:db8:1::1"), ip("fe80::1")},
		}},
		{"prefer higher precedence: IPv6 over IPv4", []dest{
			{ip("2001:db8:1::1"), ip("2001:db8:1::2")},
			{ip("10.1.2.3"), ip("10.1.2.4")},
		}},
		{"prefer smaller scope", []dest{
			{ip("fe80::1"), ip("fe80::2")},
			{ip("2001:db8:1::1"), ip("2001:db8:1::2")},
		}},
		{"longest matching prefix", []dest{
			{ip("2001:db8:1::1"), ip("2001:db8:1::2")},
			{ip("2001:db8:3ffe::1"), ip("2001:db8:3f44::2")},
		}},
		{"prefer matching label: 6to4 from a 6to4 source", []dest{
			{ip("2002:c633:6401::1"), ip("2002:c633:6401::2")},
			{ip("2001:db8:1::1"), ip("2002:c633:6401::2")},
		}},
		{"prefer higher precedence: native IPv6 over 6to4", []dest{
			{ip("2001:db8:1::1"), ip("2001:db8:1::2")},
			{ip("2002:c633:6401::1"), ip("2002:c633:6401::2")},
		}},
		// Beyond the RFC's examples:
		{"avoid unusable destinations (rule 1)", []dest{
			{ip("192.0.2.1"), ip("192.0.2.100")},
			{ip("2001:db8::1"), netip.Addr{}},
		}},
		{"loopback: ::1 before 127.0.0.1 (precedence 50 over 35)", []dest{
			{ip("::1"), ip("::1")},
			{ip("127.0.0.1"), ip("127.0.0.1")},
		}},
		{"IPv4-mapped IPv6 counts as IPv4", []dest{
			{ip("2001:db8::1"), ip("2001:db8::2")},
			{ip("::ffff:192.0.2.1"), ip("192.0.2.100")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, start := range [][]dest{tc.want, reversed(tc.want)} {
				got := slices.Clone(start)
				Sort(got, key)
				assert.Equal(t, tc.want, got, "sorted from %v", start)
			}
		})
	}
}

func reversed[E any](s []E) []E {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// TestRule9OnlyForIPv6 is golang/go#13283: a 10/8 source does not make
// 23/8 destinations better than the others; IPv4 destinations that the
// other rules do not tell apart keep their order (rule 10).
func TestRule9OnlyForIPv6(t *testing.T) {
	src := ip("10.2.3.4")
	in := []dest{
		{ip("54.83.193.112"), src}, {ip("184.72.238.214"), src}, {ip("23.23.172.185"), src},
		{ip("75.101.148.21"), src}, {ip("23.23.134.56"), src}, {ip("23.21.50.150"), src},
	}
	got := slices.Clone(in)
	Sort(got, key)
	assert.Equal(t, in, got)
}

// TestNonIPKeepTheirPlaces: elements key does not call IP destinations
// stay where they are; the IP ones are sorted around them.
// TestUnusableKeepTheirOrder: destinations without a source are not
// told apart by the other rules (rule 1 says they are equal), whichever
// family they are.
func TestUnusableKeepTheirOrder(t *testing.T) {
	for _, in := range [][]dest{
		{{ip("192.0.2.1"), netip.Addr{}}, {ip("2001:db8::1"), netip.Addr{}}},
		{{ip("2001:db8::1"), netip.Addr{}}, {ip("192.0.2.1"), netip.Addr{}}},
	} {
		got := slices.Clone(in)
		Sort(got, key)
		assert.Equal(t, in, got)
	}
}

func TestNonIPKeepTheirPlaces(t *testing.T) {
	type el struct {
		name string
		d    dest
	}
	v4 := el{"v4", dest{ip("127.0.0.1"), ip("127.0.0.1")}}
	v6 := el{"v6", dest{ip("::1"), ip("::1")}}
	unix := el{name: "unix"}
	s := []el{v4, unix, v6}
	Sort(s, func(e el) (netip.Addr, netip.Addr, bool) { return e.d.dst, e.d.src, e.d.dst.IsValid() })
	assert.Equal(t, []el{v6, unix, v4}, s)
}

func TestPolicyTable(t *testing.T) {
	for _, tc := range []struct {
		addr              string
		precedence, label uint8
		scope             Scope
	}{
		{"::1", 50, 0, ScopeLinkLocal},
		{"2001:db8::1", 40, 1, ScopeGlobal},
		{"192.0.2.1", 35, 4, ScopeGlobal},
		{"10.0.0.1", 35, 4, ScopeGlobal},
		{"127.0.0.1", 35, 4, ScopeLinkLocal},
		{"169.254.1.1", 35, 4, ScopeLinkLocal},
		{"::ffff:198.51.100.1", 35, 4, ScopeGlobal},
		{"2002:c633:6401::1", 30, 2, ScopeGlobal},
		{"2001:0:4136:e378::1", 5, 5, ScopeGlobal},
		{"fd00::1", 3, 13, ScopeGlobal},
		{"::192.0.2.1", 1, 3, ScopeGlobal},
		{"fec0::1", 1, 11, ScopeSiteLocal},
		{"3ffe::1", 1, 12, ScopeGlobal},
		{"fe80::1%eth0", 40, 1, ScopeLinkLocal},
		{"ff05::2", 40, 1, ScopeSiteLocal},
	} {
		a := ip(tc.addr)
		assert.Equal(t, tc.precedence, Precedence(a), "precedence of %s", a)
		assert.Equal(t, tc.label, Label(a), "label of %s", a)
		assert.Equal(t, tc.scope, ScopeOf(a), "scope of %s", a)
	}
}

func TestCommonPrefixLen(t *testing.T) {
	assert.Equal(t, 64, commonPrefixLen(ip("2001:db8:1::1"), ip("2001:db8:1::2")), "capped at the prefix")
	assert.Equal(t, 40, commonPrefixLen(ip("2001:db8:3ffe::1"), ip("2001:db8:3f44::2")))
	assert.Equal(t, 0, commonPrefixLen(ip("8000::"), ip("::")))
	assert.Equal(t, 15, commonPrefixLen(ip("2002::"), ip("2003::")))
}

// TestSourceOnLoopback asks the kernel for the source towards loopback
// destinations only (nothing is sent).
func TestSourceOnLoopback(t *testing.T) {
	require.Equal(t, ip("127.0.0.1"), Source(ip("127.0.0.1")))
	require.Equal(t, ip("127.0.0.1"), Source(ip("::ffff:127.0.0.1")), "IPv4-mapped: the IPv4 source")
	if s := Source(ip("::1")); s.IsValid() { // a host without IPv6 has no route: the invalid Addr
		require.Equal(t, ip("::1"), s)
	}
	require.False(t, Source(netip.Addr{}).IsValid())
}
