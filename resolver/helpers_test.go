package resolver_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
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
	case "a.svc.test":
		return []netip.Addr{netip.MustParseAddr("192.0.2.31")}, nil
	case "b.svc.test":
		return []netip.Addr{netip.MustParseAddr("192.0.2.32"), netip.MustParseAddr("2001:db8::32")}, nil
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

// fakeSRV is the LookupSRV of the tests.
func fakeSRV(ctx context.Context, name string) ([]dnsstub.SRV, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec := func(target string, port, prio, weight uint16) dnsstub.SRV {
		return dnsstub.SRV{Target: target, Port: port, Priority: prio, Weight: weight, TTL: time.Minute}
	}
	switch name {
	case "_http._tcp.svc.test":
		return []dnsstub.SRV{rec("b.svc.test.", 8081, 20, 0), rec("a.svc.test.", 8080, 10, 5)}, nil
	case "_https._tcp.svc.test":
		return []dnsstub.SRV{rec("a.svc.test.", 8443, 1, 0)}, nil
	case "_ldap._tcp.down.test":
		return []dnsstub.SRV{rec(".", 0, 0, 0)}, nil
	case "_http._tcp.web.default.svc.cluster.local":
		return []dnsstub.SRV{rec("10-0-0-5.web.default.svc.cluster.local.", 80, 0, 100)}, nil
	case "_web._tcp.service.consul":
		return []dnsstub.SRV{rec("node1.node.dc1.consul.", 21000, 1, 1)}, nil
	case "_ssh._tcp.broken.test":
		return nil, errors.New("backend exploded")
	}
	return nil, &dnsstub.Error{Name: name, Type: "SRV", Err: dnsstub.ErrNXDomain}
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
	if cfg.LookupSRV == nil {
		cfg.LookupSRV = fakeSRV
	}
	if cfg.HostsFile == "" {
		cfg.HostsFile = "-"
	}
	if cfg.ServicesFile == "" {
		cfg.ServicesFile = "-" // the machine's /etc/services must not matter
	}
	r, err := resolver.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

// strs returns the endpoints' strings.
func strs(eps []endpoint.Endpoint) []string {
	s := make([]string, len(eps))
	for i, e := range eps {
		s[i] = e.String()
	}
	return s
}
