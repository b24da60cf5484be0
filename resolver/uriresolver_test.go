package resolver_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

func resolveStrs(t *testing.T, r *resolver.URIResolver, uri string) []string {
	t.Helper()
	eps, err := r.Resolve(context.Background(), uri)
	require.NoError(t, err)
	return strs(eps)
}

func TestHostsPrecedence(t *testing.T) {
	r := newTestResolver(t, &resolver.Config{
		HostsFile: "testdata/hosts",
		Hosts: map[string][]netip.Addr{
			"Static.Test.": {netip.MustParseAddr("192.0.2.70")},
			"localhost":    {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.2"), {}},
			"example.com":  {netip.MustParseAddr("192.0.2.71")},
			"empty.test":   {},
		},
	})
	for _, tc := range []struct {
		uri  string
		want []string
	}{
		// Config.Hosts first, keys case-insensitive, without trailing dot.
		{"tcp://static.test:1", []string{"tcp://static.test=192.0.2.70:1"}},
		{"tcp://STATIC.test.:1", []string{"tcp://static.test.=192.0.2.70:1"}},
		{"tcp://localhost:1", []string{"tcp://localhost=127.0.0.2:1"}},
		{"tls://example.com:1", []string{"tls://example.com@tcp://example.com=192.0.2.71:1"}},
		// Then the hosts file, deduplicated, in file order.
		{"tcp://files.test:1", []string{"tcp://files.test=192.0.2.50:1", "tcp://files.test=[2001:db8::50]:1"}},
		{"tcp://alias.test:1", []string{"tcp://alias.test=192.0.2.50:1"}},
		{"tcp://ip6-localhost:1", []string{"tcp://ip6-localhost=[::1]:1"}},
		{"tcp://linklocal.test:1", []string{"tcp://linklocal.test=[fe80::1%lo]:1"}},
		{"tls://linklocal.test:1", []string{"tls://linklocal.test@tcp://linklocal.test=[fe80::1%lo]:1"}},
		// An invalid line or an empty entry falls through to the lookup.
		{"tcp://broken.test:1", []string{"tcp://broken.test=192.0.2.99:1"}},
		{"tcp://empty.test:1", []string{"tcp://empty.test=192.0.2.99:1"}},
		// localhost names the hosts tables do not have: loopback.
		{"tcp://a.localhost:1", []string{"tcp://a.localhost=127.0.0.1:1", "tcp://a.localhost=[::1]:1"}},
	} {
		assert.Equal(t, tc.want, resolveStrs(t, r, tc.uri), tc.uri)
	}
}

func TestHostsFileErrors(t *testing.T) {
	_, err := resolver.New(&resolver.Config{HostsFile: "testdata/does-not-exist"})
	assert.NoError(t, err, "a missing hosts file is an empty table")
	_, err = resolver.New(&resolver.Config{HostsFile: "testdata"})
	assert.ErrorContains(t, err, "resolver: reading hosts file")
}

func TestServices(t *testing.T) {
	r := newTestResolver(t, &resolver.Config{Services: map[string]resolver.Service{
		"Gemini": {Port: 1965, TLS: true},
		"http":   {Port: 8080},
		"https":  {Port: 443}, // TLS off: a plain-text override
	}})
	assert.Equal(t, []string{"tls://192.0.2.1@tcp://192.0.2.1:1965"}, resolveStrs(t, r, "gemini://192.0.2.1/"))
	assert.Equal(t, []string{"tls://192.0.2.1@tcp://192.0.2.1:1966"}, resolveStrs(t, r, "GEMINI://192.0.2.1:1966"))
	assert.Equal(t, []string{"tcp://192.0.2.1:8080"}, resolveStrs(t, r, "http://192.0.2.1"))
	assert.Equal(t, []string{"tcp://192.0.2.1:443"}, resolveStrs(t, r, "https://192.0.2.1"))
	assert.Equal(t, []string{"tcp://192.0.2.1:22"}, resolveStrs(t, r, "ssh://192.0.2.1"), "built-ins stay")

	// Another resolver does not see these services.
	_, err := newTestResolver(t, nil).Resolve(context.Background(), "gemini://192.0.2.1")
	assert.ErrorIs(t, err, resolver.ErrUnknownScheme)

	for name, svc := range map[string]resolver.Service{
		"tcp":      {Port: 1},
		"TLS+Unix": {Port: 1},
		"vchan":    {Port: 1},
		"bad_name": {Port: 1},
		"":         {Port: 1},
		"zero":     {},
	} {
		_, err := resolver.New(&resolver.Config{HostsFile: "-", Services: map[string]resolver.Service{name: svc}})
		assert.ErrorContains(t, err, "resolver: service "+`"`+name+`"`)
	}
}

func TestPreferIPv4(t *testing.T) {
	r := newTestResolver(t, &resolver.Config{PreferIPv4: true})
	assert.Equal(t, []string{"tcp://example.com=192.0.2.10:80", "tcp://example.com=[2001:db8::10]:80"},
		resolveStrs(t, r, "tcp://example.com:80"))
	assert.Equal(t, []string{"tcp://dup.example=192.0.2.20:80", "tcp://dup.example=192.0.2.21:80", "tcp://dup.example=[2001:db8::20]:80"},
		resolveStrs(t, r, "tcp://dup.example:80"))
}

func TestLookupErrors(t *testing.T) {
	r := newTestResolver(t, nil)
	ctx := context.Background()

	_, err := r.Resolve(ctx, "tcp://nxdomain.example:1")
	require.ErrorIs(t, err, resolver.ErrNotFound)
	var dnsErr *net.DNSError
	require.ErrorAs(t, err, &dnsErr, "the lookup's error is kept")
	assert.True(t, dnsErr.IsNotFound)

	_, err = r.Resolve(ctx, "tcp://servfail.example:1")
	require.Error(t, err)
	assert.NotErrorIs(t, err, resolver.ErrNotFound)
	require.ErrorAs(t, err, &dnsErr)
	assert.True(t, dnsErr.IsTemporary)
	assert.EqualError(t, err, `resolver: URI "tcp://servfail.example:1": lookup servfail.example on 192.0.2.53:53: server misbehaving`)

	_, err = r.Resolve(ctx, "https://broken.example")
	assert.NotErrorIs(t, err, resolver.ErrNotFound)
	assert.EqualError(t, err, `resolver: URI "https://broken.example": lookup broken.example: backend exploded`)

	// A LookupHost returning ErrNotFound itself.
	r2 := newTestResolver(t, &resolver.Config{LookupHost: func(context.Context, string) ([]netip.Addr, error) {
		return nil, resolver.ErrNotFound
	}})
	_, err = r2.Resolve(ctx, "tcp://x.test:1")
	assert.ErrorIs(t, err, resolver.ErrNotFound)
	assert.EqualError(t, err, `resolver: URI "tcp://x.test:1": lookup x.test: no such host`)
}

func TestContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	called := false
	r := newTestResolver(t, &resolver.Config{LookupHost: func(ctx context.Context, host string) ([]netip.Addr, error) {
		called = true
		return fakeLookup(ctx, host)
	}})
	_, err := r.Resolve(ctx, "tcp://example.com:80")
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, called, "no lookup with a done context")

	// Nothing to look up: the context does not matter.
	eps, err := r.Resolve(ctx, "tcp://192.0.2.1:80")
	require.NoError(t, err)
	assert.Len(t, eps, 1)
	_, err = r.Resolve(ctx, "tcp://localhost:80")
	assert.NoError(t, err)

	// The lookup sees the context: cancel while it waits.
	ctx2, cancel2 := context.WithCancel(context.Background())
	started := make(chan struct{})
	r2 := newTestResolver(t, &resolver.Config{LookupHost: func(ctx context.Context, host string) ([]netip.Addr, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	done := make(chan error, 1)
	go func() {
		_, err := r2.Resolve(ctx2, "tcp://slow.test:1")
		done <- err
	}()
	<-started
	cancel2()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func TestSystemResolverLocalhost(t *testing.T) {
	if _, err := os.Stat(resolver.DefaultHostsFile); err != nil {
		t.Skipf("no %s: %v", resolver.DefaultHostsFile, err)
	}
	r, err := resolver.New(nil)
	require.NoError(t, err)
	defer r.Close()
	eps, err := r.Resolve(context.Background(), "tcp://localhost:80")
	require.NoError(t, err)
	require.NotEmpty(t, eps)
	for _, e := range eps {
		tcp, ok := e.(endpoint.TCP)
		require.True(t, ok, "%T", e)
		assert.Equal(t, "localhost", tcp.Host)
		assert.True(t, tcp.Addr.Addr().IsLoopback(), "%v", e)
		assert.Equal(t, uint16(80), tcp.Addr.Port())
	}

	// A canceled context stops a real lookup.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Resolve(ctx, "tcp://conduit-test.invalid:80")
	assert.ErrorIs(t, err, context.Canceled)
}

func TestResolveListen(t *testing.T) {
	r := newTestResolver(t, nil)
	for _, tc := range []struct {
		uri  string
		want []string
	}{
		{"tcp://:0", []string{"tcp://0.0.0.0:0"}},
		{"tcp://:8080/", []string{"tcp://0.0.0.0:8080"}},
		{"tcp://[::]:0", []string{"tcp://[::]:0"}},
		{"tcp://example.com:0", []string{"tcp://example.com=[2001:db8::10]:0", "tcp://example.com=192.0.2.10:0"}},
		{"tls://:0?sni=srv.test", []string{"tls://srv.test@tcp://0.0.0.0:0"}},
		{"tls://localhost:0", []string{"tls://localhost@tcp://localhost=127.0.0.1:0", "tls://localhost@tcp://localhost=[::1]:0"}},
		{"http://", []string{"tcp://0.0.0.0:80"}},
		{"ssh://:2222", []string{"tcp://0.0.0.0:2222"}},
		{"ws://", []string{"tcp://0.0.0.0:80"}}, // FuzzParseURI: u.String() was "ws:"
		{"vchan://3/p", []string{"vchan://3/p"}},
	} {
		eps, err := r.ResolveListen(context.Background(), tc.uri)
		require.NoError(t, err, tc.uri)
		assert.Equal(t, tc.want, strs(eps), tc.uri)
	}
	for _, uri := range []string{"tcp://:", "tcp://", "tcp://:65536", "unix://", "vchan://3", "tcp://h:0/x"} {
		_, err := r.ResolveListen(context.Background(), uri)
		assert.ErrorIs(t, err, resolver.ErrMalformedURI, uri)
	}
	_, err := r.ResolveListen(context.Background(), "udp://:0")
	assert.ErrorIs(t, err, resolver.ErrUnknownScheme)
}

func TestEndpointTypes(t *testing.T) {
	r := newTestResolver(t, nil)
	ctx := context.Background()
	eps, err := r.Resolve(ctx, "tls://[fe80::1%25eth0]:443?sni=Srv.Test")
	require.NoError(t, err)
	assert.Equal(t, []endpoint.Endpoint{endpoint.TLS{
		ServerName: "srv.test",
		Inner:      endpoint.TCP{Addr: netip.MustParseAddrPort("[fe80::1%eth0]:443")},
	}}, eps)

	eps, err = r.Resolve(ctx, "tls+vchan://Backend/port_1")
	require.NoError(t, err)
	assert.Equal(t, []endpoint.Endpoint{endpoint.TLS{ServerName: "localhost", Inner: endpoint.VchanNamed{Name: "Backend", Port: "port_1"}}}, eps)

	eps, err = r.Resolve(ctx, "vchan://12/p")
	require.NoError(t, err)
	assert.Equal(t, []endpoint.Endpoint{endpoint.VchanDirect{Domid: 12, Port: "p"}}, eps)

	eps, err = r.Resolve(ctx, "unix:///run/a%20b.sock")
	require.NoError(t, err)
	assert.Equal(t, []endpoint.Endpoint{endpoint.Unix{Path: "/run/a b.sock"}}, eps)

	eps, err = r.Resolve(ctx, "tcp://example.com:80")
	require.NoError(t, err)
	assert.Equal(t, endpoint.TCP{Host: "example.com", Addr: netip.MustParseAddrPort("192.0.2.10:80")}, eps[1])
}

func TestParseURI(t *testing.T) {
	u, err := resolver.ParseURI("TLS://Example.COM:443?sni=x.test")
	require.NoError(t, err)
	assert.Equal(t, "tls", u.Scheme)
	assert.Equal(t, "example.com:443", u.Host)
	assert.Equal(t, "example.com", u.Hostname())
	assert.Equal(t, "443", u.Port())
	assert.Equal(t, "sni=x.test", u.RawQuery)

	// ParseURI does not know the resolvers' services, nor refuse what is
	// valid to listen on.
	for uri, want := range map[string]string{
		"gemini://h.test": "gemini://h.test",
		"tcp://:0":        "tcp://:0",
		"https://:0/x":    "https://:0/x",
		"unix:///x":       "unix:///x",
		"ws://":           "ws:///", // FuzzParseURI: printed as "ws:", which does not parse
	} {
		u, err := resolver.ParseURI(uri)
		require.NoError(t, err, uri)
		assert.Equal(t, want, u.String())
		_, err = resolver.ParseURI(u.String())
		assert.NoError(t, err, uri)
	}
	_, err = resolver.ParseURI("tcp://h.test")
	var ue *resolver.URIError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, "tcp://h.test", ue.URI)
	assert.ErrorIs(t, err, resolver.ErrMalformedURI)
	assert.EqualError(t, err, `resolver: URI "tcp://h.test": malformed URI: missing port (want tcp://HOST:PORT)`)
}

func TestClose(t *testing.T) {
	r, err := resolver.New(&resolver.Config{HostsFile: "-", LookupHost: fakeLookup})
	require.NoError(t, err)
	_, err = r.Resolve(context.Background(), "tcp://192.0.2.1:1")
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "Close is idempotent")
	_, err = r.Resolve(context.Background(), "tcp://192.0.2.1:1")
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.EqualError(t, err, `resolver: URI "tcp://192.0.2.1:1": resolver is closed`)
	_, err = r.ResolveListen(context.Background(), "tcp://:0")
	assert.ErrorIs(t, err, net.ErrClosed)
}

func TestConfigNotRetained(t *testing.T) {
	cfg := &resolver.Config{
		HostsFile: "-",
		Hosts:     map[string][]netip.Addr{"h.test": {netip.MustParseAddr("192.0.2.1")}},
		Services:  map[string]resolver.Service{"x": {Port: 1}},
		LookupHost: func(context.Context, string) ([]netip.Addr, error) {
			return nil, errors.New("no lookups")
		},
	}
	r, err := resolver.New(cfg)
	require.NoError(t, err)
	defer r.Close()
	cfg.Hosts["h.test"][0] = netip.MustParseAddr("192.0.2.2")
	cfg.Hosts["h.test"] = nil
	delete(cfg.Services, "x")
	assert.Equal(t, []string{"tcp://h.test=192.0.2.1:1"}, resolveStrs(t, r, "x://h.test"))
}

func TestConcurrentResolve(t *testing.T) {
	r := newTestResolver(t, &resolver.Config{HostsFile: "testdata/hosts", PreferIPv4: true})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, uri := range []string{"tcp://example.com:1", "tcp://files.test:1", "https://localhost", "vchan://1/p"} {
				eps, err := r.Resolve(context.Background(), uri)
				assert.NoError(t, err)
				assert.NotEmpty(t, eps, "%d %s", i, uri)
			}
		}()
	}
	wg.Wait()
}
