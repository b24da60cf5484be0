package dnsstub

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestLookupHost(t *testing.T) {
	srv := startFake(t, zoneHandler)
	tests := []struct {
		name string
		want []netip.Addr
		ttl  time.Duration
		err  error
	}{
		{"web.test", addrs("192.0.2.5", "2001:db8::5"), 300 * time.Second, nil},
		{"WEB.Test.", addrs("192.0.2.5", "2001:db8::5"), 300 * time.Second, nil},
		{"v4only.test", addrs("192.0.2.7"), 30 * time.Second, nil}, // AAAA NODATA, SOA minimum 30
		{"alias.test", addrs("192.0.2.5", "2001:db8::5"), 60 * time.Second, nil},
		{"alias2.test", addrs("192.0.2.5", "2001:db8::5"), 60 * time.Second, nil},
		{"nxdomain.test", nil, 0, ErrNXDomain},
		{"loop1.test", nil, 0, ErrCNAMELoop},
		{"bad..name", nil, 0, ErrInvalidName},
		{"", nil, 0, ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub(t, newClock(), srv)
			got, ttl, err := s.LookupHostTTL(context.Background(), tt.name)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				var de *Error
				require.ErrorAs(t, err, &de)
				assert.Equal(t, tt.name, de.Name)
				t.Log(err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.ttl, ttl)
		})
	}
}

func TestNotFoundKinds(t *testing.T) {
	srv := startFake(t, zoneHandler)
	s := newStub(t, newClock(), srv)
	_, err := s.LookupHost(context.Background(), "nxdomain.test")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorIs(t, err, ErrNXDomain)
	assert.NotErrorIs(t, err, ErrNoData)
	_, err = s.LookupSRV(context.Background(), "web.test")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorIs(t, err, ErrNoData)
	assert.Contains(t, err.Error(), "NODATA")
}

func TestSearchList(t *testing.T) {
	srv := startFake(t, zoneHandler)
	s, err := New(&Config{Nameservers: []netip.AddrPort{srv.addr}, Search: []string{"nope.example", "corp.example."}, Ndots: 2})
	require.NoError(t, err)
	defer s.Close()
	// One dot < ndots 2: the search list first.
	got, err := s.LookupHost(context.Background(), "web")
	require.NoError(t, err)
	assert.Equal(t, addrs("192.0.2.8"), got)
	got, err = s.LookupHost(context.Background(), "web.test")
	require.NoError(t, err)
	assert.Equal(t, addrs("192.0.2.5", "2001:db8::5"), got)
}

func TestSpoofedDropped(t *testing.T) {
	srv := startFake(t, nil)
	srv.setHandler(func(w dns.ResponseWriter, r *dns.Msg) {
		good := new(dns.Msg)
		good.SetReply(r)
		rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 192.0.2.1")
		if r.Question[0].Qtype == dns.TypeAAAA {
			rr, _ = dns.NewRR(r.Question[0].Name + " 60 IN AAAA 2001:db8::1")
		}
		good.Answer = []dns.RR{rr}
		// Wrong ID.
		bad := good.Copy()
		bad.Id++
		w.WriteMsg(bad)
		// Wrong question name, type, class.
		bad = good.Copy()
		bad.Question[0].Name = "evil.test."
		w.WriteMsg(bad)
		bad = good.Copy()
		bad.Question[0].Qtype = dns.TypeTXT
		w.WriteMsg(bad)
		bad = good.Copy()
		bad.Question[0].Qclass = dns.ClassCHAOS
		w.WriteMsg(bad)
		// Not a response, wrong opcode, garbage.
		bad = good.Copy()
		bad.Response = false
		w.WriteMsg(bad)
		bad = good.Copy()
		bad.Opcode = dns.OpcodeStatus
		w.WriteMsg(bad)
		w.Write([]byte{byte(r.Id >> 8), byte(r.Id), 0x81})
		// Then the real answer, question in another case (allowed).
		good.Question[0].Name = "SpOoF.test."
		w.WriteMsg(good)
	})
	s := newStub(t, nil, srv)
	got, err := s.LookupHost(context.Background(), "spoof.test")
	require.NoError(t, err)
	assert.Equal(t, addrs("192.0.2.1", "2001:db8::1"), got)
	assert.Equal(t, uint64(14), s.Stats().Dropped)
	assert.Equal(t, uint64(2), s.Stats().Queries)
}

