package conduitgrpc

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/endpoint"
	cresolver "github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

const guard = 30 * time.Second // hang guard of waits, never a threshold

// fakeWatcher is a Watcher whose updates the test sends.
type fakeWatcher struct {
	mu      sync.Mutex
	watches []*fakeWatch
	started chan *fakeWatch
	err     error // returned by Watch when set
}

type fakeWatch struct {
	ctx  context.Context
	in   chan cresolver.Update
	done chan struct{} // closed when the watch's goroutine has closed its channel
}

func newFakeWatcher() *fakeWatcher { return &fakeWatcher{started: make(chan *fakeWatch, 16)} }

func (f *fakeWatcher) Watch(ctx context.Context, uri string) (<-chan cresolver.Update, error) {
	if f.err != nil {
		return nil, f.err
	}
	w := &fakeWatch{ctx: ctx, in: make(chan cresolver.Update), done: make(chan struct{})}
	out := make(chan cresolver.Update)
	go func() { // as URIResolver's: the channel closes when ctx ends
		defer close(w.done)
		defer close(out)
		for {
			select {
			case u := <-w.in:
				select {
				case out <- u:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	f.mu.Lock()
	f.watches = append(f.watches, w)
	f.mu.Unlock()
	f.started <- w
	return out, nil
}

func (f *fakeWatcher) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watches)
}

// send hands u to the watch's reader.
func (w *fakeWatch) send(t *testing.T, u cresolver.Update) {
	t.Helper()
	select {
	case w.in <- u:
	case <-time.After(guard):
		t.Fatal("hang guard: the update was not read")
	}
}

// end ends the watch as a closed resolver does.
func nextWatch(t *testing.T, f *fakeWatcher) *fakeWatch {
	t.Helper()
	select {
	case w := <-f.started:
		return w
	case <-time.After(guard):
		t.Fatal("hang guard: no watch started")
		return nil
	}
}

// fakeCC is a gRPC resolver.ClientConn that records what it is told.
type fakeCC struct {
	states chan gresolver.State
	errs   chan error
}

func newFakeCC() *fakeCC {
	return &fakeCC{states: make(chan gresolver.State, 16), errs: make(chan error, 16)}
}

func (c *fakeCC) UpdateState(s gresolver.State) error { c.states <- s; return nil }
func (c *fakeCC) ReportError(err error)               { c.errs <- err }
func (c *fakeCC) NewAddress([]gresolver.Address)      {}
func (c *fakeCC) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return nil
}

func (c *fakeCC) state(t *testing.T) gresolver.State {
	t.Helper()
	select {
	case s := <-c.states:
		return s
	case <-time.After(guard):
		t.Fatal("hang guard: no state")
		return gresolver.State{}
	}
}

func (c *fakeCC) err(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.errs:
		return err
	case <-time.After(guard):
		t.Fatal("hang guard: no error")
		return nil
	}
}

// advance waits for the run loop to have scheduled n timers on clk
// and moves clk past them (their callbacks run here).
func advance(t *testing.T, clk *clock.Manual, n int) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for clk.Pending() < n {
		if time.Now().After(deadline) {
			t.Fatalf("hang guard: %d timers never scheduled", n)
		}
		time.Sleep(time.Millisecond) // polling step; the guard decides
	}
	clk.Advance(DefaultResolveNowInterval)
}

var (
	ep1 = endpoint.TCP{Host: "a.test", Addr: netip.MustParseAddrPort("192.0.2.1:50051")}
	ep2 = endpoint.TCP{Host: "b.test", Addr: netip.MustParseAddrPort("192.0.2.2:50051")}
)

func build(t *testing.T, w Watcher, clk clock.Clock, target string) (gresolver.Resolver, *fakeCC) {
	t.Helper()
	b, err := NewBuilder(&Options{Resolver: w, Clock: clk})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	u, err := url.Parse(target)
	require.NoError(t, err)
	cc := newFakeCC()
	r, err := b.Build(gresolver.Target{URL: *u}, cc, gresolver.BuildOptions{})
	require.NoError(t, err)
	return r, cc
}

