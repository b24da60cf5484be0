package resolver_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// FuzzSVCBEndpoints: arbitrary wire RDATA of an HTTPS record for
// web.test, turned into endpoints by ResolveStream and Resolve: no panic,
// a malformed record is dropped (the plain answer), and every endpoint
// is valid, TLS with the origin's server name.
func FuzzSVCBEndpoints(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 1, 0, 3, 2, 'h', '2', 0, 4, 0, 4, 127, 0, 0, 9})
	f.Add([]byte{0, 0, 5, 'o', 't', 'h', 'e', 'r', 0})
	f.Add([]byte{0, 2, 0, 0, 3, 0, 2, 0x20, 0xfb, 0, 5, 0, 1, 7})
	f.Fuzz(func(t *testing.T, rdata []byte) {
		lookupSVCB := func(ctx context.Context, name string, qtype uint16) ([]dnsstub.SVCB, error) {
			rec, err := dnsstub.ParseSVCB(rdata)
			if err != nil || name != "web.test" {
				return nil, &dnsstub.Error{Name: name, Type: "HTTPS", Err: dnsstub.ErrNoData}
			}
			rec.Owner = "web.test."
			return []dnsstub.SVCB{rec}, nil
		}
		r, err := resolver.New(&resolver.Config{
			HostsFile: "-", ServicesFile: "-",
			DNS:        &dnsstub.Config{Nameservers: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}, Timeout: 1, Attempts: 1},
			LookupSVCB: lookupSVCB,
		})
		require.NoError(t, err)
		defer r.Close()
		// The stub asks 127.0.0.1:9 (discard): the addresses fail, the
		// hints (if any) are all there is.
		check := func(ep endpoint.Endpoint) {
			require.NoError(t, endpoint.Validate(ep))
			tls, ok := ep.(endpoint.TLS)
			require.True(t, ok)
			require.Equal(t, "web.test", tls.ServerName)
		}
		_ = r.ResolveStream(context.Background(), "https://web.test/", func(b resolver.Batch) {
			for _, ep := range b.Endpoints {
				check(ep)
			}
		})
		eps, _ := r.Resolve(context.Background(), "https://web.test/")
		for _, ep := range eps {
			check(ep)
		}
	})
}
