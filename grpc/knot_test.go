package conduitgrpc_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	gresolver "google.golang.org/grpc/resolver"

	conduitgrpc "github.com/conduit-go/conduit/grpc"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// srvTargetTimeout is the SRV target deadline of the tests' resolvers,
// a hang guard the fake clock runs in real time.
const srvTargetTimeout = 7 * time.Second

// srvClient is a channel to uri through a Builder whose resolver asks
// only the knot server, timed by clk.
func srvClient(t *testing.T, k *knot, clk *fakeClock, uri string, opts ...grpc.DialOption) (*grpc.ClientConn, *recordingBuilder) {
	t.Helper()
	b, err := conduitgrpc.NewBuilder(&conduitgrpc.Options{ResolverConfig: &resolver.Config{
		HostsFile: "-",
		DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{k.addr},
			// No cache: each refresh asks knot. (With the stub's cache, a
			// refresh that the jitter brings before the TTL's end is
			// answered from the cache, and the change is seen one
			// MinRefreshInterval later.) No stale answers either: a
			// failure is a failure.
			Cache: dnsstub.CacheConfig{MaxEntries: -1, StaleTTL: -1}},
		Clock:              clk,
		SRVTargetTimeout:   srvTargetTimeout,
		MinRefreshInterval: time.Second,
	}})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	rb := newRecordingBuilder(b)
	opts = append([]grpc.DialOption{
		grpc.WithResolvers(rb),
		grpc.WithContextDialer(b.Dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)
	conn, err := grpc.NewClient("conduit:///"+uri, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn, rb
}

// srvRecord is the knsupdate form of an SRV record of _grpc._tcp.svc.test.
func srvRecord(ttl int, prio, weight int, b *backend) string {
	return fmt.Sprintf("_grpc._tcp.svc.test. %d SRV %d %d %d %s.svc.test.", ttl, prio, weight, b.port(), b.name)
}

// hasAddrs reports whether a state holds exactly the backends' addresses.
func hasAddrs(bs ...*backend) func(gresolver.State) bool {
	var want []string
	for _, b := range bs {
		want = append(want, b.addr)
	}
	slices.Sort(want)
	return func(s gresolver.State) bool {
		got := addrs(s)
		slices.Sort(got)
		return slices.Equal(got, want)
	}
}

// assertRefreshDelay checks that the next refresh is due within the TTL
// and its ±10% jitter.
func assertRefreshDelay(t *testing.T, clk *fakeClock, ttl time.Duration) {
	t.Helper()
	d := clk.next(t)
	assert.GreaterOrEqual(t, d, ttl*9/10, "refresh sooner than the TTL less jitter")
	assert.LessOrEqual(t, d, ttl*11/10, "refresh later than the TTL plus jitter")
}

// TestSRVFollowsKnot: three grpc-go backends published by SRV records in
// a Knot DNS zone, changed at run time with knsupdate; the channel
// follows every change through the Builder's resolver and the SRV
// balancer.
func TestSRVFollowsKnot(t *testing.T) {
	b1 := startBackend(t, "b1", "127.0.0.1:0")
	b2 := startBackend(t, "b2", "127.0.0.1:0")
	b3 := startBackend(t, "b3", "127.0.0.1:0")
	all := []*backend{b1, b2, b3}
	k := startKnot(t, "svc.test",
		"b1 A 127.0.0.1", "b2 A 127.0.0.1", "b3 A 127.0.0.1",
		fmt.Sprintf("_grpc._tcp SRV 10 10 %d b1", b1.port()))
	clk := newFakeClock(srvTargetTimeout)
	conn, rb := srvClient(t, k, clk, "srv://_grpc._tcp.svc.test", grpc.WithDefaultServiceConfig(conduitgrpc.ServiceConfig))
	const ttl = 3 * time.Second

	// One backend: every RPC goes to it.
	for range 20 {
		require.NoError(t, check(context.Background(), conn, grpc.WaitForReady(true)))
	}
	assert.Equal(t, map[string]int64{"b1": 20, "b2": 0, "b3": 0}, counts(all...))

	t.Run("added backend is used after the TTL", func(t *testing.T) {
		k.update(t, "update add "+srvRecord(3, 10, 10, b2))
		assertRefreshDelay(t, clk, ttl)
		clk.fire(t)
		rpcUntil(t, conn, "an RPC to the added backend", func() bool { return b2.n.Load() > 0 })
	})

	t.Run("removed backend gets no RPC after the next refresh", func(t *testing.T) {
		k.update(t, "update delete "+srvRecord(3, 10, 10, b2))
		assertRefreshDelay(t, clk, ttl)
		clk.fire(t)
		rb.waitState(t, "b1 alone", hasAddrs(b1))
		resetCounts(all...)
		for range 200 {
			require.NoError(t, check(context.Background(), conn))
		}
		assert.Equal(t, map[string]int64{"b1": 200, "b2": 0, "b3": 0}, counts(all...))
	})

	t.Run("priorities fail over and back", func(t *testing.T) {
		k.update(t, "update add "+srvRecord(3, 20, 10, b3))
		clk.fire(t)
		s := rb.waitState(t, "b1 and b3", hasAddrs(b1, b3))
		prio := map[uint16]bool{}
		for _, e := range s.Endpoints {
			srv, ok := conduitgrpc.SRVOf(e)
			require.True(t, ok, "endpoint without its SRV record: %v", e)
			prio[srv.Priority] = true
			assert.Equal(t, "svc.test", conduitgrpc.LogicalNameOf(e))
		}
		assert.Equal(t, map[uint16]bool{10: true, 20: true}, prio)
		// Wait until the backup is connected too (it gets no RPC), then
		// check that the primary takes everything.
		resetCounts(all...)
		for range 100 {
			require.NoError(t, check(context.Background(), conn))
		}
		assert.Equal(t, map[string]int64{"b1": 100, "b2": 0, "b3": 0}, counts(all...))

		// The primary stops: its priority has no ready endpoint, the
		// backup takes the RPCs. No DNS change, no refresh.
		b1.stop()
		rpcUntil(t, conn, "an RPC to the backup", func() bool { return b3.n.Load() > 0 })
		resetCounts(all...)
		for range 50 {
			require.NoError(t, check(context.Background(), conn, grpc.WaitForReady(true)))
		}
		assert.Equal(t, map[string]int64{"b1": 0, "b2": 0, "b3": 50}, counts(all...))

		// The primary comes back: the RPCs go back to it.
		b1.restart(t)
		rpcUntil(t, conn, "an RPC to the restarted primary", func() bool { return b1.n.Load() > 0 })
		resetCounts(all...)
		for range 50 {
			require.NoError(t, check(context.Background(), conn))
		}
		assert.Equal(t, map[string]int64{"b1": 50, "b2": 0, "b3": 0}, counts(all...))
	})

	t.Run("weights spread 10000 RPCs", func(t *testing.T) {
		k.update(t,
			"update delete _grpc._tcp.svc.test. SRV",
			"update add "+srvRecord(3, 10, 60, b1),
			"update add "+srvRecord(3, 10, 30, b2),
			"update add "+srvRecord(3, 10, 10, b3))
		clk.fire(t)
		rb.waitState(t, "the three weighted backends", func(s gresolver.State) bool {
			w := map[string]uint16{}
			for _, e := range s.Endpoints {
				if srv, ok := conduitgrpc.SRVOf(e); ok {
					w[srv.Target] = srv.Weight
				}
			}
			return len(s.Endpoints) == 3 && w["b1.svc.test"] == 60 && w["b2.svc.test"] == 30 && w["b3.svc.test"] == 10
		})
		// Each backend ready (it has served an RPC), then count.
		rpcUntil(t, conn, "RPCs to all three", func() bool {
			return b1.n.Load() > 0 && b2.n.Load() > 0 && b3.n.Load() > 0
		})
		resetCounts(all...)
		const n = 10000
		for range n {
			require.NoError(t, check(context.Background(), conn))
		}
		got := counts(all...)
		for name, weight := range map[string]int64{"b1": 60, "b2": 30, "b3": 10} {
			want := n * weight / 100
			assert.InDelta(t, want, got[name], float64(want)*0.05, "%s: %d RPCs of %d for weight %d%%", name, got[name], n, weight)
		}
		t.Logf("10000 RPCs for weights 60/30/10: %v", got)
	})

	t.Run("TTL 0 is refreshed at the minimum interval", func(t *testing.T) {
		k.update(t,
			"update delete _grpc._tcp.svc.test. SRV",
			"update add "+srvRecord(0, 10, 10, b1))
		clk.fire(t)
		rb.waitState(t, "b1 alone", hasAddrs(b1))
		d := clk.next(t)
		assert.GreaterOrEqual(t, d, time.Second)
		assert.LessOrEqual(t, d, time.Second*11/10)
	})

	t.Run("DNS failure keeps the last endpoints", func(t *testing.T) {
		rb.drainErrs()
		k.proc.Signal(killSignal)
		<-k.proc.Exited()
		clk.fire(t)
		select {
		case err := <-rb.errs:
			t.Logf("reported: %v", err)
		case <-time.After(hangGuard):
			t.Fatal("hang guard: no error reported")
		}
		resetCounts(all...)
		for range 20 {
			require.NoError(t, check(context.Background(), conn))
		}
		assert.Equal(t, int64(20), b1.n.Load())
	})
}
