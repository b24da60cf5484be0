package resolver_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

// TestVchanDomainZero: domain id 0 asks the listener for a free domain id,
// as TCP port 0 asks for a free port. It parses, resolves to listen on,
// and is a malformed URI to dial (the command's exit status 2), the same
// with TLS over vchan.
func TestVchanDomainZero(t *testing.T) {
	r := newTestResolver(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		uri  string
		want endpoint.Endpoint
	}{
		{"vchan://0/p", endpoint.VchanDirect{Domid: 0, Port: "p"}},
		{"vchan://00/p", endpoint.VchanDirect{Domid: 0, Port: "p"}},
		{"tls+vchan://0/secure?sni=srv.test", endpoint.TLS{ServerName: "srv.test", Inner: endpoint.VchanDirect{Domid: 0, Port: "secure"}}},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			_, err := resolver.ParseURI(tc.uri)
			require.NoError(t, err)
			eps, err := r.ResolveListen(ctx, tc.uri)
			require.NoError(t, err)
			assert.Equal(t, []endpoint.Endpoint{tc.want}, eps)

			eps, err = r.Resolve(ctx, tc.uri)
			assert.Nil(t, eps)
			require.ErrorIs(t, err, resolver.ErrMalformedURI)
			assert.EqualError(t, err, `resolver: URI "`+tc.uri+`": malformed URI: domain id 0 is only valid to listen on (it allocates a free one); dial the domain id the listener reports`)
		})
	}
}

// TestVchanDomainRange: domain ids are those of Xen's ordinary domains,
// 0-32751; DOMID_FIRST_RESERVED (32752) and above are malformed, to
// listen on as to dial.
func TestVchanDomainRange(t *testing.T) {
	r := newTestResolver(t, nil)
	ctx := context.Background()
	eps, err := r.Resolve(ctx, "vchan://32751/p")
	require.NoError(t, err)
	assert.Equal(t, []endpoint.Endpoint{endpoint.VchanDirect{Domid: 32751, Port: "p"}}, eps)
	for _, uri := range []string{"vchan://32752/p", "tls+vchan://32767/p", "vchan://65535/p"} {
		_, err := resolver.ParseURI(uri)
		assert.ErrorIs(t, err, resolver.ErrMalformedURI, uri)
		_, err = r.ResolveListen(ctx, uri)
		assert.ErrorIs(t, err, resolver.ErrMalformedURI, uri)
		assert.ErrorContains(t, err, "out of range (0-32751)", uri)
	}
}
