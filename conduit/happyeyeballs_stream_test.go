package conduit

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
)

// hang bounds every wait of these tests: a guard against a hang, never
// what decides an outcome.
const hang = 10 * time.Second

// recv receives from ch, failing the test if nothing comes before hang.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hang):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// noneYet fails the test if ch holds a value now. Used after an event
// that the loop of the race produces after the one that must not have
// happened, so that "not yet" is decided by the order of events, not by
// time.
func noneYet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

// scriptStreamer is a resolver.Streamer that the test drives: each
// ResolveStream call is handed to the test, which sends its batches and
// ends it.
type scriptStreamer struct {
	calls chan *streamCall
}

type streamCall struct {
	uri      string
	batches  chan resolver.Batch // the test's batches, sent in order
	sent     chan struct{}       // after each send returned
	end      chan error          // ends the resolution with this error
	returned chan struct{}       // closed when ResolveStream returns
	err      error               // what it returned
}

func newScriptStreamer() *scriptStreamer {
	return &scriptStreamer{calls: make(chan *streamCall, 4)}
}

func (s *scriptStreamer) Resolve(ctx context.Context, uri string) ([]endpoint.Endpoint, error) {
	return nil, errors.New("scriptStreamer: Resolve is not used by a dial")
}

func (s *scriptStreamer) ResolveStream(ctx context.Context, uri string, send func(resolver.Batch)) error {
	call := &streamCall{uri: uri, batches: make(chan resolver.Batch), sent: make(chan struct{}), end: make(chan error, 1), returned: make(chan struct{})}
	defer close(call.returned)
	s.calls <- call
	for {
		select {
		case b := <-call.batches:
			send(b)
			call.sent <- struct{}{}
		case err := <-call.end:
			call.err = err
			return err
		case <-ctx.Done():
			call.err = ctx.Err()
			return ctx.Err()
		}
	}
}

// push hands a batch to the resolution; it returns once the Streamer's
// send has returned, which it does once the race has taken the batch:
// the race handles it before any event the test causes next.
func (c *streamCall) push(t *testing.T, b resolver.Batch) {
	t.Helper()
	select {
	case c.batches <- b:
	case <-time.After(hang):
		t.Fatal("the resolution took no batch")
	}
	recv(t, c.sent, "send's return")
}

// heEnv is a Conduit over a scripted transport and a scripted Streamer
// on a manual clock, with every destination its own source (RFC 6724
// then orders by precedence and scope).
type heEnv struct {
	c      *Conduit
	s      *scriptTransport
	st     *scriptStreamer
	timers *manualTimers
	trace  *traceLog
}

func newHEEnv(t *testing.T, cfg Config, eps ...endpoint.Endpoint) *heEnv {
	e := &heEnv{s: newScript(eps...), st: newScriptStreamer(), trace: &traceLog{}}
	reg := NewRegistry()
	require.NoError(t, reg.Register(endpoint.KindTCP, e.s))
	e.timers = &manualTimers{Manual: clock.NewManual(time.Unix(0, 0)), created: make(chan time.Duration, 16)}
	cfg.Registry, cfg.Clock = reg, e.timers
	if cfg.Resolver == nil {
		cfg.Resolver = e.st
	}
	if cfg.SourceAddr == nil {
		cfg.SourceAddr = func(dst netip.Addr) netip.Addr { return dst }
	}
	e.c = New(&cfg)
	return e
}

type dialResult struct {
	f   Flow
	err error
}

// dial starts a Dial of uri in its own goroutine.
func (e *heEnv) dial(t *testing.T, uri string) <-chan dialResult {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	t.Cleanup(cancel)
	return e.dialCtx(WithTrace(ctx, e.trace.hooks()), uri)
}

func (e *heEnv) dialCtx(ctx context.Context, uri string) <-chan dialResult {
	done := make(chan dialResult, 1)
	go func() {
		f, err := e.c.Dial(ctx, uri)
		done <- dialResult{f, err}
	}()
	return done
}

