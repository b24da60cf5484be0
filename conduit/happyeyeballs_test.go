package conduit

import (
	"context"
	"errors"
	"net"
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

func tcpEP(s string) endpoint.Endpoint {
	return endpoint.TCP{Addr: netip.MustParseAddrPort(s)}
}

func TestInterleaveFamilies(t *testing.T) {
	v4a, v4b, v4c := tcpEP("127.0.0.1:1"), tcpEP("127.0.0.2:1"), tcpEP("127.0.0.3:1")
	v6a, v6b := tcpEP("[::1]:1"), tcpEP("[::2]:1")
	ux := endpoint.Unix{Path: "/run/x"}
	for _, tc := range []struct {
		name string
		in   []endpoint.Endpoint
		want []endpoint.Endpoint
	}{
		{"empty", nil, nil},
		{"one", []endpoint.Endpoint{v4a}, []endpoint.Endpoint{v4a}},
		{"v6 first", []endpoint.Endpoint{v6a, v6b, v4a, v4b, v4c}, []endpoint.Endpoint{v6a, v4a, v6b, v4b, v4c}},
		{"v4 first", []endpoint.Endpoint{v4a, v4b, v6a}, []endpoint.Endpoint{v4a, v6a, v4b}},
		{"single family keeps order", []endpoint.Endpoint{v4c, v4a, v4b}, []endpoint.Endpoint{v4c, v4a, v4b}},
		{"tls counts as inner family", []endpoint.Endpoint{
			endpoint.TLS{ServerName: "a", Inner: v6a}, endpoint.TLS{ServerName: "a", Inner: v6b}, endpoint.TLS{ServerName: "a", Inner: v4a},
		}, []endpoint.Endpoint{
			endpoint.TLS{ServerName: "a", Inner: v6a}, endpoint.TLS{ServerName: "a", Inner: v4a}, endpoint.TLS{ServerName: "a", Inner: v6b},
		}},
		{"other kinds are a family", []endpoint.Endpoint{ux, v4a, v4b}, []endpoint.Endpoint{ux, v4a, v4b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, interleaveFamilies(tc.in))
		})
	}
}

// scriptTransport is a fake transport whose dials block until the test
// says how each ends.
type scriptTransport struct {
	mu      sync.Mutex
	started chan endpoint.Endpoint
	outcome map[string]chan error // per endpoint: nil error means connect
	closed  chan endpoint.Endpoint
	// stubborn dials ignore cancellation, like a transport that
	// completes its handshake anyway: the loser's flow must be closed.
	stubborn bool
}

func newScript(eps ...endpoint.Endpoint) *scriptTransport {
	s := &scriptTransport{
		started: make(chan endpoint.Endpoint, len(eps)),
		outcome: map[string]chan error{},
		closed:  make(chan endpoint.Endpoint, len(eps)),
	}
	for _, ep := range eps {
		s.outcome[ep.String()] = make(chan error, 1)
	}
	return s
}

func (s *scriptTransport) Dial(ctx context.Context, ep endpoint.Endpoint, _ DialOptions) (net.Conn, error) {
	s.started <- ep
	if s.stubborn {
		ctx = context.Background()
	}
	select {
	case err := <-s.outcome[ep.String()]:
		if err != nil {
			return nil, err
		}
		a, b := net.Pipe()
		b.Close()
		return &closeRecorder{Conn: a, ep: ep, closed: s.closed}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *scriptTransport) Listen(context.Context, endpoint.Endpoint, ListenOptions) (net.Listener, error) {
	return nil, errors.ErrUnsupported
}

type closeRecorder struct {
	net.Conn
	ep     endpoint.Endpoint
	once   sync.Once
	closed chan endpoint.Endpoint
}

func (c *closeRecorder) Close() error {
	c.once.Do(func() { c.closed <- c.ep })
	return c.Conn.Close()
}

// manualTimers is the Conduit's manual clock: it announces each timer
// armed (the fallback delay), which the test fires by advancing it.
type manualTimers struct {
	*clock.Manual
	created chan time.Duration
}

func (m *manualTimers) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := m.Manual.AfterFunc(d, f)
	m.created <- d
	return t
}

