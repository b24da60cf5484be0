package resolver_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

// goResolver is Go's resolver (PreferGo) asking server only.
func goResolver(server netip.AddrPort) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server.String())
	}}
}

// goSRV is the peer of an SRV resolution: net.Resolver's LookupSRV, then
// LookupNetIP for each target in its order, one after another, as a
// program without conduit would write it; targetTimeout > 0 bounds each
// target lookup as SRVTargetTimeout does ours.
func goSRV(ctx context.Context, res *net.Resolver, name string, targetTimeout time.Duration) ([]endpoint.Endpoint, error) {
	_, srvs, err := res.LookupSRV(ctx, "", "", name)
	if err != nil {
		return nil, err
	}
	var eps []endpoint.Endpoint
	for _, s := range srvs {
		tctx, cancel := ctx, context.CancelFunc(func() {})
		if targetTimeout > 0 {
			tctx, cancel = context.WithTimeout(ctx, targetTimeout)
		}
		addrs, err := res.LookupNetIP(tctx, "ip", s.Target)
		cancel()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			eps = append(eps, endpoint.TCP{Host: s.Target, Addr: netip.AddrPortFrom(a.Unmap(), s.Port)})
		}
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("no target of %s resolved", name)
	}
	return eps, nil
}

// BenchmarkSRVTargets resolves an SRV set of 200 targets (1 SRV query
// over UDP then TCP, then an A and an AAAA query per target) against the
// in-process server, answering at once (loopback) or after 1 ms (rtt1ms,
// a recursive resolver's round trip): ours (MaxSRVTargets 200, caches
// off: the same queries) against net.Resolver's LookupSRV and a
// LookupNetIP loop. queries/op is what the server received.
func BenchmarkSRVTargets(b *testing.B) {
	const n = 200
	var targets []srvTarget
	for i := range n {
		targets = append(targets, srvTarget{host: fmt.Sprint("t", i), port: 80, prio: uint16(i % 4), weight: 1})
	}
	for _, delay := range []time.Duration{0, time.Millisecond} {
		name := "loopback"
		if delay > 0 {
			name = fmt.Sprintf("rtt%v", delay)
		}
		b.Run(name, func(b *testing.B) {
			run := func(b *testing.B, setup func(z *srvZone) func() ([]endpoint.Endpoint, error)) {
				z := startSRVZone(b, "_x._tcp.bench.test", 60, targets)
				z.setDelay(delay)
				resolve := setup(z)
				b.ReportAllocs()
				for b.Loop() {
					eps, err := resolve()
					if err != nil || len(eps) != n {
						b.Fatal(len(eps), err)
					}
				}
				total, _, _, _ := z.stats()
				b.ReportMetric(float64(total)/float64(b.N), "queries/op")
			}
			b.Run("ours", func(b *testing.B) {
				run(b, func(z *srvZone) func() ([]endpoint.Endpoint, error) {
					r := newZoneResolver(b, z, func(c *resolver.Config) {
						c.MaxSRVTargets = n
						c.DNS.Cache.MaxEntries = -1
						c.DNS.Timeout = 5 * time.Second
					})
					return func() ([]endpoint.Endpoint, error) {
						return r.Resolve(context.Background(), "srv://_x._tcp.bench.test")
					}
				})
			})
			b.Run("peer", func(b *testing.B) {
				run(b, func(z *srvZone) func() ([]endpoint.Endpoint, error) {
					res := goResolver(z.addr)
					return func() ([]endpoint.Endpoint, error) {
						return goSRV(context.Background(), res, "_x._tcp.bench.test.", 0)
					}
				})
			})
		})
	}
}

// BenchmarkSRVSilentTargets is the hostile answer: three
// priority-0 targets whose queries are never answered and one healthy
// priority-1 target. Ours looks the four up at once, each within its 2 s
// deadline (SRVTargetTimeout); the peer, net.Resolver's loop, waits 2 s
// for each silent target in turn. Each op takes seconds: run it with
// -benchtime=1x or 2x.
func BenchmarkSRVSilentTargets(b *testing.B) {
	targets := []srvTarget{
		{host: "h1", port: 80, hangIt: true},
		{host: "h2", port: 80, hangIt: true},
		{host: "h3", port: 80, hangIt: true},
		{host: "ok", port: 8080, prio: 1},
	}
	run := func(b *testing.B, setup func(z *srvZone) func() ([]endpoint.Endpoint, error)) {
		z := startSRVZone(b, "_x._tcp.silent.test", 60, targets)
		resolve := setup(z)
		for b.Loop() {
			eps, err := resolve()
			if err != nil || len(eps) != 1 {
				b.Fatal(eps, err)
			}
		}
		total, _, _, _ := z.stats()
		b.ReportMetric(float64(total)/float64(b.N), "queries/op")
	}
	b.Run("ours", func(b *testing.B) {
		run(b, func(z *srvZone) func() ([]endpoint.Endpoint, error) {
			// The command's stub settings: 2 s per server, 2 attempts.
			r := newZoneResolver(b, z, func(c *resolver.Config) { c.DNS.Timeout = 2 * time.Second })
			return func() ([]endpoint.Endpoint, error) {
				return r.Resolve(context.Background(), "srv://_x._tcp.silent.test")
			}
		})
	})
	b.Run("peer", func(b *testing.B) {
		run(b, func(z *srvZone) func() ([]endpoint.Endpoint, error) {
			res := goResolver(z.addr)
			return func() ([]endpoint.Endpoint, error) {
				return goSRV(context.Background(), res, "_x._tcp.silent.test.", 2*time.Second)
			}
		})
	})
}
