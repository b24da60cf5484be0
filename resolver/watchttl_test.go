package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/resolver"
)

// watchRefreshes watches uri and returns the delays of its first n
// refreshes, firing each (a single timer at a time: fakeTimers). check
// runs after each resolution, with how many there were so far.
func watchRefreshes(t *testing.T, r *resolver.URIResolver, timers *fakeTimers, uri string, n int, check func(resolutions int)) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := r.Watch(ctx, uri)
	require.NoError(t, err)
	u := recv(t, ch)
	require.NoError(t, u.Err)
	var ds []time.Duration
	for i := range n {
		ds = append(ds, timers.next(t)) // resolution i+1 is done
		if check != nil {
			check(i + 1)
		}
		timers.fire()
	}
	timers.next(t)
	cancel()
	for range ch {
	}
	return ds
}

// assertJittered checks that every delay is in [lo, hi] and that they
// are not all the same (jitter was applied).
func assertJittered(t *testing.T, ds []time.Duration, lo, hi time.Duration) {
	t.Helper()
	distinct := map[time.Duration]bool{}
	for i, d := range ds {
		assert.True(t, d >= lo && d <= hi, "refresh %d after %v, want [%v, %v]", i, d, lo, hi)
		distinct[d] = true
	}
	assert.Greater(t, len(distinct), len(ds)/2, "jittered: %v", ds)
}

// TestWatchTTLZero: an answer with TTL 0 ("do not cache", Consul's
// default) is refreshed every MinRefreshInterval (1 s by default), with
// 0-10% of jitter above it and never sooner, each refresh asking the
// server again. (It was refreshed every 30 s.)
func TestWatchTTLZero(t *testing.T) {
	for _, floor := range []time.Duration{0, 250 * time.Millisecond, 3 * time.Second} {
		t.Run(fmt.Sprint("MinRefreshInterval=", floor), func(t *testing.T) {
			want := floor
			if want == 0 {
				want = time.Second
			}
			z := startSRVZone(t, "_x._tcp.zero.test", 0, []srvTarget{{host: "t0", port: 80}})
			timers := newFakeTimers()
			r := newZoneResolver(t, z, func(c *resolver.Config) {
				c.Clock = timers
				c.Rand = rand.NewPCG(3, 4)
				c.MinRefreshInterval = floor
			})
			ds := watchRefreshes(t, r, timers, "tcp://t0.zero.test:80", 40, func(n int) {
				assert.Equal(t, n, z.count("t0", dns.TypeA), "one A query per resolution")
			})
			assertJittered(t, ds, want, want+want/10)
		})
	}
}

// TestWatchSRVTTLZero: the same through SRV records and a target with
// TTL 0, on the resolver's clock that also times the target deadline.
func TestWatchSRVTTLZero(t *testing.T) {
	z := startSRVZone(t, "_x._tcp.zero.test", 0, []srvTarget{{host: "t0", port: 80}})
	clock := newFakeClock()
	r := newZoneResolver(t, z, func(c *resolver.Config) { c.Clock = clock; c.Rand = rand.NewPCG(5, 6) })
	ds := watchClock(t, r, clock, z, "srv://_x._tcp.zero.test", 20)
	assertJittered(t, ds, time.Second, 1100*time.Millisecond)
}

// watchClock watches an SRV URI of z with one target on a fakeClock: each
// resolution arms the target's deadline (2 s) then the refresh timer,
// whose delays it returns after firing each.
func watchClock(t *testing.T, r *resolver.URIResolver, clock *fakeClock, z *srvZone, uri string, n int) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := r.Watch(ctx, uri)
	require.NoError(t, err)
	u := recv(t, ch)
	require.NoError(t, u.Err)
	require.Len(t, u.Endpoints, 1)
	var ds []time.Duration
	for i := 1; i <= n; i++ {
		require.Equal(t, 2*time.Second, clock.waitAsked(t, 2*i-1), "the target's deadline")
		d := clock.waitAsked(t, 2*i)
		ds = append(ds, d)
		if z != nil {
			assert.Equal(t, i, z.count(z.name, dns.TypeSRV), "one SRV query per resolution")
		}
		clock.advance(d)
	}
	cancel()
	for range ch {
	}
	return ds
}

