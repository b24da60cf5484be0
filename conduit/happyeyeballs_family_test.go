package conduit

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/stack"
)

func hostEP(host, addr string) endpoint.Endpoint {
	return endpoint.TCP{Host: host, Addr: netip.MustParseAddrPort(addr)}
}

// staticResolver answers each URI with its endpoints (a resolver that
// does not stream).
func staticResolver(answers map[string][]endpoint.Endpoint) resolver.Resolver {
	return resolver.ResolverFunc(func(_ context.Context, uri string) ([]endpoint.Endpoint, error) {
		if eps, ok := answers[uri]; ok {
			return eps, nil
		}
		return nil, ErrNoEndpoints
	})
}

// winAndClose lets ep's attempt connect and closes the flow of the dial.
func winAndClose(t *testing.T, s *scriptTransport, ep endpoint.Endpoint, done <-chan dialResult) {
	t.Helper()
	win(t, s, ep, done)
	require.Equal(t, ep, recv(t, s.closed, "close"))
}

// TestRFC6724OrderInDial: [127.0.0.1, ::1] is tried IPv6 first
// (precedence 50 over 35) when both have a source, IPv4 first when the
// source lookup says IPv6 has no route (rule 1).
func TestRFC6724OrderInDial(t *testing.T) {
	testutil.CheckLeaks(t)
	v4, v6 := tcpEP("127.0.0.1:7"), tcpEP("[::1]:7")
	answers := map[string][]endpoint.Endpoint{"tcp://dual.test:7": {v4, v6}}
	for _, tc := range []struct {
		name   string
		source func(netip.Addr) netip.Addr
		first  endpoint.Endpoint
	}{
		{"both routable", func(a netip.Addr) netip.Addr { return a }, v6},
		{"no IPv6 route", func(a netip.Addr) netip.Addr {
			if a.Is6() {
				return netip.Addr{}
			}
			return a
		}, v4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHEEnv(t, Config{Resolver: staticResolver(answers), SourceAddr: tc.source}, v4, v6)
			done := e.dial(t, "tcp://dual.test:7")
			require.Equal(t, tc.first, recv(t, e.s.started, "first attempt"))
			win(t, e.s, tc.first, done)
		})
	}
}

// TestFamilyMemory: the family that won a host's dial starts its next
// dial, until the memory expires on the Conduit's clock.
func TestFamilyMemory(t *testing.T) {
	testutil.CheckLeaks(t)
	v6, v4 := hostEP("dual.test", "[::1]:7"), hostEP("dual.test", "127.0.0.1:7")
	other6, other4 := hostEP("other.test", "[::1]:8"), hostEP("other.test", "127.0.0.1:8")
	answers := map[string][]endpoint.Endpoint{"tcp://dual.test:7": {v6, v4}, "tcp://other.test:8": {other6, other4}}
	e := newHEEnv(t, Config{Resolver: staticResolver(answers)}, v6, v4, other6, other4)

	// The first dial starts with IPv6 (RFC 6724); IPv4 wins.
	done := e.dial(t, "tcp://dual.test:7")
	require.Equal(t, v6, recv(t, e.s.started, "attempt"))
	e.timers.fire(recv(t, e.timers.created, "attempt delay"))
	require.Equal(t, v4, recv(t, e.s.started, "attempt"))
	winAndClose(t, e.s, v4, done)

	// The next starts with IPv4; another host does not.
	done = e.dial(t, "tcp://dual.test:7")
	require.Equal(t, v4, recv(t, e.s.started, "attempt"), "the family that won last time first")
	winAndClose(t, e.s, v4, done)
	done = e.dial(t, "tcp://other.test:8")
	require.Equal(t, other6, recv(t, e.s.started, "attempt"), "the memory is per host")
	winAndClose(t, e.s, other6, done)

	// Once the memory has expired, IPv6 first again.
	e.timers.Advance(DefaultFamilyMemory)
	done = e.dial(t, "tcp://dual.test:7")
	require.Equal(t, v6, recv(t, e.s.started, "attempt"), "the memory expired")
	winAndClose(t, e.s, v6, done)
}

