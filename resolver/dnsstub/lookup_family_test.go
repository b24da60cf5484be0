package dnsstub

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hangGuard bounds the waits of the tests: only a hang reaches it.
const hangGuard = 10 * time.Second

// heldHandler answers from zone, holding the answers to qtype until
// release is closed.
func heldHandler(qtype uint16, release <-chan struct{}) func(w dns.ResponseWriter, r *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		if r.Question[0].Qtype == qtype {
			<-release
		}
		w.WriteMsg(zoneReply(r))
	}
}

// familyRun is a LookupHostFamilies call on its own goroutine, its
// answers on a channel.
type familyRun struct {
	answers chan FamilyAnswer
	done    chan struct{}
	ttl     time.Duration
	err     error
}

func startFamilies(s *Stub, ctx context.Context, name string) *familyRun {
	run := &familyRun{answers: make(chan FamilyAnswer, 4), done: make(chan struct{})}
	go func() {
		defer close(run.done)
		run.ttl, run.err = s.LookupHostFamilies(ctx, name, func(a FamilyAnswer) { run.answers <- a })
	}()
	return run
}

func (run *familyRun) next(t *testing.T) FamilyAnswer {
	t.Helper()
	select {
	case a := <-run.answers:
		return a
	case <-time.After(hangGuard):
		t.Fatal("no answer")
		return FamilyAnswer{}
	}
}

func (run *familyRun) wait(t *testing.T) {
	t.Helper()
	select {
	case <-run.done:
	case <-time.After(hangGuard):
		t.Fatal("LookupHostFamilies did not return")
	}
}

// TestFamiliesAFirst: with the AAAA answer held by the server, the A
// answer is delivered alone, before the AAAA query is answered; the AAAA
// answer follows once released, and the whole answer is then cached and
// delivered at once.
func TestFamiliesAFirst(t *testing.T) {
	release := make(chan struct{})
	srv := startFake(t, heldHandler(dns.TypeAAAA, release))
	s, err := New(&Config{Nameservers: []netip.AddrPort{srv.addr}, Timeout: hangGuard, Attempts: 1, Clock: newClock()})
	require.NoError(t, err)
	defer s.Close()

	run := startFamilies(s, context.Background(), "web.test")
	a := run.next(t)
	assert.Equal(t, FamilyAnswer{Family: IPv4, Addrs: addrs("192.0.2.5"), TTL: 300 * time.Second}, a)
	select {
	case <-run.done:
		t.Fatal("returned before the AAAA answer")
	default:
	}
	close(release)
	a = run.next(t)
	assert.Equal(t, FamilyAnswer{Family: IPv6, Addrs: addrs("2001:db8::5"), TTL: 300 * time.Second}, a)
	run.wait(t)
	require.NoError(t, run.err)
	assert.Equal(t, 300*time.Second, run.ttl)

	// Cached: one answer with both families.
	run = startFamilies(s, context.Background(), "web.test")
	run.wait(t)
	require.NoError(t, run.err)
	require.Len(t, run.answers, 1)
	a = <-run.answers
	assert.Equal(t, IPv4|IPv6, a.Family)
	assert.Equal(t, addrs("192.0.2.5", "2001:db8::5"), a.Addrs)
	// And LookupHostTTL shares that cache.
	got, _, err := s.LookupHostTTL(context.Background(), "web.test")
	require.NoError(t, err)
	assert.Equal(t, addrs("192.0.2.5", "2001:db8::5"), got)
}

// TestFamiliesAAAAFirst: the A answer held, AAAA comes first.
func TestFamiliesAAAAFirst(t *testing.T) {
	release := make(chan struct{})
	srv := startFake(t, heldHandler(dns.TypeA, release))
	s, err := New(&Config{Nameservers: []netip.AddrPort{srv.addr}, Timeout: hangGuard, Attempts: 1, Clock: newClock()})
	require.NoError(t, err)
	defer s.Close()
	run := startFamilies(s, context.Background(), "web.test")
	assert.Equal(t, IPv6, run.next(t).Family)
	close(release)
	assert.Equal(t, IPv4, run.next(t).Family)
	run.wait(t)
	require.NoError(t, run.err)
}