func TestHostileAnswer(t *testing.T) {
	srv := startFake(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, s := range []string{
			"other.test. 60 IN A 192.0.2.66",       // not on the chain
			"host.test. 60 IN TXT \"x\"",           // another type
			"host.test. 4294967295 IN A 192.0.2.1", // absurd TTL: 0
			"host.test. 60 CH A 192.0.2.67",        // another class
			"host.test. 60 IN AAAA 2001:db8::1",    // AAAA in an A answer
		} {
			rr, err := dns.NewRR(s)
			if err == nil {
				m.Answer = append(m.Answer, rr)
			}
		}
		if r.Question[0].Qtype == dns.TypeAAAA {
			m.Answer = nil
		}
		w.WriteMsg(m)
	})
	s := newStub(t, newClock(), srv)
	got, ttl, err := s.LookupHostTTL(context.Background(), "host.test")
	require.NoError(t, err)
	assert.Equal(t, addrs("192.0.2.1"), got)
	assert.Equal(t, time.Duration(0), ttl)
}

func TestTruncationRetriesOverTCP(t *testing.T) {
	srv := startFake(t, nil)
	srv.setHandler(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncated = true
			w.WriteMsg(m)
			return
		}
		for i := range 100 {
			rr, _ := dns.NewRR("big.test. 60 IN A 10.0.0." + string(rune('0'+i%10)))
			_ = rr
		}
		if r.Question[0].Qtype == dns.TypeA {
			for i := range 100 {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "big.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(10, 0, byte(i/256), byte(i))})
			}
		}
		w.WriteMsg(m)
	})
	s := newStub(t, nil, srv)
	got, err := s.LookupHost(context.Background(), "big.test")
	require.NoError(t, err)
	assert.Len(t, got, 100)
	assert.Equal(t, uint64(2), s.Stats().Truncated)
	assert.Equal(t, int64(2), srv.tcp.Load())
}