// traceLog records the ResolveDone calls.
type traceLog struct {
	mu      sync.Mutex
	resolve [][]endpoint.Endpoint
	errs    []error
}

func (l *traceLog) hooks() *Trace {
	return &Trace{ResolveDone: func(_ string, eps []endpoint.Endpoint, err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.resolve = append(l.resolve, eps)
		l.errs = append(l.errs, err)
	}}
}

func (l *traceLog) done() ([][]endpoint.Endpoint, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.resolve, l.errs
}

func batch(eps ...endpoint.Endpoint) resolver.Batch { return resolver.Batch{Endpoints: eps} }

func win(t *testing.T, s *scriptTransport, ep endpoint.Endpoint, done <-chan dialResult) {
	t.Helper()
	s.outcome[ep.String()] <- nil
	r := recv(t, done, "dial result")
	require.NoError(t, r.err)
	require.NoError(t, r.f.Close())
}

// TestStreamAAAAFirstStartsAtOnce: an answer with IPv6 endpoints starts
// the race at once, with no resolution delay, while the A answer is
// still awaited.
func TestStreamAAAAFirstStartsAtOnce(t *testing.T) {
	testutil.CheckLeaks(t)
	v6, v4 := tcpEP("[::1]:7"), tcpEP("127.0.0.1:7")
	e := newHEEnv(t, Config{}, v6, v4)
	done := e.dial(t, "tcp://dual.test:7")
	call := recv(t, e.st.calls, "resolution")
	assert.Equal(t, "tcp://dual.test:7", call.uri)
	call.push(t, batch(v6))
	require.Equal(t, v6, recv(t, e.s.started, "attempt"))
	noneYet(t, e.timers.created, "timer (a resolution delay)")
	win(t, e.s, v6, done)
	<-call.returned
}

// TestStreamAFirstWaitsResolutionDelayThenAAAAJoins: an IPv4-only first
// answer waits the resolution delay; then the IPv4 attempts start, and an
// AAAA answer that comes later joins the race as the next attempt (the
// other family than the last one tried), before the remaining IPv4
// endpoint.
func TestStreamAFirstWaitsResolutionDelayThenAAAAJoins(t *testing.T) {
	testutil.CheckLeaks(t)
	v4a, v4b, v6 := tcpEP("127.0.0.1:7"), tcpEP("127.0.0.2:7"), tcpEP("[::1]:7")
	// The sources rank ::1 after the IPv4 endpoints (its source's
	// scope does not match, RFC 6724 rule 2): the interleave, not the
	// sort, makes it the next attempt.
	e := newHEEnv(t, Config{SourceAddr: func(dst netip.Addr) netip.Addr {
		if dst.Is6() {
			return netip.MustParseAddr("2001:db8::2")
		}
		return dst
	}}, v4a, v4b, v6)
	done := e.dial(t, "tcp://dual.test:7")
	call := recv(t, e.st.calls, "resolution")
	call.push(t, batch(v4a, v4b))
	require.Equal(t, DefaultResolutionDelay, recv(t, e.timers.created, "resolution delay"))
	noneYet(t, e.s.started, "attempt before the resolution delay")
	e.timers.fire(DefaultResolutionDelay)
	require.Equal(t, v4a, recv(t, e.s.started, "first attempt"))
	require.Equal(t, DefaultFallbackDelay, recv(t, e.timers.created, "attempt delay"))

	call.push(t, batch(v6)) // AAAA, after the race began
	call.end <- nil
	<-call.returned
	noneYet(t, e.s.started, "attempt before the attempt delay")
	e.timers.fire(DefaultFallbackDelay)
	require.Equal(t, v6, recv(t, e.s.started, "second attempt"), "the late IPv6 endpoint is tried next")
	win(t, e.s, v6, done)

	eps, errs := e.trace.done()
	require.Len(t, eps, 1, "ResolveDone is called once")
	assert.Equal(t, []endpoint.Endpoint{v4a, v4b, v6}, eps[0], "with every endpoint that arrived")
	assert.NoError(t, errs[0])
}