func TestResolverPushesChangesOnly(t *testing.T) {
	f := newFakeWatcher()
	r, cc := build(t, f, clock.NewManual(time.Unix(0, 0)), "conduit:///tcp://a.test:50051")
	defer r.Close()
	w := nextWatch(t, f)
	w.send(t, cresolver.Update{Endpoints: []endpoint.Endpoint{ep1}})
	assert.Equal(t, []string{"192.0.2.1:50051"}, stateAddrs(cc.state(t)))
	w.send(t, cresolver.Update{Endpoints: []endpoint.Endpoint{ep1}}) // the same: not pushed
	w.send(t, cresolver.Update{Endpoints: []endpoint.Endpoint{ep2, ep1}})
	assert.Equal(t, []string{"192.0.2.2:50051", "192.0.2.1:50051"}, stateAddrs(cc.state(t)))
	w.send(t, cresolver.Update{Endpoints: []endpoint.Endpoint{ep1, ep2}}) // another order: the same set
	w.send(t, cresolver.Update{Endpoints: []endpoint.Endpoint{ep2}})
	assert.Equal(t, []string{"192.0.2.2:50051"}, stateAddrs(cc.state(t)))
}

func TestResolverReportsErrorsAndKeepsTheLastState(t *testing.T) {
	f := newFakeWatcher()
	r, cc := build(t, f, clock.NewManual(time.Unix(0, 0)), "conduit:///tcp://a.test:50051")
	defer r.Close()
	w := nextWatch(t, f)
	w.send(t, cresolver.Update{Endpoints: []endpoint.Endpoint{ep1}})
	cc.state(t)
	cause := errors.New("dns: server failed")
	w.send(t, cresolver.Update{Endpoints: []endpoint.Endpoint{ep1}, Err: cause})
	err := cc.err(t)
	assert.ErrorIs(t, err, cause)
	assert.Equal(t, "conduitgrpc: dns: server failed", err.Error())
	// Recovery with the same endpoints is pushed: it clears the error.
	w.send(t, cresolver.Update{Endpoints: []endpoint.Endpoint{ep1}})
	assert.Equal(t, []string{"192.0.2.1:50051"}, stateAddrs(cc.state(t)))
	assert.Empty(t, cc.states)
}

func TestResolveNowIsRateLimited(t *testing.T) {
	f := newFakeWatcher()
	clk := clock.NewManual(time.Unix(0, 0))
	r, _ := build(t, f, clk, "conduit:///tcp://a.test:50051")
	defer r.Close()
	w1 := nextWatch(t, f)

	// The first ResolveNow resolves at once: a new Watch, no time passed.
	r.ResolveNow(gresolver.ResolveNowOptions{})
	w2 := nextWatch(t, f)
	<-w1.done // the old Watch ended before the new one started
	assert.Error(t, w1.ctx.Err())

	// Within its interval, the next ones wait, merged into one.
	r.ResolveNow(gresolver.ResolveNowOptions{})
	r.ResolveNow(gresolver.ResolveNowOptions{})
	r.ResolveNow(gresolver.ResolveNowOptions{})
	advance(t, clk, 1) // the interval ends
	w3 := nextWatch(t, f)
	<-w2.done
	assert.Equal(t, 3, f.count())
	require.NoError(t, w3.ctx.Err())

	// The restart began another interval; one that ends without a
	// request asks for no resolution.
	advance(t, clk, 1)
	r.Close()
	assert.Equal(t, 3, f.count())
	assert.Zero(t, clk.Pending())
}

func TestCloseStopsTheWatch(t *testing.T) {
	f := newFakeWatcher()
	r, cc := build(t, f, clock.NewManual(time.Unix(0, 0)), "conduit:///unix:///run/app.sock")
	w := nextWatch(t, f)
	w.send(t, cresolver.Update{Endpoints: []endpoint.Endpoint{endpoint.Unix{Path: "/run/app.sock"}}})
	assert.Equal(t, []string{"unix:///run/app.sock"}, stateAddrs(cc.state(t)))
	r.Close()
	<-w.done
	assert.Error(t, w.ctx.Err())
	r.ResolveNow(gresolver.ResolveNowOptions{}) // after Close: nothing happens, nothing blocks
	assert.Equal(t, 1, f.count())
}

func TestWatchEndReportsAnError(t *testing.T) {
	r, err := cresolver.New(&cresolver.Config{HostsFile: "-", LookupHost: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
	}, LookupSRV: func(context.Context, string) ([]dnsstub.SRV, error) { return nil, errors.New("no") }})
	require.NoError(t, err)
	res, cc := build(t, r, clock.NewManual(time.Unix(0, 0)), "conduit:///tcp://a.test:50051")
	defer res.Close()
	cc.state(t)
	r.Close() // the resolver goes away under the channel
	assert.ErrorIs(t, cc.err(t), errWatchEnded)
	assert.Empty(t, cc.states)
}