// TestFamiliesSearchList: a candidate whose A answer is empty waits for
// its AAAA answer before the next candidate is asked (the first that
// answers with any address wins, as for LookupHost); a candidate with no
// address at all moves on.
func TestFamiliesSearchList(t *testing.T) {
	release := make(chan struct{})
	early := make(chan string, 4) // queries for the next candidate before release
	srv := startFake(t, func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		switch {
		case q.Name == "web.nope.example." && q.Qtype == dns.TypeAAAA:
			<-release
		case q.Name == "web.corp.example.":
			select {
			case <-release:
			default:
				early <- q.Name + " " + dns.TypeToString[q.Qtype]
			}
		}
		w.WriteMsg(zoneReply(r))
	})
	s, err := New(&Config{Nameservers: []netip.AddrPort{srv.addr}, Search: []string{"nope.example", "corp.example"}, Ndots: 2, Timeout: hangGuard, Attempts: 1, Clock: newClock()})
	require.NoError(t, err)
	defer s.Close()
	run := startFamilies(s, context.Background(), "web")
	for srv.queries.Load() < 2 {
		time.Sleep(time.Millisecond) // until both first queries arrived; decides nothing
	}
	close(release)
	a := run.next(t)
	assert.Equal(t, FamilyAnswer{Family: IPv4, Addrs: addrs("192.0.2.8"), TTL: 300 * time.Second}, a)
	run.wait(t)
	require.NoError(t, run.err)
	assert.Empty(t, run.answers)
	close(early)
	for q := range early {
		t.Errorf("%s asked before the first candidate's AAAA answer", q)
	}
}

// TestFamiliesErrors: the errors are LookupHostTTL's.
func TestFamiliesErrors(t *testing.T) {
	srv := startFake(t, zoneHandler)
	s := newStub(t, newClock(), srv)
	for _, tt := range []struct {
		name string
		err  error
	}{{"nxdomain.test", ErrNXDomain}, {"loop1.test", ErrCNAMELoop}, {"bad..name", ErrInvalidName}} {
		_, err := s.LookupHostFamilies(context.Background(), tt.name, func(a FamilyAnswer) { t.Errorf("answer %v", a) })
		require.ErrorIs(t, err, tt.err)
		var de *Error
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "A/AAAA", de.Type)
	}
	// v4only: one answer, and the TTL of the AAAA NODATA (SOA minimum 30)
	// bounds the whole.
	var got []FamilyAnswer
	ttl, err := s.LookupHostFamilies(context.Background(), "v4only.test", func(a FamilyAnswer) { got = append(got, a) })
	require.NoError(t, err)
	assert.Equal(t, []FamilyAnswer{{Family: IPv4, Addrs: addrs("192.0.2.7"), TTL: 300 * time.Second}}, got)
	assert.Equal(t, 30*time.Second, ttl)
}

// TestFamiliesCancel: ctx ending while AAAA is held returns ctx's error,
// after the A answer was delivered.
func TestFamiliesCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := startFake(t, heldHandler(dns.TypeAAAA, release))
	s, err := New(&Config{Nameservers: []netip.AddrPort{srv.addr}, Timeout: hangGuard, Attempts: 1, Clock: newClock()})
	require.NoError(t, err)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	run := startFamilies(s, ctx, "web.test")
	assert.Equal(t, IPv4, run.next(t).Family)
	cancel()
	run.wait(t)
	require.ErrorIs(t, run.err, context.Canceled)
}

// TestFamiliesCachedHalfFirst: the A answer still cached, the AAAA one
// expired and its new query held: the cached A answer is delivered
// without waiting for the AAAA query.
func TestFamiliesCachedHalfFirst(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	var holding atomic.Bool
	srv := startFake(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		switch r.Question[0].Qtype {
		case dns.TypeA:
			rr, _ := dns.NewRR("web.test. 300 IN A 192.0.2.5")
			m.Answer = append(m.Answer, rr)
		case dns.TypeAAAA:
			if holding.Load() {
				<-release
			}
			rr, _ := dns.NewRR("web.test. 10 IN AAAA 2001:db8::5")
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	})
	clk := newClock()
	s, err := New(&Config{Nameservers: []netip.AddrPort{srv.addr}, Timeout: hangGuard, Attempts: 1, Clock: clk})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.LookupHostFamilies(context.Background(), "web.test", func(FamilyAnswer) {})
	require.NoError(t, err)
	clk.Advance(20 * time.Second)
	holding.Store(true)
	run := startFamilies(s, context.Background(), "web.test")
	a := run.next(t)
	assert.Equal(t, IPv4, a.Family)
	assert.Equal(t, 280*time.Second, a.TTL)
	unblock()
	assert.Equal(t, IPv6, run.next(t).Family)
	run.wait(t)
	require.NoError(t, run.err)
}
