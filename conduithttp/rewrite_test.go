package conduithttp_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/conduithttp"
	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tlsflow"
)

// TestRewrite: plain http:// and https:// URLs whose host conduit's
// resolver rewrites (every *.internal host to a Unix socket), with
// HTTP/2 over the TLS one.
func TestRewrite(t *testing.T) {
	srvC, ca, _ := pki(t)
	dir := t.TempDir()
	plain, secure := filepath.Join(dir, "plain.sock"), filepath.Join(dir, "tls.sock")
	serve(t, srvC, "unix://"+plain, echoHandler)
	serve(t, srvC, "tls+unix://"+secure+"?sni=svc.test", echoHandler)

	r, err := resolver.New(&resolver.Config{HostsFile: "-", Rewrites: []resolver.Rewrite{{
		Suffix: "internal",
		Func: func(_ context.Context, q *resolver.RewriteRequest) ([]endpoint.Endpoint, error) {
			if q.TLS {
				return []endpoint.Endpoint{endpoint.TLS{ServerName: "svc.test", Inner: endpoint.Unix{Path: secure}}}, nil
			}
			return []endpoint.Endpoint{endpoint.Unix{Path: plain}}, nil
		},
	}}})
	require.NoError(t, err)
	defer r.Close()
	c := conduit.New(&conduit.Config{Resolver: r, TLS: conduit.TLSConfig{Client: &tlsflow.Config{RootCAs: ca.Pool}}})
	client := conduithttp.NewClient(c, &conduithttp.TransportOptions{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}})
	defer client.CloseIdleConnections()
	assert.Equal(t, "HTTP/1.1 /x host=api.internal tls=-", get(t, client, "http://api.internal/x"))
	assert.Equal(t, "HTTP/2.0 /y host=api.internal tls=h2 svc.test", get(t, client, "https://api.internal/y"))
}
