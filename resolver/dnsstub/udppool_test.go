package dnsstub

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// numberedHandler answers hN.test. with A 10.0.N/256.N%256 and AAAA
// 2001:db8::N, so that every name has its own answer.
func numberedHandler(w dns.ResponseWriter, r *dns.Msg) {
	w.WriteMsg(numberedReply(r))
}

func numberedReply(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(q.Name, "h"), ".test."))
	if err != nil {
		m.Rcode = dns.RcodeNameError
		return m
	}
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 60}
	switch q.Qtype {
	case dns.TypeA:
		m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.IPv4(10, 0, byte(n>>8), byte(n))}}
	case dns.TypeAAAA:
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("2001:db8::" + strconv.FormatInt(int64(n), 16))}}
	}
	return m
}

func numberedAddrs(n int) []netip.Addr {
	return []netip.Addr{
		netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)}),
		netip.MustParseAddr("2001:db8::" + strconv.FormatInt(int64(n), 16)),
	}
}

// uncachedStub is newStub with the cache off: every lookup asks.
func uncachedStub(t *testing.T, servers ...*fakeServer) *Stub {
	t.Helper()
	cfg := &Config{Timeout: 2 * time.Second, Attempts: 1, Cache: CacheConfig{MaxEntries: -1}}
	for _, s := range servers {
		cfg.Nameservers = append(cfg.Nameservers, s.addr)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// readers counts the pool's reader goroutines still running.
func readers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "dnsstub.(*udpConn).read(")
}

// TestPoolConcurrent: many concurrent lookups share a few sockets and
// each gets its own answer; sockets are retired after maxUses queries;
// Close leaves no reader running.
func TestPoolConcurrent(t *testing.T) {
	srv := startFake(t, numberedHandler)
	s := uncachedStub(t, srv)
	s.pools[0].maxUses = 16
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32) // not so many that the server's socket buffer overflows
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			got, err := s.LookupHost(context.Background(), "h"+strconv.Itoa(i)+".test.")
			if err == nil && !assert.Equal(t, numberedAddrs(i), got) {
				err = errors.New("wrong answer")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	st := s.Stats()
	assert.Equal(t, uint64(2*n), st.Queries)
	assert.Zero(t, st.Dropped)
	opened := s.pools[0].opened.Load()
	assert.GreaterOrEqual(t, opened, int64(2*n/16), "sockets retired after 16 queries")
	assert.LessOrEqual(t, opened, int64(2*n/16+poolConns))
	require.NoError(t, s.Close())
	// Close has waited for the readers (a reader may still be between its
	// deferred wg.Done and its exit, hence the short grace).
	assert.Eventually(t, func() bool { return readers() == 0 }, 100*time.Millisecond, time.Millisecond)
	_, err := s.LookupHost(context.Background(), "h1.test.")
	require.ErrorIs(t, err, ErrClosed)
}

// TestPoolCrossSpoof: on a shared socket, a forged response carrying the
// ID of another query in flight (with its own question, or with that
// query's question but the wrong answer sent to the wrong ID) is dropped;
// every query still gets its own answer.
func TestPoolCrossSpoof(t *testing.T) {
	srv := startFake(t, nil)
	var (
		mu   sync.Mutex
		seen []*dns.Msg // the queries received so far
	)
	srv.setHandler(func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		others := append([]*dns.Msg(nil), seen[max(0, len(seen)-3):]...) // few: no flood
		seen = append(seen, r)
		mu.Unlock()
		good := numberedReply(r)
		for _, o := range others {
			if o.Question[0] == r.Question[0] {
				continue
			}
			// This query's answer under another query's ID: wrong question.
			forged := good.Copy()
			forged.Id = o.Id
			w.WriteMsg(forged)
		}
		w.WriteMsg(good)
	})
	s := uncachedStub(t, srv)
	s.pools[0].conns = s.pools[0].conns[:1] // one shared socket
	var wg sync.WaitGroup
	const n = 20
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.LookupHost(context.Background(), "h"+strconv.Itoa(i)+".test.")
			assert.NoError(t, err)
			assert.Equal(t, numberedAddrs(i), got)
		}()
	}
	wg.Wait()
	assert.Positive(t, s.Stats().Dropped)
	assert.Equal(t, int64(1), s.pools[0].opened.Load())
}

