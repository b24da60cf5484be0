package resolver_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// newZoneResolver returns a resolver whose DNS stub asks z, with a stub
// timeout of a minute (so that only the resolver's own deadlines, or a
// test's hang guard, end a lookup of a name z never answers), and
// configure applied to its Config.
func newZoneResolver(t testing.TB, z *srvZone, configure func(*resolver.Config)) *resolver.URIResolver {
	t.Helper()
	cfg := &resolver.Config{
		HostsFile: "-", ServicesFile: "-",
		DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{z.addr}, Timeout: time.Minute},
	}
	if configure != nil {
		configure(cfg)
	}
	r, err := resolver.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

// hangGuard is a context that ends a test that would otherwise hang; no
// result depends on it.
func hangGuard(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// hostIndex returns N of the endpoint tcp://tN.ZONE=…, and the host.
func hostIndex(t *testing.T, ep endpoint.Endpoint) (int, string) {
	t.Helper()
	tcp, ok := ep.(endpoint.TCP)
	require.True(t, ok, "%v", ep)
	label, _, _ := strings.Cut(tcp.Host, ".")
	n, err := strconv.Atoi(strings.TrimPrefix(label, "t"))
	require.NoError(t, err, tcp.Host)
	return n, tcp.Host
}

// TestSRVTargetsInParallel: the targets of one answer are looked up
// SRVConcurrency at a time, never more. The server holds the address
// queries until 16 (8 targets × A and AAAA) are outstanding, so a
// sequential resolver never gets an answer (the hang guard ends it) and
// an unbounded one has more outstanding; the dial order is still by
// priority.
func TestSRVTargetsInParallel(t *testing.T) {
	for _, bound := range []int{0, 3} { // 0: the default, 8
		t.Run(fmt.Sprint("SRVConcurrency=", bound), func(t *testing.T) {
			want := bound
			if want == 0 {
				want = 8
			}
			const n = 100
			var targets []srvTarget
			for i := range n {
				targets = append(targets, srvTarget{host: fmt.Sprint("t", i), port: 80, prio: uint16(i % 5), weight: 1})
			}
			z := startSRVZone(t, "_x._tcp.par.test", 60, targets)
			z.holdUntil(2*want, 2*n)
			r := newZoneResolver(t, z, func(c *resolver.Config) {
				c.MaxSRVTargets = n
				c.SRVConcurrency = bound
				c.SRVTargetTimeout = time.Hour // none may expire here
			})
			eps, err := r.Resolve(hangGuard(t), "srv://_x._tcp.par.test")
			require.NoError(t, err, "%s", z)
			require.Equal(t, n, len(eps))
			_, srvQ, addrQ, maxIn := z.stats()
			t.Log(z)
			assert.Equal(t, 2*n, addrQ, "one A and one AAAA query per target")
			assert.Equal(t, 2, srvQ, "the SRV query over UDP (truncated), then TCP")
			assert.Equal(t, 2*want, maxIn, "%d targets looked up at once, never more", want)
			prio := -1
			for _, ep := range eps {
				i, host := hostIndex(t, ep)
				require.GreaterOrEqual(t, i%5, prio, "dial order by priority: %s after priority %d", host, prio)
				prio = i % 5
			}
		})
	}
}

// TestSRVTargetsCapped: of an answer with 1 500 targets, the first 32 in
// RFC 2782 order are looked up (all of the best priority first), the
// others dropped and counted; the server sees 64 address queries, not
// 3 000.
func TestSRVTargetsCapped(t *testing.T) {
	const n, best = 1500, 20
	var targets []srvTarget
	for i := range n {
		tg := srvTarget{host: fmt.Sprint("t", i), port: 80, prio: 10, weight: uint16(1 + i%7)}
		if i >= n-best {
			tg.prio = 5 // last in the answer, first in dial order
		}
		targets = append(targets, tg)
	}
	z := startSRVZone(t, "_x._tcp.big.test", 60, targets)
	var logs bytes.Buffer
	var logMu sync.Mutex
	r := newZoneResolver(t, z, func(c *resolver.Config) {
		c.Logger = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	eps, err := r.Resolve(hangGuard(t), "srv://_x._tcp.big.test")
	require.NoError(t, err)
	t.Log(z)
	_, srvQ, addrQ, _ := z.stats()
	assert.Equal(t, 2, srvQ, "the SRV query over UDP (truncated), then TCP")
	assert.Equal(t, 2*32, addrQ, "32 targets looked up")
	require.Equal(t, 32, len(eps), "one address per target")
	seen := map[string]bool{}
	for k, ep := range eps {
		i, host := hostIndex(t, ep)
		assert.False(t, seen[host], "target %s twice", host)
		seen[host] = true
		if k < best {
			assert.GreaterOrEqual(t, i, n-best, "the priority-5 targets first: %s at %d", host, k)
		} else {
			assert.Less(t, i, n-best, "then priority 10: %s at %d", host, k)
		}
	}
	assert.Equal(t, resolver.Stats{SRVAnswersCapped: 1, SRVTargetsDropped: n - 32}, r.Stats())
	logMu.Lock()
	defer logMu.Unlock()
	assert.Contains(t, logs.String(), "records=1500 kept=32 dropped=1468", logs.String())

	// A smaller cap, a larger one: the count follows.
	for _, limit := range []int{5, 200} {
		z := startSRVZone(t, "_x._tcp.big.test", 60, targets)
		r := newZoneResolver(t, z, func(c *resolver.Config) { c.MaxSRVTargets = limit })
		eps, err := r.Resolve(hangGuard(t), "srv://_x._tcp.big.test")
		require.NoError(t, err)
		_, _, addrQ, _ := z.stats()
		assert.Equal(t, 2*limit, addrQ, "MaxSRVTargets=%d", limit)
		assert.Equal(t, limit, len(eps))
		assert.Equal(t, uint64(n-limit), r.Stats().SRVTargetsDropped)
	}
}

// lockedWriter serialises writes to a buffer read by the test.
type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestSRVLowerPriorityWhileHigherHang: three priority-0 targets whose
// queries are never answered, a healthy priority-1 target, and a silent
// priority-2 one, four looked up at once (SRVConcurrency 4). The healthy
// target resolves while the others wait; its worker then takes the
// priority-2 target (arming its deadline: the test's sign that the
// healthy lookup is over); when the deadlines fire (the injected clock,
// advanced by the test), Resolve gives the priority-1 endpoint.
// Sequentially, the first silent target would hold the lookup until the
// stub's one-minute timeout and the others would not be asked.
func TestSRVLowerPriorityWhileHigherHang(t *testing.T) {
	z := startSRVZone(t, "_x._tcp.hang.test", 60, []srvTarget{
		{host: "h1", port: 80, hangIt: true},
		{host: "h2", port: 80, hangIt: true},
		{host: "h3", port: 80, hangIt: true},
		{host: "ok", port: 8080, prio: 1},
		{host: "h4", port: 80, prio: 2, hangIt: true},
	})
	clock := newFakeClock()
	r := newZoneResolver(t, z, func(c *resolver.Config) { c.Clock = clock; c.SRVConcurrency = 4 })
	type result struct {
		eps []endpoint.Endpoint
		err error
	}
	done := make(chan result, 1)
	go func() {
		eps, err := r.Resolve(hangGuard(t), "srv://_x._tcp.hang.test")
		done <- result{eps, err}
	}()

	clock.waitAsked(t, 5) // the fifth target's deadline: one worker is free
	z.waitFor(t, "every target asked", func() bool {
		for _, h := range []string{"h1", "h2", "h3", "ok", "h4"} {
			if z.countLocked(h, dns.TypeA) == 0 || z.countLocked(h, dns.TypeAAAA) == 0 {
				return false
			}
		}
		return true
	})
	select {
	case res := <-done:
		t.Fatalf("Resolve returned before the silent targets' deadline: %v %v", res.eps, res.err)
	default: // they wait for their deadline: the stub's timeout is a minute
	}
	assert.Equal(t, 4, clock.advance(2*time.Second), "the silent targets' deadlines fire; ok's was stopped when it resolved")
	assert.Equal(t, 0, clock.Pending(), "no timer left behind")
	res := <-done
	require.NoError(t, res.err)
	assert.Equal(t, []string{"tcp://ok.hang.test=127.1.0.3:8080"}, strs(res.eps))
	assert.Equal(t, slices.Repeat([]time.Duration{2 * time.Second}, 5), clock.durations())
	assert.Equal(t, uint64(4), r.Stats().SRVTargetTimeouts)
	assert.Equal(t, 1, z.count("ok", dns.TypeA))
	assert.Equal(t, 1, z.count("ok", dns.TypeAAAA))
	assert.Equal(t, 8, z.hung(), "an A and an AAAA query per silent target, once")
}

// TestSRVEveryTargetHangs: 1 500 silent targets and no deadline from the
// caller. 32 are tried, 8 at a time (16 unanswered queries per wave,
// never more), each wave ended by its 2 s deadline: four waves, then an
// error that says what happened on one line and keeps every cause.
func TestSRVEveryTargetHangs(t *testing.T) {
	const n = 1500
	var targets []srvTarget
	for i := range n {
		targets = append(targets, srvTarget{host: fmt.Sprint("t", i), port: 80, weight: 1, hangIt: true})
	}
	z := startSRVZone(t, "_x._tcp.silent.test", 60, targets)
	clock := newFakeClock()
	r := newZoneResolver(t, z, func(c *resolver.Config) { c.Clock = clock })
	done := make(chan error, 1)
	go func() {
		_, err := r.Resolve(hangGuard(t), "srv://_x._tcp.silent.test")
		done <- err
	}()
	for wave := 1; wave <= 4; wave++ {
		z.waitFor(t, fmt.Sprintf("wave %d's queries", wave), func() bool { return z.hungQ >= 16*wave })
		clock.waitPending(t, 8)
		assert.Equal(t, 16*wave, z.hung(), "wave %d: 8 targets asked, no more", wave)
		require.Equal(t, 8, clock.advance(2*time.Second), "wave %d", wave)
	}
	err := <-done
	require.Error(t, err)
	t.Log(err)
	var ue *resolver.URIError
	require.ErrorAs(t, err, &ue)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, resolver.ErrNotFound)
	assert.NotContains(t, err.Error(), "\n")
	assert.Contains(t, err.Error(), "no SRV target resolved (32 tried, 1468 more beyond MaxSRVTargets not tried)")
	assert.Contains(t, err.Error(), "no answer within 2s")
	assert.Contains(t, err.Error(), "; and 29 more")
	var multi interface{ Unwrap() []error }
	require.ErrorAs(t, err, &multi)
	assert.Len(t, multi.Unwrap(), 32, "every target's error kept")
	assert.Equal(t, 64, z.hung())
	assert.Equal(t, resolver.Stats{SRVAnswersCapped: 1, SRVTargetsDropped: n - 32, SRVTargetTimeouts: 32}, r.Stats())
}

// TestSRVSomeTargetsFail: targets that do not exist or have no address
// are skipped; the answer fails only when none resolves, with every
// target's error.
func TestSRVSomeTargetsFail(t *testing.T) {
	z := startSRVZone(t, "_x._tcp.mixed.test", 60, []srvTarget{
		{host: "a", port: 80},
		{host: "gone", port: 81, nxdomain: true},
		{host: "empty", port: 82, noAddr: true},
		{host: "b", port: 83, prio: 2},
	})
	r := newZoneResolver(t, z, nil)
	eps, err := r.Resolve(hangGuard(t), "srv://_x._tcp.mixed.test")
	require.NoError(t, err)
	assert.Equal(t, []string{"tcp://a.mixed.test=127.1.0.0:80", "tcp://b.mixed.test=127.1.0.3:83"}, strs(eps))

	z = startSRVZone(t, "_x._tcp.mixed.test", 60, []srvTarget{
		{host: "nodata", port: 80, noAddr: true},
		{host: "gone", port: 81, nxdomain: true},
	})
	r = newZoneResolver(t, z, nil)
	_, err = r.Resolve(hangGuard(t), "srv://_x._tcp.mixed.test")
	require.Error(t, err)
	t.Log(err)
	assert.ErrorIs(t, err, resolver.ErrNotFound)
	assert.ErrorIs(t, err, dnsstub.ErrNXDomain, "gone.mixed.test's cause kept")
	assert.ErrorIs(t, err, dnsstub.ErrNoData, "nodata.mixed.test's cause kept")
	assert.NotContains(t, err.Error(), "\n")
	assert.Contains(t, err.Error(), "nodata.mixed.test")
	assert.Contains(t, err.Error(), "gone.mixed.test")
	assert.Equal(t, 1, strings.Count(err.Error(), "resolver: "), "one prefix")
	assert.False(t, slices.ContainsFunc(strings.Split(err.Error(), ": "), func(s string) bool { return s == "dns" }), "no stacked dns: prefix")
}
