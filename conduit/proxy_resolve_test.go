package conduit

import (
	"context"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/proxy"
	"github.com/conduit-go/conduit/resolver"
)

// proxyTestConduit resolves a few names from a static table only.
func proxyTestConduit(t testing.TB, fn ProxyFunc) *Conduit {
	t.Helper()
	res, err := resolver.New(&resolver.Config{
		HostsFile: "/nonexistent",
		Hosts: map[string][]netip.Addr{
			"a.test":       {netip.MustParseAddr("127.0.0.2")},
			"b.test":       {netip.MustParseAddr("127.0.0.3")},
			"local.test":   {netip.MustParseAddr("127.0.0.1")},
			"example.test": {netip.MustParseAddr("127.0.0.9"), netip.MustParseAddr("::1")},
		},
		LookupHost: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return nil, &resolverNotFound{host}
		},
	})
	require.NoError(t, err)
	c := New(&Config{Resolver: res, Proxy: fn})
	t.Cleanup(func() { c.Close(); res.Close() })
	return c
}

type resolverNotFound struct{ host string }

func (e *resolverNotFound) Error() string { return "no such host " + e.host }

func strs(eps []endpoint.Endpoint) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		out[i] = ep.String()
	}
	return out
}

func TestProxyChainByURI(t *testing.T) {
	c := proxyTestConduit(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name, uri string
		want      []string
	}{
		{"socks5 resolves here, each address a hop",
			"tls://example.test:443?proxy=socks5://a.test:1080",
			[]string{"tls://example.test@socks5://example.test=127.0.0.9:443@tcp://a.test=127.0.0.2:1080",
				"tls://example.test@socks5://example.test=[::1]:443@tcp://a.test=127.0.0.2:1080"}},
		{"socks5h gives the name to the proxy",
			"tls://example.test:443?proxy=socks5h://u:secret@a.test",
			[]string{"tls://example.test@socks5h://u@example.test:443@tcp://a.test=127.0.0.2:1080"}},
		{"chain: socks5h at A, then CONNECT at B",
			"tls://example.test:443?proxy=socks5h://a.test:1080&proxy=http://b.test:3128",
			[]string{"tls://example.test@http://example.test:443@socks5h://b.test:3128@tcp://a.test=127.0.0.2:1080"}},
		{"chain through socks5 resolves the next proxy here",
			"tcp://example.test:80?proxy=socks5://a.test:1080&proxy=http://b.test:3128",
			[]string{"http://example.test:80@socks5://b.test=127.0.0.3:3128@tcp://a.test=127.0.0.2:1080"}},
		{"https proxy: TLS to the proxy, then TLS to the target inside",
			"https://example.test?proxy=https://b.test:8443",
			[]string{"tls://example.test@http://example.test:443@tls://b.test@tcp://b.test=127.0.0.3:8443"}},
		{"a proxy over a Unix socket",
			"tcp://example.test:7?proxy=socks5h+unix:///run/socks.sock",
			[]string{"socks5h://example.test:7@unix:///run/socks.sock"}},
		{"sni kept, proxy param removed",
			"tls://127.0.0.9:443?sni=web.test&proxy=http://b.test:3128",
			[]string{"tls://web.test@http://127.0.0.9:443@tcp://b.test=127.0.0.3:3128"}},
		{"direct", "tcp://example.test:80?proxy=direct",
			[]string{"tcp://example.test=127.0.0.9:80", "tcp://example.test=[::1]:80"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps, err := c.Resolve(ctx, tc.uri)
			require.NoError(t, err)
			assert.Equal(t, tc.want, strs(eps))
			for _, ep := range eps {
				require.NoError(t, endpoint.Validate(ep), ep.String())
			}
		})
	}
}

func TestProxyChainErrors(t *testing.T) {
	c := proxyTestConduit(t, nil)
	ctx := context.Background()
	for _, tc := range []struct{ uri, want string }{
		{"tcp://example.test:80?proxy=gopher://a.test", `unknown proxy scheme "gopher"`},
		{"tcp://example.test:80?proxy=socks5://a.test:0", "port must be 1-65535"},
		{"tcp://example.test:80?proxy=socks5://", "no host"},
		{"unix:///tmp/x.sock?proxy=socks5://a.test", "cannot be reached through a proxy"},
		{"tcp://nowhere.test:80?proxy=socks5://a.test", "nowhere.test"},
		{"tcp://example.test:80?proxy=socks5+unix:///s&proxy=http%2Bunix:///t", "not at a HOST:PORT"},
	} {
		_, err := c.Resolve(ctx, tc.uri)
		require.Error(t, err, tc.uri)
		assert.Contains(t, err.Error(), tc.want, tc.uri)
		assert.NotContains(t, err.Error(), "secret")
	}
}