// TestPoolTimeoutThenLateAnswer: a query that timed out leaves the socket
// usable; its late answer is dropped, not given to the next query.
func TestPoolTimeoutThenLateAnswer(t *testing.T) {
	srv := startFake(t, nil)
	release := make(chan struct{})
	srv.setHandler(func(w dns.ResponseWriter, r *dns.Msg) {
		if r.Question[0].Name == "slow.test." {
			<-release
			m := new(dns.Msg)
			m.SetReply(r)
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "slow.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 66)}}
			w.WriteMsg(m)
			return
		}
		numberedHandler(w, r)
	})
	s := uncachedStub(t, srv)
	s.timeout = 100 * time.Millisecond
	s.pools[0].conns = s.pools[0].conns[:1]
	_, err := s.LookupHost(context.Background(), "slow.test.")
	require.ErrorIs(t, err, ErrTimeout)
	close(release)
	for i := range 5 {
		got, err := s.LookupHost(context.Background(), "h"+strconv.Itoa(i)+".test.")
		require.NoError(t, err)
		assert.Equal(t, numberedAddrs(i), got)
	}
	assert.Equal(t, int64(1), s.pools[0].opened.Load())
}

// TestPoolRefused: an ICMP port unreachable (nothing listening) fails the
// queries fast as refused, not after the timeout, and the pool recovers.
func TestPoolRefused(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	addr := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	s, err := New(&Config{Nameservers: []netip.AddrPort{addr}, Timeout: 5 * time.Second, Attempts: 1})
	require.NoError(t, err)
	defer s.Close()
	start := time.Now()
	_, err = s.LookupHost(context.Background(), "web.test.")
	require.ErrorIs(t, err, ErrRefused)
	assert.Less(t, time.Since(start), 2*time.Second)
	_, err = s.LookupHost(context.Background(), "web.test.")
	require.ErrorIs(t, err, ErrRefused)
	require.NoError(t, s.Close())
	assert.Eventually(t, func() bool { return readers() == 0 }, 100*time.Millisecond, time.Millisecond)
}

// TestHostCacheInvalidated: the cached LookupHost answer is not served
// once an entry it was built from is evicted or replaced.
func TestHostCacheInvalidated(t *testing.T) {
	srv := startFake(t, numberedHandler)
	clock := newClock()
	cfg := &Config{Nameservers: []netip.AddrPort{srv.addr}, Clock: clock, Cache: CacheConfig{MaxEntries: 2}}
	s, err := New(cfg)
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	got, err := s.LookupHost(ctx, "h1.test.")
	require.NoError(t, err)
	assert.Equal(t, numberedAddrs(1), got)
	_, err = s.LookupHost(ctx, "h1.test.")
	require.NoError(t, err)
	assert.Equal(t, int64(2), srv.queries.Load(), "cached")
	_, err = s.LookupHost(ctx, "h2.test.") // evicts h1's entries
	require.NoError(t, err)
	got, err = s.LookupHost(ctx, "h1.test.")
	require.NoError(t, err)
	assert.Equal(t, numberedAddrs(1), got)
	n := srv.queries.Load()
	assert.GreaterOrEqual(t, n, int64(5), "asked again after eviction (of one or both entries)")
	clock.Advance(61 * time.Second)
	_, err = s.LookupHost(ctx, "h1.test.")
	require.NoError(t, err)
	assert.Greater(t, srv.queries.Load(), n, "asked again after expiry")

	// With room for one entry, A and AAAA evict each other: the merged
	// answer is never cached.
	s1, err := New(&Config{Nameservers: []netip.AddrPort{srv.addr}, Clock: clock, Cache: CacheConfig{MaxEntries: 1}})
	require.NoError(t, err)
	defer s1.Close()
	n = srv.queries.Load()
	for range 3 {
		got, err := s1.LookupHost(ctx, "h3.test.")
		require.NoError(t, err)
		assert.Equal(t, numberedAddrs(3), got)
	}
	assert.GreaterOrEqual(t, srv.queries.Load(), n+4, "one of the two asked each time at least")
}