func TestFailover(t *testing.T) {
	good := startFake(t, zoneHandler)
	servfail := startFake(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		w.WriteMsg(m)
	})
	refused := startFake(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		w.WriteMsg(m)
	})
	silent := startFake(t, func(w dns.ResponseWriter, r *dns.Msg) {})

	t.Run("servfail then good", func(t *testing.T) {
		s := newStub(t, nil, servfail, good)
		got, err := s.LookupHost(context.Background(), "web.test")
		require.NoError(t, err)
		assert.Equal(t, addrs("192.0.2.5", "2001:db8::5"), got)
	})
	t.Run("timeout then good", func(t *testing.T) {
		s := newStub(t, nil, silent, good)
		got, err := s.LookupHost(context.Background(), "web.test")
		require.NoError(t, err)
		assert.Equal(t, addrs("192.0.2.5", "2001:db8::5"), got)
	})
	t.Run("all refuse", func(t *testing.T) {
		s := newStub(t, nil, servfail, refused)
		_, err := s.LookupHost(context.Background(), "web.test")
		require.ErrorIs(t, err, ErrRefused)
		assert.NotErrorIs(t, err, ErrNotFound)
		var de *Error
		require.ErrorAs(t, err, &de)
		require.Len(t, de.Attempts, 2)
		var se *ServerError
		require.ErrorAs(t, de.Attempts[0], &se)
		assert.Equal(t, dns.RcodeServerFailure, se.Rcode)
		t.Log(err)
	})
	t.Run("all time out", func(t *testing.T) {
		s := newStub(t, nil, silent)
		start := time.Now()
		_, err := s.LookupHost(context.Background(), "web.test")
		require.ErrorIs(t, err, ErrTimeout)
		var de *Error
		require.ErrorAs(t, err, &de)
		assert.True(t, de.Timeout())
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("caller's context", func(t *testing.T) {
		s := newStub(t, nil, silent)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := s.LookupHost(ctx, "web.test")
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("closed", func(t *testing.T) {
		s := newStub(t, nil, silent)
		done := make(chan error)
		go func() {
			_, err := s.LookupHost(context.Background(), "web.test")
			done <- err
		}()
		time.Sleep(20 * time.Millisecond) // let the query start; Close must interrupt it
		require.NoError(t, s.Close())
		err := <-done
		require.ErrorIs(t, err, net.ErrClosed)
		_, err = s.LookupHost(context.Background(), "web.test")
		require.ErrorIs(t, err, ErrClosed)
	})
}

func TestCache(t *testing.T) {
	srv := startFake(t, zoneHandler)
	clock := newClock()
	s := newStub(t, clock, srv)
	ctx := context.Background()
	lookup := func(name string) ([]netip.Addr, time.Duration, error) {
		return s.LookupHostTTL(ctx, name)
	}
	_, ttl, err := lookup("short.test")
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, ttl) // min(A 10 s, AAAA NODATA 30 s)
	assert.Equal(t, int64(2), srv.queries.Load())

	clock.Advance(4 * time.Second)
	_, ttl, err = lookup("short.test")
	require.NoError(t, err)
	assert.Equal(t, 6*time.Second, ttl)
	assert.Equal(t, int64(2), srv.queries.Load(), "cached")
	assert.Equal(t, uint64(2), s.Stats().CacheHits)

	clock.Advance(6 * time.Second) // A expired, AAAA NODATA still cached
	_, _, err = lookup("short.test")
	require.NoError(t, err)
	assert.Equal(t, int64(3), srv.queries.Load())

	// Negative caching: the SOA minimum (30 s).
	_, _, err = lookup("nxdomain.test")
	require.ErrorIs(t, err, ErrNXDomain)
	n := srv.queries.Load()
	clock.Advance(29 * time.Second)
	_, _, err = lookup("nxdomain.test")
	require.ErrorIs(t, err, ErrNXDomain)
	assert.Equal(t, n, srv.queries.Load(), "negative answer cached")
	clock.Advance(time.Second)
	_, _, err = lookup("nxdomain.test")
	require.ErrorIs(t, err, ErrNXDomain)
	assert.Equal(t, n+2, srv.queries.Load(), "negative answer expired")
}

func TestCacheClamps(t *testing.T) {
	srv := startFake(t, zoneHandler)
	clock := newClock()
	s, err := New(&Config{Nameservers: []netip.AddrPort{srv.addr}, Clock: clock,
		Cache: CacheConfig{MinTTL: 100 * time.Second, MaxTTL: 200 * time.Second, NegativeTTL: 5 * time.Second}})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	_, ttl, err := s.LookupHostTTL(ctx, "web.test") // 300 s
	require.NoError(t, err)
	assert.Equal(t, 200*time.Second, ttl)
	_, ttl, err = s.LookupHostTTL(ctx, "short.test") // A 10 s, NODATA 30 s capped to 5 s
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, ttl)
	srvs, err := s.LookupSRV(ctx, "_http._tcp.svc.test") // 120 s
	require.NoError(t, err)
	assert.Equal(t, 120*time.Second, srvs[0].TTL)
}

func TestServeStale(t *testing.T) {
	srv := startFake(t, zoneHandler)
	clock := newClock()
	s := newStub(t, clock, srv)
	ctx := context.Background()
	_, err := s.LookupHost(ctx, "web.test")
	require.NoError(t, err)

	srv.setHandler(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		w.WriteMsg(m)
	})
	clock.Advance(301 * time.Second)
	got, ttl, err := s.LookupHostTTL(ctx, "web.test")
	require.NoError(t, err)
	assert.Equal(t, addrs("192.0.2.5", "2001:db8::5"), got)
	assert.Equal(t, 30*time.Second, ttl)
	assert.Equal(t, uint64(2), s.Stats().Stale)
	n := srv.queries.Load()
	clock.Advance(10 * time.Second)
	_, _, err = s.LookupHostTTL(ctx, "web.test")
	require.NoError(t, err)
	assert.Equal(t, n, srv.queries.Load(), "no retry within 30 s of a failure")

	// Past the stale limit (1 h by default): the failure shows.
	clock.Advance(2 * time.Hour)
	_, _, err = s.LookupHostTTL(ctx, "web.test")
	require.ErrorIs(t, err, ErrRefused)
}