// TestWatchPositiveTTL: a positive TTL still drives the refresh (±10%),
// a TTL below the minimum interval gives the minimum, and a lookup
// without TTLs (Config.LookupHost) RefreshInterval.
func TestWatchPositiveTTL(t *testing.T) {
	t.Run("TTL 60 s", func(t *testing.T) {
		z := startSRVZone(t, "_x._tcp.pos.test", 60, []srvTarget{{host: "t0", port: 80}})
		timers := newFakeTimers()
		r := newZoneResolver(t, z, func(c *resolver.Config) {
			c.Clock = timers
			c.Rand = rand.NewPCG(1, 1)
			c.DNS.Cache.MaxEntries = -1 // every refresh asks the server
		})
		ds := watchRefreshes(t, r, timers, "tcp://t0.pos.test:80", 20, func(n int) {
			assert.Equal(t, n, z.count("t0", dns.TypeA))
		})
		assertJittered(t, ds, 54*time.Second, 66*time.Second)
	})
	t.Run("TTL 2 s below a 5 s minimum", func(t *testing.T) {
		z := startSRVZone(t, "_x._tcp.pos.test", 2, []srvTarget{{host: "t0", port: 80}})
		timers := newFakeTimers()
		r := newZoneResolver(t, z, func(c *resolver.Config) {
			c.Clock = timers
			c.Rand = rand.NewPCG(1, 2)
			c.MinRefreshInterval = 5 * time.Second
			c.DNS.Cache.MaxEntries = -1
		})
		ds := watchRefreshes(t, r, timers, "tcp://t0.pos.test:80", 20, nil)
		assertJittered(t, ds, 5*time.Second, 5500*time.Millisecond)
	})
	t.Run("SRV TTL 300 s, target TTL 300 s", func(t *testing.T) {
		z := startSRVZone(t, "_x._tcp.pos.test", 300, []srvTarget{{host: "t0", port: 80}})
		clock := newFakeClock()
		r := newZoneResolver(t, z, func(c *resolver.Config) {
			c.Clock = clock
			c.Rand = rand.NewPCG(1, 3)
			c.DNS.Cache.MaxEntries = -1
		})
		ds := watchClock(t, r, clock, z, "srv://_x._tcp.pos.test", 10)
		assertJittered(t, ds, 270*time.Second, 330*time.Second)
	})
	t.Run("no TTL", func(t *testing.T) {
		timers := newFakeTimers()
		r := newTestResolver(t, &resolver.Config{Clock: timers, Rand: rand.NewPCG(2, 2)})
		ds := watchRefreshes(t, r, timers, "tcp://example.com:80", 20, nil)
		assertJittered(t, ds, 27*time.Second, 33*time.Second)
	})
	t.Run("no TTL, RefreshInterval below the minimum", func(t *testing.T) {
		timers := newFakeTimers()
		r := newTestResolver(t, &resolver.Config{Clock: timers, Rand: rand.NewPCG(2, 3),
			RefreshInterval: 2 * time.Second, MinRefreshInterval: 10 * time.Second})
		ds := watchRefreshes(t, r, timers, "tcp://example.com:80", 20, nil)
		assertJittered(t, ds, 10*time.Second, 11*time.Second)
	})
}

// TestWatchBackoffFromMinimum: after a failure, the backoff starts at
// MinRefreshInterval and doubles.
func TestWatchBackoffFromMinimum(t *testing.T) {
	timers := newFakeTimers()
	r := newTestResolver(t, &resolver.Config{
		Clock: timers, MinRefreshInterval: 3 * time.Second,
		LookupHost: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return nil, errors.New("backend exploded")
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := r.Watch(ctx, "tcp://down.test:80")
	require.NoError(t, err)
	require.Error(t, recv(t, ch).Err)
	for i, want := range []time.Duration{3 * time.Second, 6 * time.Second, 12 * time.Second} {
		d := timers.next(t)
		assert.True(t, d >= want*9/10 && d <= want*11/10, "backoff %d: %v, want %v ±10%%", i, d, want)
		timers.fire()
	}
	timers.next(t)
	cancel()
	for range ch {
	}
}
