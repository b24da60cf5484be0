package resolver_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// TestSRVOrder checks RFC 2782 ordering: priorities ascending, weighted
// random within a priority, with a seeded source.
func TestSRVOrder(t *testing.T) {
	recs := []dnsstub.SRV{
		{Target: "low.test.", Port: 1, Priority: 20, Weight: 10},
		{Target: "heavy.test.", Port: 1, Priority: 10, Weight: 30},
		{Target: "light.test.", Port: 1, Priority: 10, Weight: 10},
		{Target: "zero.test.", Port: 1, Priority: 10, Weight: 0},
	}
	hosts := map[string][]netip.Addr{}
	for _, r := range recs {
		hosts[r.Target[:len(r.Target)-1]] = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	}
	r := newTestResolver(t, &resolver.Config{
		Hosts: hosts,
		Rand:  rand.NewPCG(1, 2),
		LookupSRV: func(context.Context, string) ([]dnsstub.SRV, error) {
			return recs, nil
		},
	})
	firsts := map[string]int{}
	const n = 4000
	for range n {
		eps, err := r.Resolve(context.Background(), "srv://_x._tcp.w.test")
		require.NoError(t, err)
		require.Len(t, eps, 4)
		assert.Equal(t, "low.test", eps[3].(endpoint.TCP).Host, "priority 20 last")
		firsts[eps[0].(endpoint.TCP).Host]++
	}
	t.Log(firsts)
	// Weights 30:10:0 over a running sum picked in [0, 40]: heavy ~30/41,
	// light ~10/41, zero ~1/41.
	assert.InDelta(t, 30.0/41, float64(firsts["heavy.test"])/n, 0.03)
	assert.InDelta(t, 10.0/41, float64(firsts["light.test"])/n, 0.03)
	assert.InDelta(t, 1.0/41, float64(firsts["zero.test"])/n, 0.015)

	// The same seed gives the same order.
	order := func() []string {
		r := newTestResolver(t, &resolver.Config{Hosts: hosts, Rand: rand.NewPCG(7, 7),
			LookupSRV: func(context.Context, string) ([]dnsstub.SRV, error) { return recs, nil }})
		var out []string
		for range 5 {
			eps, err := r.Resolve(context.Background(), "srv://_x._tcp.w.test")
			require.NoError(t, err)
			out = append(out, strs(eps)...)
		}
		return out
	}
	assert.Equal(t, order(), order())
}

func TestSRVErrors(t *testing.T) {
	r := newTestResolver(t, nil)
	for _, tc := range []struct {
		uri  string
		want error
	}{
		{"srv://_ssh._tcp.broken.test", nil},
		{"ssh+srv://broken.test", nil}, // not "not found": no fallback
		{"srv://_ldap._tcp.down.test", resolver.ErrServiceUnavailable},
		{"srv://_x._tcp.nxdomain.example", resolver.ErrNotFound},
		{"https+srv://nxdomain.example", resolver.ErrNotFound},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			_, err := r.Resolve(context.Background(), tc.uri)
			require.Error(t, err)
			var ue *resolver.URIError
			require.ErrorAs(t, err, &ue)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
			} else {
				assert.NotErrorIs(t, err, resolver.ErrNotFound)
				assert.Contains(t, err.Error(), "backend exploded")
			}
			t.Log(err)
		})
	}
	_, err := r.ResolveListen(context.Background(), "srv://_http._tcp.svc.test")
	assert.ErrorIs(t, err, resolver.ErrMalformedURI)
}

// TestSRVStubErrors: errors of the DNS stub keep their kind through the
// resolver.
func TestSRVStubErrors(t *testing.T) {
	r := newTestResolver(t, &resolver.Config{LookupSRV: func(ctx context.Context, name string) ([]dnsstub.SRV, error) {
		return nil, &dnsstub.Error{Name: name, Type: "SRV", Err: dnsstub.ErrTimeout}
	}})
	_, err := r.Resolve(context.Background(), "https+srv://svc.test")
	require.ErrorIs(t, err, dnsstub.ErrTimeout)
	assert.NotErrorIs(t, err, resolver.ErrNotFound)

	r = newTestResolver(t, &resolver.Config{LookupSRV: func(ctx context.Context, name string) ([]dnsstub.SRV, error) {
		return nil, &dnsstub.Error{Name: name, Type: "SRV", Err: dnsstub.ErrNoData}
	}})
	eps, err := r.Resolve(context.Background(), "https+srv://svc.test")
	require.NoError(t, err, "NODATA falls back to the host")
	assert.Equal(t, []string{"tls://svc.test@tcp://svc.test=192.0.2.99:443"}, strs(eps))
}
