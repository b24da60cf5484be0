package conduitgrpc_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/conduit-go/conduit/conduit"
	conduitgrpc "github.com/conduit-go/conduit/grpc"
	"github.com/conduit-go/conduit/internal/devpki"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tlsflow"
	"github.com/conduit-go/conduit/vchan"
)

// testPKI is a CA and a server certificate for svc.test and 127.0.0.1.
type testPKI struct {
	ca   *devpki.Authority
	cert tls.Certificate
}

func newPKI(t testing.TB) testPKI {
	t.Helper()
	ca, err := devpki.NewAuthority("conduitgrpc test CA")
	require.NoError(t, err)
	cert, err := ca.Issue("svc.test", "127.0.0.1")
	require.NoError(t, err)
	return testPKI{ca, cert}
}

func (p testPKI) serverCreds() grpc.ServerOption {
	return grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.cert}}))
}

func (p testPKI) clientCreds() credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{RootCAs: p.ca.Pool})
}

// serveOn serves a backend on a conduit listener for uri and returns
// the URI that dials it.
func serveOn(t *testing.T, c *conduit.Conduit, uri string, opts ...grpc.ServerOption) (*backend, string) {
	t.Helper()
	ln, err := c.Listen(context.Background(), uri)
	require.NoError(t, err)
	b := &backend{name: uri, addr: ln.URI()}
	b.serve(ln, opts...)
	t.Cleanup(b.stop)
	return b, ln.URI()
}

