package resolver_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// dnsmasqResolver returns a resolver asking the dnsmasq at addr, with
// configure applied to its Config.
func dnsmasqResolver(t *testing.T, addr netip.AddrPort, configure func(*resolver.Config)) *resolver.URIResolver {
	t.Helper()
	cfg := &resolver.Config{HostsFile: "-", ServicesFile: "-",
		DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{addr}, Timeout: 5 * time.Second}}
	if configure != nil {
		configure(cfg)
	}
	r, err := resolver.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

// TestDnsmasqManySRVTargets: dnsmasq serves an SRV set of 300 records
// (over TCP: it does not fit in UDP): 10 priority-0 targets without an
// address record (NXDOMAIN) and 290 priority-1 targets with one. The 32
// first in RFC 2782 order are used: the 10 dead ones are skipped and 22
// of priority 1 give the endpoints; 268 records are dropped.
func TestDnsmasqManySRVTargets(t *testing.T) {
	const dead, live = 10, 290
	args := []string{"--host-record=probe.many.test,127.0.0.1"}
	for i := range dead {
		args = append(args, fmt.Sprintf("--srv-host=_x._tcp.many.test,dead%d.many.test,80,0,1", i))
	}
	for i := range live {
		args = append(args,
			fmt.Sprintf("--srv-host=_x._tcp.many.test,t%d.many.test,%d,1,%d", i, 8000+i, 1+i%3),
			fmt.Sprintf("--host-record=t%d.many.test,127.0.%d.%d", i, 3+i/250, 1+i%250))
	}
	addr := testutil.Dnsmasq(t, "probe.many.test", args...)

	r := dnsmasqResolver(t, addr, func(c *resolver.Config) { c.Rand = rand.NewPCG(9, 9) })
	ctx := hangGuard(t)
	eps, err := r.Resolve(ctx, "srv://_x._tcp.many.test")
	require.NoError(t, err)
	require.Equal(t, 32-dead, len(eps), "%v", strs(eps))
	seen := map[string]bool{}
	for _, ep := range eps {
		tcp := ep.(endpoint.TCP)
		assert.True(t, strings.HasPrefix(tcp.Host, "t"), "a live target: %s", tcp)
		assert.False(t, seen[tcp.Host], "%s twice", tcp.Host)
		seen[tcp.Host] = true
	}
	assert.Equal(t, resolver.Stats{SRVAnswersCapped: 1, SRVTargetsDropped: dead + live - 32}, r.Stats())

	// Every target used (a cap above the answer): 290 endpoints, 8
	// lookups at a time.
	r = dnsmasqResolver(t, addr, func(c *resolver.Config) { c.MaxSRVTargets = 1000 })
	eps, err = r.Resolve(ctx, "srv://_x._tcp.many.test")
	require.NoError(t, err)
	assert.Equal(t, live, len(eps))
	assert.Equal(t, resolver.Stats{}, r.Stats())

	// A cap of 10 keeps only the dead targets: the error says so.
	r = dnsmasqResolver(t, addr, func(c *resolver.Config) { c.MaxSRVTargets = dead })
	_, err = r.Resolve(ctx, "srv://_x._tcp.many.test")
	require.Error(t, err)
	t.Log(err)
	assert.ErrorIs(t, err, resolver.ErrNotFound)
	assert.Contains(t, err.Error(), "no SRV target resolved (10 tried, 290 more beyond MaxSRVTargets not tried)")
}

// TestDnsmasqTTLZero: dnsmasq with --local-ttl=0 answers with TTL 0, as
// Consul does by default; Watch refreshes every MinRefreshInterval, an
// address and an SRV URI alike.
func TestDnsmasqTTLZero(t *testing.T) {
	addr := testutil.Dnsmasq(t, "zero.test", "--local-ttl=0",
		"--host-record=zero.test,127.0.0.8", "--srv-host=_x._tcp.zero.test,zero.test,8080")
	stub, err := dnsstub.New(&dnsstub.Config{Nameservers: []netip.AddrPort{addr}, Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer stub.Close()
	_, ttl, err := stub.LookupHostTTL(context.Background(), "zero.test")
	require.NoError(t, err)
	assert.Equal(t, time.Duration(0), ttl, "dnsmasq serves TTL 0")
	srvs, err := stub.LookupSRV(context.Background(), "_x._tcp.zero.test")
	require.NoError(t, err)
	require.Len(t, srvs, 1)
	assert.Equal(t, time.Duration(0), srvs[0].TTL)

	t.Run("tcp", func(t *testing.T) {
		timers := newFakeTimers()
		r := dnsmasqResolver(t, addr, func(c *resolver.Config) { c.Clock = timers; c.Rand = rand.NewPCG(1, 9) })
		ds := watchRefreshes(t, r, timers, "tcp://zero.test:80", 10, nil)
		assertJittered(t, ds, time.Second, 1100*time.Millisecond)
	})
	t.Run("srv", func(t *testing.T) {
		clock := newFakeClock()
		r := dnsmasqResolver(t, addr, func(c *resolver.Config) {
			c.Clock = clock
			c.Rand = rand.NewPCG(2, 9)
			c.MinRefreshInterval = 5 * time.Second
		})
		ds := watchClock(t, r, clock, nil, "srv://_x._tcp.zero.test", 10)
		assertJittered(t, ds, 5*time.Second, 5500*time.Millisecond)
	})
}

// TestDnsmasqSilentUpstream: dnsmasq forwards the names under
// silent.test to an upstream that never answers (a socket the test binds
// and never reads), so three priority-0 targets get no answer, as from
// a dead server; the priority-1 target, local to dnsmasq, resolves, and
// Resolve gives it when the deadlines fire (the injected clock).
func TestDnsmasqSilentUpstream(t *testing.T) {
	blackhole, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer blackhole.Close()
	port := blackhole.LocalAddr().(*net.UDPAddr).Port
	addr := testutil.Dnsmasq(t, "ok.mixed.test",
		fmt.Sprintf("--server=/silent.test/127.0.0.1#%d", port),
		"--host-record=ok.mixed.test,127.0.0.12",
		"--srv-host=_x._tcp.mixed.test,h1.silent.test,80,0",
		"--srv-host=_x._tcp.mixed.test,h2.silent.test,80,0",
		"--srv-host=_x._tcp.mixed.test,h3.silent.test,80,0",
		"--srv-host=_x._tcp.mixed.test,ok.mixed.test,8080,1",
		"--srv-host=_x._tcp.mixed.test,h4.silent.test,80,2",
	)
	clock := newFakeClock()
	r := dnsmasqResolver(t, addr, func(c *resolver.Config) {
		c.Clock = clock
		c.SRVConcurrency = 4
		c.DNS.Timeout = time.Minute // only the resolver's deadlines end the silent lookups
	})
	done := make(chan error, 1)
	var eps []endpoint.Endpoint
	go func() {
		var err error
		eps, err = r.Resolve(hangGuard(t), "srv://_x._tcp.mixed.test")
		done <- err
	}()
	clock.waitAsked(t, 5) // h4's deadline: ok's worker is free, ok resolved
	select {
	case err := <-done:
		t.Fatalf("Resolve returned before the deadlines: %v", err)
	default:
	}
	assert.Equal(t, 4, clock.advance(2*time.Second), "the silent targets' deadlines fire; ok's was stopped when it resolved")
	require.NoError(t, <-done)
	assert.Equal(t, []string{"tcp://ok.mixed.test=127.0.0.12:8080"}, strs(eps))
	assert.Equal(t, uint64(4), r.Stats().SRVTargetTimeouts)
}