func TestProxyFunc(t *testing.T) {
	var got []ProxyDestination
	c := proxyTestConduit(t, func(ctx context.Context, d ProxyDestination) ([]*url.URL, error) {
		got = append(got, d)
		if d.Host == "b.test" {
			return nil, nil
		}
		return []*url.URL{{Scheme: "http", Host: "b.test:3128"}}, nil
	})
	ctx := context.Background()
	eps, err := c.Resolve(ctx, "https://example.test")
	require.NoError(t, err)
	assert.Equal(t, []string{"tls://example.test@http://example.test:443@tcp://b.test=127.0.0.3:3128"}, strs(eps))
	// The URI's own parameter wins over the function.
	eps, err = c.Resolve(ctx, "tcp://example.test:80?proxy=direct")
	require.NoError(t, err)
	assert.Len(t, eps, 2)
	// The function decides for the destination only, not for the
	// proxy's own address.
	require.Len(t, got, 1)
	assert.Equal(t, ProxyDestination{URI: "https://example.test", Scheme: "https", Host: "example.test", Port: 443}, got[0])
	// Unix URIs are not offered to the function.
	n := len(got)
	_, err = c.Resolve(ctx, "unix:///tmp/x.sock")
	require.NoError(t, err)
	assert.Len(t, got, n)
}

func TestProxyFromEnv(t *testing.T) {
	c := proxyTestConduit(t, ProxyFromEnv(&proxy.EnvConfig{
		HTTPSProxy: "http://b.test:3128",
		AllProxy:   "socks5h://a.test",
		NoProxy:    "example.test",
	}))
	ctx := context.Background()
	for _, tc := range []struct{ uri, want string }{
		{"https://web.test", "tls://web.test@http://web.test:443@tcp://b.test=127.0.0.3:3128"},
		{"tls://web.test:8443", "tls://web.test@http://web.test:8443@tcp://b.test=127.0.0.3:3128"},
		{"tcp://web.test:7", "socks5h://web.test:7@tcp://a.test=127.0.0.2:1080"},
		{"tcp://127.0.0.9:7", "tcp://127.0.0.9:7"}, // loopback: never proxied by the library's rule
	} {
		eps, err := c.Resolve(ctx, tc.uri)
		require.NoError(t, err, tc.uri)
		assert.Equal(t, tc.want, eps[0].String(), tc.uri)
	}
	eps, err := c.Resolve(ctx, "tcp://example.test:7")
	require.NoError(t, err)
	assert.Equal(t, "tcp://example.test=127.0.0.9:7", eps[0].String(), "NO_PROXY")
}

func FuzzProxyURI(f *testing.F) {
	for _, s := range []string{
		"tls://example.test:443?proxy=socks5://a.test:1080&proxy=http://u:p@b.test:3128",
		"tcp://x:1?proxy=socks5h+unix:///s&sni=y#frag",
		"tcp://x:1?proxy=%zz", "tcp://x:1?proxy=", "tcp://x:1?proxy=direct&proxy=direct",
		"https://x?proxy=https+vchan://7/p",
		"?proxy#0?proxy=", // found by the fuzzer: "?proxy=" in the fragment is no parameter
	} {
		f.Add(s)
	}
	c := proxyTestConduit(f, nil)
	f.Fuzz(func(t *testing.T, uri string) {
		proxies, rest, ok := splitProxyParams(uri)
		if ok {
			// Only the parameters named proxy are taken out, all of them
			// (the query ends at the fragment, which may hold a "?").
			rest, _, _ := strings.Cut(rest, "#")
			if _, q, found := strings.Cut(rest, "?"); found {
				for _, p := range strings.Split(q, "&") {
					require.False(t, strings.HasPrefix(p, "proxy="), "%q: a proxy parameter left in %q", uri, rest)
				}
			}
		}
		for _, p := range proxies {
			parseHop(p)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()            // no lookups: the table answers, the rest fails at once
		c.Resolve(ctx, uri) // no panic, no hang
	})
}