func TestSingleflight(t *testing.T) {
	release := make(chan struct{})
	srv := startFake(t, nil)
	srv.setHandler(func(w dns.ResponseWriter, r *dns.Msg) {
		<-release
		zoneHandler(w, r)
	})
	s := newStub(t, newClock(), srv)
	s.timeout = 5 * time.Second
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.LookupHost(context.Background(), "web.test")
			if err == nil && len(got) != 2 {
				err = errors.New("wrong answer")
			}
			errs <- err
		}()
	}
	require.Eventually(t, func() bool { st := s.Stats(); return st.CacheMisses+st.Shared == 2*n }, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, int64(2), srv.queries.Load(), "one A and one AAAA query for %d callers", n)
	assert.Equal(t, uint64(2), s.Stats().CacheMisses)
}

func TestLookupSRV(t *testing.T) {
	srv := startFake(t, zoneHandler)
	s := newStub(t, newClock(), srv)
	got, err := s.LookupSRV(context.Background(), "_http._tcp.svc.test")
	require.NoError(t, err)
	assert.Equal(t, []SRV{
		{Target: "web.test.", Port: 8080, Priority: 10, Weight: 5, TTL: 120 * time.Second},
		{Target: "v4only.test.", Port: 8081, Priority: 20, Weight: 0, TTL: 120 * time.Second},
	}, got)
	_, err = s.LookupSRV(context.Background(), "_nope._tcp.svc.test")
	require.ErrorIs(t, err, ErrNXDomain)
}

// TestCNAMENotFollowed: a server that returns only the CNAME makes the
// stub ask for the target itself, within the limit.
func TestCNAMENotFollowed(t *testing.T) {
	srv := startFake(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		var text string
		switch q.Name {
		case "a.test.":
			text = "a.test. 60 IN CNAME b.test."
		case "b.test.":
			text = "b.test. 60 IN CNAME c.test."
		case "c.test.":
			if q.Qtype == dns.TypeA {
				text = "c.test. 60 IN A 192.0.2.9"
			}
		case "self.test.":
			text = "self.test. 60 IN CNAME self.test."
		}
		if text != "" {
			rr, _ := dns.NewRR(text)
			m.Answer = []dns.RR{rr}
		}
		w.WriteMsg(m)
	})
	s := newStub(t, newClock(), srv)
	got, err := s.LookupHost(context.Background(), "a.test")
	require.NoError(t, err)
	assert.Equal(t, addrs("192.0.2.9"), got)
	_, err = s.LookupHost(context.Background(), "self.test")
	require.ErrorIs(t, err, ErrCNAMELoop)
}

// TestHostTTLIgnoresUncacheableNoData: dnsmasq answers AAAA for an
// IPv4-only name with NODATA and no SOA record, which may not be cached
// (RFC 2308 §5); the A answer's TTL still says how long the addresses
// stay valid, so that a Watch does not refresh the name at every turn.
func TestHostTTLIgnoresUncacheableNoData(t *testing.T) {
	srv := startFake(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeA {
			rr, err := dns.NewRR("v4only.test. 300 IN A 192.0.2.1")
			require.NoError(t, err)
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	})
	s := newStub(t, newClock(), srv)
	got, ttl, err := s.LookupHostTTL(context.Background(), "v4only.test")
	require.NoError(t, err)
	assert.Equal(t, addrs("192.0.2.1"), got)
	assert.Equal(t, 300*time.Second, ttl)
}
