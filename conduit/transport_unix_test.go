package conduit

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

// abstractName is an abstract socket name no other test uses.
func abstractName(t *testing.T, what string) string {
	return fmt.Sprintf("@conduit-test-%d-%s-%s", os.Getpid(), t.Name(), what)
}

// requireAbstractRefused checks the error of a dial or listen on an
// abstract Unix endpoint: endpoint.ErrInvalid, saying why.
func requireAbstractRefused(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, endpoint.ErrInvalid)
	assert.Contains(t, err.Error(), "abstract sockets are not supported")
}

// TestUnixTransportRefusesAbstract: abstract sockets have no URI form
// (docs/uris.md), so a Unix endpoint "@name" is refused on dial and
// listen, by the transport itself and through a Conduit, even while an
// abstract listener of that name exists.
func TestUnixTransportRefusesAbstract(t *testing.T) {
	ctx := testCtx(t)
	// A real abstract listener: without the refusal the dials below
	// would reach it.
	name := abstractName(t, "served")
	peer, err := net.Listen("unix", name)
	require.NoError(t, err)
	defer peer.Close()
	served := endpoint.Unix{Path: name}
	fresh := endpoint.Unix{Path: abstractName(t, "fresh")}

	t.Run("transport", func(t *testing.T) {
		for _, tr := range []*UnixTransport{{}, {RemoveStale: true}} {
			c, err := tr.Dial(ctx, served, DialOptions{})
			if c != nil {
				c.Close()
			}
			requireAbstractRefused(t, err)
			for _, ep := range []endpoint.Unix{served, fresh} {
				l, err := tr.Listen(ctx, ep, ListenOptions{})
				if l != nil {
					l.Close()
				}
				requireAbstractRefused(t, err)
			}
		}
	})

	// An empty path (which Linux would autobind to an abstract name) and
	// a relative one are refused the same way, with their own message.
	t.Run("not absolute", func(t *testing.T) {
		for _, ep := range []endpoint.Unix{{}, {Path: "rel.sock"}} {
			tr := &UnixTransport{RemoveStale: true}
			c, err := tr.Dial(ctx, ep, DialOptions{})
			if c != nil {
				c.Close()
			}
			assert.ErrorIs(t, err, endpoint.ErrInvalid, "dial %q", ep.Path)
			l, err := tr.Listen(ctx, ep, ListenOptions{})
			if l != nil {
				l.Close()
			}
			assert.ErrorIs(t, err, endpoint.ErrInvalid, "listen %q", ep.Path)
		}
	})

	t.Run("conduit", func(t *testing.T) {
		// A resolver that hands out abstract endpoints, bare and under
		// TLS, as a custom resolver could.
		eps := map[string]endpoint.Endpoint{
			"abs://served":     served,
			"abs://fresh":      fresh,
			"tls+abs://served": endpoint.TLS{ServerName: testServerName, Inner: served},
			"tls+abs://fresh":  endpoint.TLS{ServerName: testServerName, Inner: fresh},
		}
		c := New(&Config{TLS: testPKI(t), Resolver: resolver.ResolverFunc(func(_ context.Context, uri string) ([]endpoint.Endpoint, error) {
			return []endpoint.Endpoint{eps[uri]}, nil
		})})
		defer c.Close()
		for _, uri := range []string{"abs://served", "tls+abs://served"} {
			f, err := c.Dial(ctx, uri)
			if f != nil {
				f.Close()
			}
			requireAbstractRefused(t, err)
		}
		f, err := c.DialEndpoints(ctx, []endpoint.Endpoint{served})
		if f != nil {
			f.Close()
		}
		requireAbstractRefused(t, err)
		for uri := range eps {
			l, err := c.Listen(ctx, uri)
			if l != nil {
				l.Close()
			}
			requireAbstractRefused(t, err)
		}
	})
}