// TestStreamAAAAWithinResolutionDelayGoesFirst: an AAAA answer that
// arrives during the resolution delay ends it, and IPv6 is tried first
// (RFC 6724 precedence), though the A answer came first.
func TestStreamAAAAWithinResolutionDelayGoesFirst(t *testing.T) {
	testutil.CheckLeaks(t)
	v4, v6 := tcpEP("127.0.0.1:7"), tcpEP("[::1]:7")
	e := newHEEnv(t, Config{}, v4, v6)
	done := e.dial(t, "tcp://dual.test:7")
	call := recv(t, e.st.calls, "resolution")
	call.push(t, batch(v4))
	require.Equal(t, DefaultResolutionDelay, recv(t, e.timers.created, "resolution delay"))
	call.push(t, batch(v6))
	require.Equal(t, v6, recv(t, e.s.started, "first attempt"))
	require.Equal(t, DefaultFallbackDelay, recv(t, e.timers.created, "attempt delay"))
	e.timers.fire(DefaultFallbackDelay)
	require.Equal(t, v4, recv(t, e.s.started, "second attempt"))
	win(t, e.s, v4, done)
}

// TestStreamResolutionDelayIsConfigurable: Config.ResolutionDelay sets
// the wait; negative starts at once.
func TestStreamResolutionDelayIsConfigurable(t *testing.T) {
	testutil.CheckLeaks(t)
	v4 := tcpEP("127.0.0.1:7")
	t.Run("longer", func(t *testing.T) {
		e := newHEEnv(t, Config{ResolutionDelay: 300 * time.Millisecond}, v4)
		done := e.dial(t, "tcp://a.test:7")
		call := recv(t, e.st.calls, "resolution")
		call.push(t, batch(v4))
		require.Equal(t, 300*time.Millisecond, recv(t, e.timers.created, "resolution delay"))
		e.timers.fire(299 * time.Millisecond)
		noneYet(t, e.s.started, "attempt before the resolution delay")
		e.timers.fire(time.Millisecond)
		require.Equal(t, v4, recv(t, e.s.started, "attempt"))
		win(t, e.s, v4, done)
	})
	t.Run("negative", func(t *testing.T) {
		e := newHEEnv(t, Config{ResolutionDelay: -1}, v4)
		done := e.dial(t, "tcp://a.test:7")
		call := recv(t, e.st.calls, "resolution")
		call.push(t, batch(v4))
		require.Equal(t, v4, recv(t, e.s.started, "attempt"))
		noneYet(t, e.timers.created, "timer")
		win(t, e.s, v4, done)
	})
}

// TestStreamResolutionFailingAfterABatchStillDials: the resolution ends
// with an error after one answer (the AAAA lookup failed): the race opens
// at once and dials what arrived.
func TestStreamResolutionFailingAfterABatchStillDials(t *testing.T) {
	testutil.CheckLeaks(t)
	v4 := tcpEP("127.0.0.1:7")
	e := newHEEnv(t, Config{}, v4)
	done := e.dial(t, "tcp://a.test:7")
	call := recv(t, e.st.calls, "resolution")
	call.push(t, batch(v4))
	require.Equal(t, DefaultResolutionDelay, recv(t, e.timers.created, "resolution delay"))
	call.end <- errors.New("AAAA: server failure")
	require.Equal(t, v4, recv(t, e.s.started, "attempt"), "the end of the resolution opens the race")
	win(t, e.s, v4, done)
}

// TestStreamResolutionFailingWithNothing: a resolution that fails before
// any answer fails the dial with its error.
func TestStreamResolutionFailingWithNothing(t *testing.T) {
	testutil.CheckLeaks(t)
	e := newHEEnv(t, Config{})
	done := e.dial(t, "tcp://nx.test:7")
	call := recv(t, e.st.calls, "resolution")
	nx := errors.New("no such host")
	call.end <- nx
	r := recv(t, done, "dial result")
	require.ErrorIs(t, r.err, nx)
	var oe *OpError
	require.ErrorAs(t, r.err, &oe)
	assert.Equal(t, "dial", oe.Op)
	assert.Equal(t, "conduit: dial tcp://nx.test:7: no such host", r.err.Error())
	_, errs := e.trace.done()
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], nx)
}

