package conduitgrpc_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	conduitgrpc "github.com/conduit-go/conduit/grpc"
	"github.com/conduit-go/conduit/resolver"
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