func TestBuildFails(t *testing.T) {
	f := newFakeWatcher()
	b, err := NewBuilder(&Options{Resolver: f})
	require.NoError(t, err)
	defer b.Close()
	for target, want := range map[string]string{
		"conduit://auth/tcp://a.test:1": "has an authority",
		"conduit:///":                   "names no conduit URI",
		"conduit:///tcp://a.test":       "missing port",
		"conduit:///unix://x/y":         "not allowed",
	} {
		u, err := url.Parse(target)
		require.NoError(t, err)
		_, err = b.Build(gresolver.Target{URL: *u}, newFakeCC(), gresolver.BuildOptions{})
		if assert.Error(t, err, target) {
			assert.Contains(t, err.Error(), want, target)
		}
	}
	f.err = errors.New("resolver: closed")
	u, _ := url.Parse("conduit:///tcp://a.test:1")
	_, err = b.Build(gresolver.Target{URL: *u}, newFakeCC(), gresolver.BuildOptions{})
	assert.EqualError(t, err, "resolver: closed")
	assert.Equal(t, 0, f.count())
}

func TestScheme(t *testing.T) {
	b, err := NewBuilder(&Options{Resolver: newFakeWatcher()})
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, DefaultScheme, b.Scheme())
	b2, err := NewBuilder(&Options{Resolver: newFakeWatcher(), Scheme: "svc"})
	require.NoError(t, err)
	defer b2.Close()
	assert.Equal(t, "svc", b2.Scheme())
	u, _ := url.Parse("svc:///https+srv://api.example")
	assert.Equal(t, "api.example", b2.OverrideAuthority(gresolver.Target{URL: *u}))
}

func stateAddrs(s gresolver.State) []string {
	var out []string
	for _, e := range s.Endpoints {
		for _, a := range e.Addresses {
			out = append(out, a.Addr)
		}
	}
	return out
}

func TestTargetURIAndNames(t *testing.T) {
	for _, tc := range []struct{ target, uri, name, srv string }{
		{"conduit:///https+srv://api.prod.svc.cluster.local", "https+srv://api.prod.svc.cluster.local", "api.prod.svc.cluster.local", "_https._tcp.api.prod.svc.cluster.local"},
		{"conduit:///srv://_grpc._tcp.svc.test", "srv://_grpc._tcp.svc.test", "svc.test", "_grpc._tcp.svc.test"},
		{"conduit:///tcp://[2001:db8::1]:50051", "tcp://[2001:db8::1]:50051", "[2001:db8::1]", ""},
		{"conduit:///tls://192.0.2.1:443?sni=api.example", "tls://192.0.2.1:443?sni=api.example", "api.example", ""},
		{"conduit:///unix:///tmp/my%20app.sock", "unix:///tmp/my%20app.sock", "localhost", ""},
		{"conduit:///tls+vchan://7/grpc?sni=vm7.example", "tls+vchan://7/grpc?sni=vm7.example", "vm7.example", ""},
		{"conduit:tcp://Example.COM.:80", "tcp://Example.COM.:80", "example.com", ""},
		{"other:///http://example.com", "http://example.com", "example.com", ""},
	} {
		u, err := url.Parse(tc.target)
		require.NoError(t, err)
		uri, err := targetURI(gresolver.Target{URL: *u})
		require.NoError(t, err, tc.target)
		assert.Equal(t, tc.uri, uri)
		name, srv, err := uriNames(uri)
		require.NoError(t, err, tc.target)
		assert.Equal(t, tc.name, name, tc.target)
		assert.Equal(t, tc.srv, srv, tc.target)
	}
}

func FuzzTargetURI(f *testing.F) {
	for _, s := range []string{"https+srv://api.example", "unix:///tmp/a%20b.sock", "tls://[::1]:443?sni=x", "vchan://7/p", "tcp://a:1#frag", "%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse("conduit:///" + s)
		if err != nil {
			return
		}
		uri, err := targetURI(gresolver.Target{URL: *u})
		if err != nil {
			return
		}
		if _, perr := cresolver.ParseURI(s); perr == nil && uri != s {
			t.Fatalf("valid conduit URI %q came back as %q", s, uri)
		}
		name, _, err := uriNames(uri)
		if err == nil && name == "" {
			t.Fatalf("%q: empty logical name", uri)
		}
	})
}