// TestStreamGroupsInOrder: the endpoints of group 1 are tried only after
// every endpoint of group 0 has been started, though RFC 6724 prefers
// group 1's ::1; the attempt delay still staggers them.
func TestStreamGroupsInOrder(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b, later := tcpEP("127.0.0.1:7"), tcpEP("127.0.0.2:7"), tcpEP("[::1]:7")
	e := newHEEnv(t, Config{}, a, b, later)
	done := e.dial(t, "tcp+srv://svc.test")
	call := recv(t, e.st.calls, "resolution")
	call.push(t, resolver.Batch{Endpoints: []endpoint.Endpoint{a, b}, Group: 0})
	require.Equal(t, DefaultResolutionDelay, recv(t, e.timers.created, "resolution delay"))
	call.push(t, resolver.Batch{Endpoints: []endpoint.Endpoint{later}, Group: 1})
	call.end <- nil
	require.Equal(t, a, recv(t, e.s.started, "first attempt"))
	require.Equal(t, DefaultFallbackDelay, recv(t, e.timers.created, "attempt delay"))
	e.timers.fire(DefaultFallbackDelay)
	require.Equal(t, b, recv(t, e.s.started, "second attempt"), "group 0 before group 1")
	require.Equal(t, DefaultFallbackDelay, recv(t, e.timers.created, "attempt delay"))
	e.s.outcome[a.String()] <- syscall.ECONNREFUSED // a failure starts the next at once
	require.Equal(t, later, recv(t, e.s.started, "third attempt"))
	e.s.outcome[b.String()] <- syscall.ECONNREFUSED
	e.s.outcome[later.String()] <- syscall.ECONNREFUSED
	r := recv(t, done, "dial result")
	require.ErrorIs(t, r.err, ErrRefused)
	assert.Contains(t, r.err.Error(), "all 3 attempts failed")
}

// TestStreamReplacesDropsUnstartedHints: a Replaces batch removes the
// group's hints that were not started (the one started keeps running);
// a second Replaces batch of the group (the other family's answer) does
// not remove the first's endpoints.
func TestStreamReplacesDropsUnstartedHints(t *testing.T) {
	testutil.CheckLeaks(t)
	hint1, hint2 := tcpEP("127.0.0.10:443"), tcpEP("127.0.0.11:443")
	real1, real2, real3 := tcpEP("127.0.0.20:443"), tcpEP("127.0.0.21:443"), tcpEP("127.0.0.30:443")
	e := newHEEnv(t, Config{ResolutionDelay: -1}, hint1, hint2, real1, real2, real3)
	done := e.dial(t, "https://svc.test")
	call := recv(t, e.st.calls, "resolution")
	call.push(t, batch(hint1, hint2))
	require.Equal(t, hint1, recv(t, e.s.started, "first attempt"))
	require.Equal(t, DefaultFallbackDelay, recv(t, e.timers.created, "attempt delay"))
	call.push(t, resolver.Batch{Endpoints: []endpoint.Endpoint{real1, real2}, Replaces: true})
	e.timers.fire(DefaultFallbackDelay)
	require.Equal(t, real1, recv(t, e.s.started, "second attempt"), "the unstarted hint was replaced")
	require.Equal(t, DefaultFallbackDelay, recv(t, e.timers.created, "attempt delay"))
	call.push(t, resolver.Batch{Endpoints: []endpoint.Endpoint{real3}, Replaces: true})
	call.end <- nil
	e.timers.fire(DefaultFallbackDelay)
	require.Equal(t, real2, recv(t, e.s.started, "third attempt"), "a second Replaces keeps the first's endpoints")
	win(t, e.s, real2, done)
}