// client is a channel to the conduit URI through a Builder over c.
func client(t *testing.T, opts conduitgrpc.Options, uri string, dopts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if opts.ResolverConfig == nil {
		opts.ResolverConfig = &resolver.Config{HostsFile: "-"}
	}
	b, err := conduitgrpc.NewBuilder(&opts)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	conn, err := grpc.NewClient("conduit:///"+uri, append(b.DialOptions(), dopts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestTransports: grpc-go servers on a Unix socket, vchan and TLS over
// vchan, reached through the Builder's dialer (gRPC cannot dial them).
func TestTransports(t *testing.T) {
	pki := newPKI(t)
	c := conduit.New(&conduit.Config{Vchan: &vchan.Config{Dir: t.TempDir()}})
	defer c.Close()
	for _, tc := range []struct {
		name, listen, dial string
		tls                bool
	}{
		{"unix", "unix://" + filepath.Join(t.TempDir(), "grpc.sock"), "", false},
		{"vchan", "vchan://0/grpc", "", false},
		{"tls+vchan", "vchan://0/grpcs", "tls+vchan://%s?sni=svc.test", true},
		{"tls+unix", "unix://" + filepath.Join(t.TempDir(), "grpcs.sock"), "tls+unix://%s?sni=svc.test", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sopts []grpc.ServerOption
			creds := insecure.NewCredentials()
			if tc.tls {
				sopts = append(sopts, pki.serverCreds())
				creds = pki.clientCreds()
			}
			b, uri := serveOn(t, c, tc.listen, sopts...)
			if tc.dial != "" {
				_, rest, _ := strings.Cut(uri, "://")
				uri = fmt.Sprintf(tc.dial, rest)
			}
			conn := client(t, conduitgrpc.Options{Conduit: c}, uri, grpc.WithTransportCredentials(creds))
			var p peer.Peer
			for range 10 {
				require.NoError(t, check(context.Background(), conn, grpc.WaitForReady(true), grpc.Peer(&p)))
			}
			assert.Equal(t, int64(10), b.n.Load())
			if tc.tls {
				info, ok := p.AuthInfo.(credentials.TLSInfo)
				require.True(t, ok, "%T", p.AuthInfo)
				assert.Equal(t, "h2", info.State.NegotiatedProtocol)
				assert.Equal(t, "svc.test", info.State.ServerName)
			}
		})
	}
}

// TestTLS: the two ways of running TLS, each verifying the logical name.
func TestTLS(t *testing.T) {
	pki := newPKI(t)
	b := startBackend(t, "tls", "127.0.0.1:0", pki.serverCreds())
	good := "tls://" + b.addr + "?sni=svc.test"
	bad := "tls://" + b.addr + "?sni=other.test"
	conduitTLS := func(protos ...string) *conduit.Conduit {
		c := conduit.New(&conduit.Config{TLS: conduit.TLSConfig{Client: &tlsflow.Config{RootCAs: pki.ca.Pool, NextProtos: protos}}})
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("by gRPC", func(t *testing.T) {
		var p peer.Peer
		conn := client(t, conduitgrpc.Options{}, good, grpc.WithTransportCredentials(pki.clientCreds()))
		require.NoError(t, check(context.Background(), conn, grpc.WaitForReady(true), grpc.Peer(&p)))
		info := p.AuthInfo.(credentials.TLSInfo)
		assert.Equal(t, "svc.test", info.State.ServerName)
		assert.Equal(t, "h2", info.State.NegotiatedProtocol)

		conn = client(t, conduitgrpc.Options{}, bad, grpc.WithTransportCredentials(pki.clientCreds()))
		err := check(context.Background(), conn)
		assert.ErrorContains(t, err, "other.test")
	})

	t.Run("by conduit", func(t *testing.T) {
		var p peer.Peer
		conn := client(t, conduitgrpc.Options{TLS: conduitgrpc.TLSByConduit, Conduit: conduitTLS("h2")}, good,
			grpc.WithTransportCredentials(conduitgrpc.Credentials()))
		require.NoError(t, check(context.Background(), conn, grpc.WaitForReady(true), grpc.Peer(&p)))
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		require.True(t, ok, "%T", p.AuthInfo)
		assert.Equal(t, credentials.PrivacyAndIntegrity, info.SecurityLevel)
		assert.Equal(t, "h2", info.State.NegotiatedProtocol)

		conn = client(t, conduitgrpc.Options{TLS: conduitgrpc.TLSByConduit, Conduit: conduitTLS("h2")}, bad,
			grpc.WithTransportCredentials(conduitgrpc.Credentials()))
		assert.ErrorContains(t, check(context.Background(), conn), "other.test")

		// Without h2 the gRPC server refuses the handshake (grpc-go
		// enforces ALPN), and the credentials would have too.
		conn = client(t, conduitgrpc.Options{TLS: conduitgrpc.TLSByConduit, Conduit: conduitTLS()}, good,
			grpc.WithTransportCredentials(conduitgrpc.Credentials()))
		assert.Error(t, check(context.Background(), conn))

		// A plain flow under Credentials: refused before any RPC.
		plain := startBackend(t, "plain", "127.0.0.1:0")
		conn = client(t, conduitgrpc.Options{TLS: conduitgrpc.TLSByConduit}, "tcp://"+plain.addr,
			grpc.WithTransportCredentials(conduitgrpc.Credentials()))
		assert.ErrorContains(t, check(context.Background(), conn), "is not TLS")
		assert.Zero(t, plain.n.Load())
	})
}

// TestStandardBalancers: round_robin and pick_first work with the
// resolver, and the SRV balancer is a round robin without SRV records.
func TestStandardBalancers(t *testing.T) {
	var bs []*backend
	first := startBackend(t, "b1", "127.0.0.1:0")
	port := netip.MustParseAddrPort(first.addr).Port()
	bs = append(bs, first)
	for i := 2; i <= 3; i++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, port))
		if err != nil {
			t.Skipf("127.0.0.%d:%d is taken: %v", i, port, err)
		}
		b := &backend{name: fmt.Sprintf("b%d", i), addr: ln.Addr().String()}
		b.serve(ln)
		t.Cleanup(b.stop)
		bs = append(bs, b)
	}
	hosts := map[string][]netip.Addr{"svc.test": {
		netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}}
	uri := fmt.Sprintf("tcp://svc.test:%d", port)
	for _, policy := range []string{"round_robin", conduitgrpc.BalancerName, "pick_first"} {
		t.Run(policy, func(t *testing.T) {
			conn := client(t, conduitgrpc.Options{ResolverConfig: &resolver.Config{HostsFile: "-", Hosts: hosts}}, uri,
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, policy)))
			if policy != "pick_first" {
				rpcUntil(t, conn, "RPCs to every backend", func() bool {
					return bs[0].n.Load() > 0 && bs[1].n.Load() > 0 && bs[2].n.Load() > 0
				})
			}
			for range 30 { // past the first moments of the connections
				require.NoError(t, check(context.Background(), conn))
			}
			resetCounts(bs...)
			for range 30 {
				require.NoError(t, check(context.Background(), conn, grpc.WaitForReady(true)))
			}
			got := counts(bs...)
			if policy == "pick_first" {
				assert.ElementsMatch(t, []int64{30, 0, 0}, []int64{got["b1"], got["b2"], got["b3"]})
			} else {
				assert.Equal(t, map[string]int64{"b1": 10, "b2": 10, "b3": 10}, got)
			}
		})
	}
}

// TestDialZone: an address with an IPv6 zone reaches conduit as a URI
// it parses (the dial itself is refused: nothing listens there).
func TestDialZone(t *testing.T) {
	c := conduit.New(nil)
	defer c.Close()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_, err = conduitgrpc.Dialer(c)(context.Background(), "[fe80::1%lo]:"+port)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "malformed")
}