// TestFamilyMemoryDisabled: a negative FamilyMemory remembers nothing.
func TestFamilyMemoryDisabled(t *testing.T) {
	testutil.CheckLeaks(t)
	v6, v4 := hostEP("dual.test", "[::1]:7"), hostEP("dual.test", "127.0.0.1:7")
	e := newHEEnv(t, Config{FamilyMemory: -1, Resolver: staticResolver(map[string][]endpoint.Endpoint{"tcp://dual.test:7": {v6, v4}})}, v6, v4)
	for range 2 {
		done := e.dial(t, "tcp://dual.test:7")
		require.Equal(t, v6, recv(t, e.s.started, "attempt"))
		e.timers.fire(recv(t, e.timers.created, "attempt delay"))
		require.Equal(t, v4, recv(t, e.s.started, "attempt"))
		winAndClose(t, e.s, v4, done)
	}
}

// TestFamilyMemoryBounded: the memory holds at most maxFamilyMemory
// hosts; past it, the expired ones go, then the oldest.
func TestFamilyMemoryBounded(t *testing.T) {
	var m familyMemory
	now := time.Unix(0, 0)
	host := func(i int) string { return "h" + strconv.Itoa(i) + ".test" }
	for i := range maxFamilyMemory + 10 {
		m.put(host(i), "4", now.Add(time.Duration(i)*time.Second), time.Hour)
	}
	assert.Len(t, m.hosts, maxFamilyMemory)
	end := now.Add(time.Duration(maxFamilyMemory+10) * time.Second)
	assert.Empty(t, m.get(host(0), end, time.Hour), "the oldest went")
	assert.Equal(t, "4", m.get(host(maxFamilyMemory+9), end, time.Hour))
	// An hour on, every entry has expired: one put clears them.
	m.put("new.test", "6", end.Add(time.Hour+time.Duration(maxFamilyMemory+10)*time.Second), time.Hour)
	assert.Len(t, m.hosts, 1, "the map was full; now it holds only the new host")
}

// TestDialContextTCP4TCP6: "tcp4" and "tcp6" dial only endpoints of
// their family, as net.Dialer does; a host without any is an error
// matching ErrNoSuitableAddress.
func TestDialContextTCP4TCP6(t *testing.T) {
	testutil.CheckLeaks(t)
	v6, v4 := hostEP("dual.test", "[::1]:7"), hostEP("dual.test", "127.0.0.1:7")
	only4 := hostEP("v4.test", "127.0.0.2:7")
	answers := map[string][]endpoint.Endpoint{"tcp://dual.test:7": {v6, v4}, "tcp://v4.test:7": {only4}}
	e := newHEEnv(t, Config{Resolver: staticResolver(answers)}, v6, v4, only4)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	dialContext := func(network, addr string) <-chan dialResult {
		done := make(chan dialResult, 1)
		go func() {
			f, err := e.c.DialContext(ctx, network, addr)
			var fl Flow
			if f != nil {
				fl = f.(Flow)
			}
			done <- dialResult{fl, err}
		}()
		return done
	}

	for _, tc := range []struct {
		network string
		only    endpoint.Endpoint
	}{{"tcp6", v6}, {"tcp4", v4}} {
		done := dialContext(tc.network, "dual.test:7")
		require.Equal(t, tc.only, recv(t, e.s.started, "attempt"))
		e.s.outcome[tc.only.String()] <- syscall.ECONNREFUSED
		r := recv(t, done, "dial result")
		require.ErrorIs(t, r.err, ErrRefused, tc.network)
		noneYet(t, e.s.started, "attempt of the other family")
	}

	r := recv(t, dialContext("tcp6", "v4.test:7"), "dial result")
	require.ErrorIs(t, r.err, ErrNoSuitableAddress)
	assert.Equal(t, "conduit: dial tcp://v4.test:7: no suitable address found: no IPv6 endpoint for tcp6", r.err.Error())
	noneYet(t, e.s.started, "attempt")

	// "tcp" dials both.
	done := dialContext("tcp", "dual.test:7")
	require.Equal(t, v6, recv(t, e.s.started, "attempt"))
	winAndClose(t, e.s, v6, done)
}