// TestStreamResolverGoneWhenDialReturns: a dial that wins while the
// resolution still runs (the A answer never comes) cancels it, and the
// resolution has returned by the time Dial does.
func TestStreamResolverGoneWhenDialReturns(t *testing.T) {
	testutil.CheckLeaks(t)
	v6 := tcpEP("[::1]:7")
	e := newHEEnv(t, Config{}, v6)
	done := e.dial(t, "tcp://dual.test:7")
	call := recv(t, e.st.calls, "resolution")
	call.push(t, batch(v6))
	require.Equal(t, v6, recv(t, e.s.started, "attempt"))
	win(t, e.s, v6, done)
	select {
	case <-call.returned:
	default:
		t.Fatal("Dial returned before the resolution it started")
	}
	assert.ErrorIs(t, call.err, context.Canceled)
	eps, errs := e.trace.done()
	require.Len(t, eps, 1)
	assert.Equal(t, []endpoint.Endpoint{v6}, eps[0])
	assert.NoError(t, errs[0])
}

// TestStreamContextCancelledMidResolution: cancelling the dial while it
// resolves ends the resolution and the dial with the context's error.
func TestStreamContextCancelledMidResolution(t *testing.T) {
	testutil.CheckLeaks(t)
	v4 := tcpEP("127.0.0.1:7")
	e := newHEEnv(t, Config{}, v4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := e.dialCtx(ctx, "tcp://slow.test:7")
	call := recv(t, e.st.calls, "resolution")
	call.push(t, batch(v4))
	require.Equal(t, DefaultResolutionDelay, recv(t, e.timers.created, "resolution delay"))
	cancel()
	r := recv(t, done, "dial result")
	require.ErrorIs(t, r.err, context.Canceled)
	select {
	case <-call.returned:
	default:
		t.Fatal("Dial returned before the resolution it started")
	}
	noneYet(t, e.s.started, "attempt")
}

func TestNeedsLookup(t *testing.T) {
	for rest, want := range map[string]bool{
		"example.test:80":         true,
		"example.test":            true,
		"user@example.test:80/x":  true,
		"7/web":                   true,
		"127.0.0.1:80":            false,
		"127.0.0.1":               false,
		"[::1]:443?sni=a.test":    false,
		"[fe80::1%25eth0]:80":     false,
		"[::1]":                   false,
		"/run/app.sock":           false,
		"":                        false,
		"u:p@10.0.0.1:1080/?x=y":  false,
		"1.2.3.4.example.test:80": true,
	} {
		assert.Equal(t, want, needsLookup(rest), rest)
	}
}

// TestStreamRepeatedEndpointsDialedOnce: a resolution that sends the same
// endpoints again (a flood of repeats, in any group) has each dialed
// once.
func TestStreamRepeatedEndpointsDialedOnce(t *testing.T) {
	testutil.CheckLeaks(t)
	v6, v4 := tcpEP("[::1]:7"), tcpEP("127.0.0.1:7")
	e := newHEEnv(t, Config{}, v6, v4)
	done := e.dial(t, "tcp://dual.test:7")
	call := recv(t, e.st.calls, "resolution")
	call.push(t, batch(v6))
	require.Equal(t, v6, recv(t, e.s.started, "attempt"))
	for i := range 100 {
		call.push(t, resolver.Batch{Endpoints: []endpoint.Endpoint{v6, v4, v6}, Group: i % 3})
	}
	call.end <- nil
	e.s.outcome[v6.String()] <- syscall.ECONNREFUSED
	require.Equal(t, v4, recv(t, e.s.started, "attempt"))
	e.s.outcome[v4.String()] <- syscall.ECONNREFUSED
	r := recv(t, done, "dial result")
	require.ErrorIs(t, r.err, ErrRefused)
	assert.Contains(t, r.err.Error(), "all 2 attempts failed")
	noneYet(t, e.s.started, "attempt")
}