// fire advances the clock by d, the delay of the timer armed last.
func (m *manualTimers) fire(d time.Duration) { m.Advance(d) }

func newScriptConduit(t *testing.T, s *scriptTransport, eps []endpoint.Endpoint) (*Conduit, *manualTimers) {
	reg := NewRegistry()
	require.NoError(t, reg.Register(endpoint.KindTCP, s))
	timers := &manualTimers{Manual: clock.NewManual(time.Unix(0, 0)), created: make(chan time.Duration, 16)}
	c := New(&Config{
		Registry: reg,
		Resolver: resolver.ResolverFunc(func(context.Context, string) ([]endpoint.Endpoint, error) { return eps, nil }),
		Clock:    timers,
		// Every destination is its own source: no lookup leaves the
		// test (RFC 6724 then orders by precedence and scope).
		SourceAddr: func(dst netip.Addr) netip.Addr { return dst },
	})
	return c, timers
}

func TestHappyEyeballsFallbackDelayStartsNextAndClosesLoser(t *testing.T) {
	testutil.CheckLeaks(t)
	v6, v4 := tcpEP("[::1]:7"), tcpEP("127.0.0.1:7")
	s := newScript(v6, v4)
	s.stubborn = true
	c, timers := newScriptConduit(t, s, []endpoint.Endpoint{v6, v4})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type res struct {
		f   Flow
		err error
	}
	done := make(chan res, 1)
	go func() {
		f, err := c.Dial(ctx, "tcp://dual.test:7")
		done <- res{f, err}
	}()
	require.Equal(t, v6, <-s.started, "first attempt is the first endpoint")
	delay := <-timers.created
	select {
	case ep := <-s.started:
		t.Fatalf("second attempt %v started before the fallback delay", ep)
	default:
	}
	require.Equal(t, DefaultFallbackDelay, delay)
	timers.fire(delay) // the attempt delay elapses
	require.Equal(t, v4, <-s.started)
	s.outcome[v4.String()] <- nil // v4 wins
	r := <-done
	require.NoError(t, r.err)
	s.outcome[v6.String()] <- nil // the loser connects late…
	require.Equal(t, v6, <-s.closed, "…and its flow is closed")
	require.NoError(t, r.f.Close())
}

func TestHappyEyeballsFailureStartsNextAtOnceAndKeepsEveryError(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b, c3 := tcpEP("[::1]:7"), tcpEP("127.0.0.1:7"), tcpEP("[::2]:7")
	s := newScript(a, b, c3)
	c, timers := newScriptConduit(t, s, []endpoint.Endpoint{a, c3, b})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Dial(ctx, "tcp://three.test:7")
		errc <- err
	}()
	require.Equal(t, a, <-s.started)
	<-timers.created
	s.outcome[a.String()] <- syscall.ECONNREFUSED
	require.Equal(t, b, <-s.started, "a failure starts the next family at once")
	<-timers.created
	s.outcome[b.String()] <- context.DeadlineExceeded
	require.Equal(t, c3, <-s.started)
	s.outcome[c3.String()] <- syscall.ECONNRESET
	err := <-errc
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrRefused)
	assert.ErrorIs(t, err, ErrTimeout)
	assert.ErrorIs(t, err, ErrReset)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	var oe *OpError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "dial", oe.Op)
	assert.Equal(t, "tcp://three.test:7", oe.URI)
	assert.Contains(t, err.Error(), "all 3 attempts failed")
	assert.Contains(t, err.Error(), "[::1]:7")
	assert.Contains(t, err.Error(), "127.0.0.1:7")
}

func TestHappyEyeballsCancelStopsEveryAttempt(t *testing.T) {
	testutil.CheckLeaks(t)
	a, b := tcpEP("[::1]:7"), tcpEP("127.0.0.1:7")
	s := newScript(a, b)
	c, timers := newScriptConduit(t, s, []endpoint.Endpoint{a, b})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Dial(ctx, "tcp://x.test:7")
		errc <- err
	}()
	<-s.started
	timers.fire(<-timers.created)
	<-s.started
	cancel()
	err := <-errc
	require.ErrorIs(t, err, context.Canceled)
}