// TestStreamTCP4SkipsResolutionDelay: a tcp4 dial has no IPv6 answer to
// wait for: its first IPv4 answer starts it at once.
func TestStreamTCP4SkipsResolutionDelay(t *testing.T) {
	testutil.CheckLeaks(t)
	v4 := tcpEP("127.0.0.1:7")
	e := newHEEnv(t, Config{}, v4)
	done := make(chan error, 1)
	go func() {
		f, err := e.c.DialContext(context.Background(), "tcp4", "a.test:7")
		if f != nil {
			f.Close()
		}
		done <- err
	}()
	call := recv(t, e.st.calls, "resolution")
	call.push(t, batch(v4))
	require.Equal(t, v4, recv(t, e.s.started, "attempt"))
	noneYet(t, e.timers.created, "timer (a resolution delay)")
	e.s.outcome[v4.String()] <- nil
	require.NoError(t, recv(t, done, "dial result"))
}

// traceConnects records the endpoints whose dial started.
type traceConnects struct {
	mu  sync.Mutex
	eps []endpoint.Endpoint
}

func (tc *traceConnects) hooks() *Trace {
	return &Trace{ConnectStart: func(ep endpoint.Endpoint) {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		tc.eps = append(tc.eps, ep)
	}}
}

func (tc *traceConnects) started() []endpoint.Endpoint {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.eps
}

// TestUserspaceStackSkipsIPv6: over the userspace stack (IPv4 only), a
// host's IPv6 endpoints, bare or under TLS, are not raced: the IPv4 one
// is dialed at once, and a host with only IPv6 endpoints fails with each
// endpoint's cause, ErrFamilyUnsupported, without any attempt.
func TestUserspaceStackSkipsIPv6(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := channel.NewPair(1500, channel.FaultOptions{})
	t.Cleanup(func() { a.Close(); b.Close() })
	srv, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.255.0.1/24"), Link: a})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	cli, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.255.0.2/24"), Link: b})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	l, err := srv.ListenFlows(context.Background(), netip.MustParseAddrPort("10.255.0.1:80"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			f, err := l.Accept()
			if err != nil {
				return
			}
			f.Close()
		}
	}()

	v6 := hostEP("dual.test", "[::1]:80")
	tls6 := endpoint.TLS{ServerName: "dual.test", Inner: v6}
	v4 := hostEP("dual.test", "10.255.0.1:80")
	c := New(&Config{
		Stack:      cli,
		SourceAddr: func(a netip.Addr) netip.Addr { return a },
		Resolver: staticResolver(map[string][]endpoint.Endpoint{
			"tcp://dual.test:80": {v6, v4},
			"tcp://v6.test:80":   {v6, tls6},
		}),
	})
	t.Cleanup(func() { c.Close() })

	var tc traceConnects
	ctx := WithTrace(testCtx(t), tc.hooks())
	f, err := c.Dial(ctx, "tcp://dual.test:80")
	require.NoError(t, err)
	f.Close()
	assert.Equal(t, []endpoint.Endpoint{v4}, tc.started(), "the IPv6 endpoint was not raced")

	tc = traceConnects{}
	_, err = c.Dial(WithTrace(testCtx(t), tc.hooks()), "tcp://v6.test:80")
	require.ErrorIs(t, err, ErrFamilyUnsupported)
	assert.Empty(t, tc.started(), "nothing was dialed")
	var oe *OpError
	require.ErrorAs(t, err, &oe)
	msg := err.Error()
	assert.Contains(t, msg, "all 2 attempts failed")
	assert.Contains(t, msg, "tcp://dual.test=[::1]:80: address family not supported by the transport: the tcp transport's stack cannot dial IPv6")
	assert.Contains(t, msg, "tls://dual.test@tcp://dual.test=[::1]:80: address family")
}

// TestDialEndpointsNoResolutionDelay: a complete list (DialEndpoints)
// has no answer to wait for, IPv4 only or not: the first attempt starts
// at once, and the only timer is the attempt delay.
func TestDialEndpointsNoResolutionDelay(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := tcpEP("127.0.0.1:7"), tcpEP("127.0.0.2:7")
	e := newHEEnv(t, Config{}, a, b)
	done := make(chan dialResult, 1)
	go func() {
		f, err := e.c.DialEndpoints(context.Background(), []endpoint.Endpoint{a, b})
		done <- dialResult{f, err}
	}()
	require.Equal(t, a, recv(t, e.s.started, "attempt"))
	require.Equal(t, DefaultFallbackDelay, recv(t, e.timers.created, "attempt delay"), "no resolution delay first")
	win(t, e.s, a, done)
}
