package conduitgrpc_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/conduit-go/conduit/conduit"
	conduitgrpc "github.com/conduit-go/conduit/grpc"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tlsflow"
)

// Unary RPCs on loopback, one at a time: ours through the Builder's
// resolver and dialer (conduit's TCP flow), the peer through gRPC's
// passthrough resolver and its own dialer. Compare with
// internal/benchratio:
//
//	cd grpc && go test -run '^$' -bench 'Unary' -count 5 . | go run github.com/conduit-go/conduit/internal/benchratio
func BenchmarkUnaryRPC(b *testing.B) {
	be := startBackend(b, "bench", "127.0.0.1:0")
	b.Run("ours", func(b *testing.B) {
		benchRPCs(b, builderConn(b, "tcp://"+be.addr, "pick_first"))
	})
	b.Run("peer", func(b *testing.B) {
		conn, err := grpc.NewClient("passthrough:///"+be.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		benchRPCs(b, conn)
	})
}

// The SRV balancer's picker against round_robin's, both over the
// Builder's resolver and dialer.
func BenchmarkUnaryRPCBalancer(b *testing.B) {
	be := startBackend(b, "bench", "127.0.0.1:0")
	b.Run("ours", func(b *testing.B) { benchRPCs(b, builderConn(b, "tcp://"+be.addr, conduitgrpc.BalancerName)) })
	b.Run("peer", func(b *testing.B) { benchRPCs(b, builderConn(b, "tcp://"+be.addr, "round_robin")) })
}

func builderConn(b *testing.B, uri, policy string) *grpc.ClientConn {
	bl, err := conduitgrpc.NewBuilder(&conduitgrpc.Options{ResolverConfig: &resolver.Config{HostsFile: "-"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bl.Close() })
	conn, err := grpc.NewClient("conduit:///"+uri, append(bl.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, policy)))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

func benchRPCs(b *testing.B, conn *grpc.ClientConn) {
	ctx := context.Background()
	if err := check(ctx, conn, grpc.WaitForReady(true)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := check(ctx, conn); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rpcs/s")
}

// TLS: ours in both modes (gRPC's credentials over conduit's raw flow,
// the default; conduit's TLS transport with Credentials) against gRPC's
// passthrough with its own TLS.
func BenchmarkUnaryRPCTLS(b *testing.B) {
	pki := newPKI(b)
	be := startBackend(b, "tls", "127.0.0.1:0", pki.serverCreds())
	uri := "tls://" + be.addr + "?sni=svc.test"
	tlsConn := func(b *testing.B, opts conduitgrpc.Options, creds credentials.TransportCredentials) *grpc.ClientConn {
		opts.ResolverConfig = &resolver.Config{HostsFile: "-"}
		bl, err := conduitgrpc.NewBuilder(&opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { bl.Close() })
		conn, err := grpc.NewClient("conduit:///"+uri, append(bl.DialOptions(), grpc.WithTransportCredentials(creds))...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		return conn
	}
	peer := func(b *testing.B) {
		conn, err := grpc.NewClient("passthrough:///"+be.addr, grpc.WithTransportCredentials(
			credentials.NewTLS(&tls.Config{RootCAs: pki.ca.Pool, ServerName: "svc.test"})))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		benchRPCs(b, conn)
	}
	b.Run("bygrpc", func(b *testing.B) {
		b.Run("ours", func(b *testing.B) { benchRPCs(b, tlsConn(b, conduitgrpc.Options{}, pki.clientCreds())) })
		b.Run("peer", peer)
	})
	b.Run("byconduit", func(b *testing.B) {
		b.Run("ours", func(b *testing.B) {
			c := conduit.New(&conduit.Config{TLS: conduit.TLSConfig{Client: &tlsflow.Config{RootCAs: pki.ca.Pool, NextProtos: []string{"h2"}}}})
			defer c.Close()
			benchRPCs(b, tlsConn(b, conduitgrpc.Options{TLS: conduitgrpc.TLSByConduit, Conduit: c}, conduitgrpc.Credentials()))
		})
		b.Run("peer", peer)
	})
}
