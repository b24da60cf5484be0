package resolver_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/resolver"
)

// fakeLookup is the LookupHost of the tests: a fixed zone, honouring ctx.
func fakeLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch host {
	case "example.com", "example.com.":
		return []netip.Addr{netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("192.0.2.10")}, nil
	case "dup.example":
		// Duplicates, and IPv4 as IPv4-mapped IPv6 as LookupNetIP may return.
		return []netip.Addr{
			netip.MustParseAddr("::ffff:192.0.2.20"), netip.MustParseAddr("2001:db8::20"),
			netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("2001:db8::20"),
			netip.MustParseAddr("192.0.2.21"),
		}, nil
	case "empty.example":
		return nil, nil
	case "servfail.example":
		return nil, &net.DNSError{Err: "server misbehaving", Name: host, Server: "192.0.2.53:53", IsTemporary: true}
	case "broken.example":
		return nil, errors.New("backend exploded")
	}
	if strings.HasSuffix(host, ".example") || strings.HasSuffix(host, ".com") {
		return nil, &net.DNSError{Err: "no such host", Name: host, Server: "192.0.2.53:53", IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr("192.0.2.99")}, nil
}

// newTestResolver returns a resolver with the fake lookup and no hosts file.
func newTestResolver(t testing.TB, cfg *resolver.Config) *resolver.URIResolver {
	t.Helper()
	if cfg == nil {
		cfg = &resolver.Config{}
	}
	if cfg.LookupHost == nil {
		cfg.LookupHost = fakeLookup
	}
	if cfg.HostsFile == "" {
		cfg.HostsFile = "-"
	}
	r, err := resolver.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

// strs returns the endpoints' strings.
func strs(eps []resolver.Endpoint) []string {
	s := make([]string, len(eps))
	for i, e := range eps {
		s[i] = e.String()
	}
	return s
}
