package resolver_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// startDnsmasq starts dnsmasq on a free loopback port with a small zone
// and returns its address once it answers.
func startDnsmasq(t *testing.T) netip.AddrPort {
	t.Helper()
	return testutil.Dnsmasq(t, "web.test",
		"--host-record=web.test,127.0.0.5", "--host-record=web.test,::5",
		"--host-record=web2.test,127.0.0.6",
		"--srv-host=_http._tcp.svc.test,web.test,8080,10,5",
		"--srv-host=_http._tcp.svc.test,web2.test,8081,20,5",
		"--srv-host=_https._tcp.svc.test,web.test,8443,1,1",
		"--cname=alias.test,web.test",
	)
}

func TestDnsmasq(t *testing.T) {
	addr := startDnsmasq(t)
	stub, err := dnsstub.New(&dnsstub.Config{Nameservers: []netip.AddrPort{addr}, Timeout: time.Second})
	require.NoError(t, err)
	defer stub.Close()
	ctx := context.Background()

	t.Run("A and AAAA", func(t *testing.T) {
		got, ttl, err := stub.LookupHostTTL(ctx, "web.test")
		require.NoError(t, err)
		assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("::5")}, got)
		assert.InDelta(t, 60*time.Second, ttl, float64(2*time.Second), "--local-ttl=60")
	})
	t.Run("CNAME", func(t *testing.T) {
		got, err := stub.LookupHost(ctx, "alias.test")
		require.NoError(t, err)
		assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("::5")}, got)
	})
	t.Run("SRV", func(t *testing.T) {
		got, err := stub.LookupSRV(ctx, "_http._tcp.svc.test")
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.ElementsMatch(t, []string{"web.test.", "web2.test."}, []string{got[0].Target, got[1].Target})
	})
	t.Run("NXDOMAIN", func(t *testing.T) {
		_, err := stub.LookupHost(ctx, "nope.test")
		require.ErrorIs(t, err, dnsstub.ErrNXDomain)
		require.ErrorIs(t, err, dnsstub.ErrNotFound)
	})

	t.Run("resolver", func(t *testing.T) {
		r, err := resolver.New(&resolver.Config{HostsFile: "-", DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{addr}, Timeout: time.Second}})
		require.NoError(t, err)
		defer r.Close()
		for _, tc := range []struct {
			uri  string
			want []string
		}{
			{"https+srv://svc.test", []string{
				"tls://svc.test@tcp://web.test=127.0.0.5:8443", "tls://svc.test@tcp://web.test=[::5]:8443"}},
			{"srv://_http._tcp.svc.test", []string{
				"tcp://web.test=127.0.0.5:8080", "tcp://web.test=[::5]:8080", "tcp://web2.test=127.0.0.6:8081"}},
			{"http+srv://web.test", []string{"tcp://web.test=127.0.0.5:80", "tcp://web.test=[::5]:80"}},
			{"tcp://alias.test:1", []string{"tcp://alias.test=127.0.0.5:1", "tcp://alias.test=[::5]:1"}},
		} {
			eps, err := r.Resolve(ctx, tc.uri)
			require.NoError(t, err, tc.uri)
			assert.Equal(t, tc.want, strs(eps), tc.uri)
		}
		_, err = r.Resolve(ctx, "tcp://nope.test:1")
		assert.ErrorIs(t, err, resolver.ErrNotFound)
		t.Log(err)

		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := r.Watch(wctx, "https+srv://svc.test")
		require.NoError(t, err)
		u := <-ch
		require.NoError(t, u.Err)
		assert.Len(t, u.Endpoints, 2)
	})
}
