package resolver_test

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// TestResolveCacheOnResolverClock: Config.Clock is the DNS stub's clock
// too when DNS.Clock is nil, so both caches expire on it together; the
// caller's dnsstub.Config is left as it was.
func TestResolveCacheOnResolverClock(t *testing.T) {
	srv := startDNS(t, 60)
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	dcfg := &dnsstub.Config{Nameservers: []netip.AddrPort{srv.addr}}
	r, err := resolver.New(&resolver.Config{HostsFile: "-", DNS: dcfg, Clock: clk})
	require.NoError(t, err)
	defer r.Close()
	assert.Nil(t, dcfg.Clock)
	resolve := func() {
		t.Helper()
		_, err := r.Resolve(ctx, "tcp://a.test:80")
		require.NoError(t, err)
	}
	resolve()
	assert.Equal(t, int64(2), srv.queries.Load(), "A and AAAA once")
	clk.Advance(59 * time.Second)
	resolve()
	assert.Equal(t, int64(2), srv.queries.Load())
	clk.Advance(time.Second)
	resolve()
	assert.Equal(t, int64(4), srv.queries.Load(), "asked again at expiry: the stub's cache expired on the same clock")
}

// TestResolveCache: DNS answers are cached until their TTL (on the stub's
// clock), not at all when the stub's cache is off; static answers are
// cached; answers without a TTL and SRV answers are not.
func TestResolveCache(t *testing.T) {
	srv := startDNS(t, 60)
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	r := newDNSResolver(t, srv, func(c *dnsstub.Config) { c.Clock = clk })
	want := []string{"tcp://a.test=192.0.2.1:80", "tcp://a.test=[2001:db8::1]:80"}
	for range 3 {
		eps, err := r.Resolve(ctx, "tcp://a.test:80")
		require.NoError(t, err)
		assert.Equal(t, want, strs(eps))
	}
	assert.Equal(t, int64(2), srv.queries.Load(), "A and AAAA once")
	clk.Advance(59 * time.Second)
	_, err := r.Resolve(ctx, "tcp://a.test:80")
	require.NoError(t, err)
	assert.Equal(t, int64(2), srv.queries.Load())
	clk.Advance(time.Second)
	eps, err := r.Resolve(ctx, "tcp://a.test:80")
	require.NoError(t, err)
	assert.Equal(t, want, strs(eps))
	assert.Equal(t, int64(4), srv.queries.Load(), "asked again at expiry")

	// ResolveListen is cached apart.
	eps, err = r.ResolveListen(ctx, "tcp://:0")
	require.NoError(t, err)
	assert.Equal(t, []string{"tcp://0.0.0.0:0"}, strs(eps))
	_, err = r.Resolve(ctx, "tcp://:0")
	require.Error(t, err)

	// The stub's cache off: every resolution asks.
	off := newDNSResolver(t, srv, func(c *dnsstub.Config) { c.Cache.MaxEntries = -1 })
	n := srv.queries.Load()
	for range 3 {
		_, err := off.Resolve(ctx, "tcp://a.test:80")
		require.NoError(t, err)
	}
	assert.Equal(t, n+6, srv.queries.Load())

	// Closed: no cached answer.
	require.NoError(t, r.Close())
	_, err = r.Resolve(ctx, "tcp://a.test:80")
	require.Error(t, err)
}

func TestResolveCacheNoTTL(t *testing.T) {
	var hosts, srvs atomic.Int64
	r := newTestResolver(t, &resolver.Config{
		LookupHost: func(ctx context.Context, host string) ([]netip.Addr, error) {
			hosts.Add(1)
			return fakeLookup(ctx, host)
		},
		LookupSRV: func(ctx context.Context, name string) ([]dnsstub.SRV, error) {
			srvs.Add(1)
			return fakeSRV(ctx, name)
		},
		Hosts: map[string][]netip.Addr{"static.test": {netip.MustParseAddr("192.0.2.77")}},
	})
	ctx := context.Background()
	for range 2 {
		_, err := r.Resolve(ctx, "tcp://example.com:80")
		require.NoError(t, err)
		_, err = r.Resolve(ctx, "srv://_http._tcp.svc.test")
		require.NoError(t, err)
		eps, err := r.Resolve(ctx, "https://static.test")
		require.NoError(t, err)
		assert.Equal(t, []string{"tls://static.test@tcp://static.test=192.0.2.77:443"}, strs(eps))
	}
	assert.Equal(t, int64(2), srvs.Load(), "SRV answers are not cached")
	assert.GreaterOrEqual(t, hosts.Load(), int64(2), "answers without a TTL are not cached")
}
