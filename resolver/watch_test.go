package resolver_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// fakeTimers is Config.Clock for tests of one timer at a time: a
// manual clock whose AfterFunc reports each duration (and waits for the
// test to take it); fire advances the clock past the timer.
type fakeTimers struct {
	*clock.Manual
	req  chan time.Duration
	last time.Duration // the duration next returned last
}

func newFakeTimers() *fakeTimers {
	return &fakeTimers{Manual: clock.NewManual(time.Unix(0, 0)), req: make(chan time.Duration, 1)}
}

func (f *fakeTimers) AfterFunc(d time.Duration, fn func()) clock.Timer {
	t := f.Manual.AfterFunc(d, fn)
	f.req <- d
	return t
}

// next waits for the watcher to arm its timer and returns the duration.
func (f *fakeTimers) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-f.req:
		f.last = d
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no timer armed")
		return 0
	}
}

// fire advances the clock by the duration of the timer armed last, so
// that it fires.
func (f *fakeTimers) fire() { f.Advance(f.last) }

func recv(t *testing.T, ch <-chan resolver.Update) resolver.Update {
	t.Helper()
	select {
	case u, ok := <-ch:
		require.True(t, ok, "channel closed")
		return u
	case <-time.After(5 * time.Second):
		t.Fatal("no update")
		return resolver.Update{}
	}
}

func TestWatch(t *testing.T) {
	var (
		mu   sync.Mutex
		recs []dnsstub.SRV
		fail error
	)
	set := func(err error, targets ...string) {
		mu.Lock()
		defer mu.Unlock()
		recs, fail = nil, err
		for _, tg := range targets {
			recs = append(recs, dnsstub.SRV{Target: tg, Port: 80, Priority: 1, Weight: 1, TTL: time.Minute})
		}
	}
	timers := newFakeTimers()
	r := newTestResolver(t, &resolver.Config{
		Hosts: map[string][]netip.Addr{
			"a.w.test": {netip.MustParseAddr("192.0.2.1")},
			"b.w.test": {netip.MustParseAddr("192.0.2.2")},
		},
		Clock: timers,
		LookupSRV: func(ctx context.Context, name string) ([]dnsstub.SRV, error) {
			mu.Lock()
			defer mu.Unlock()
			return recs, fail
		},
	})
	set(nil, "a.w.test.")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := r.Watch(ctx, "srv://_http._tcp.w.test")
	require.NoError(t, err)

	u := recv(t, ch)
	require.NoError(t, u.Err)
	assert.Equal(t, []string{"tcp://a.w.test=192.0.2.1:80"}, strs(u.Endpoints))
	d := timers.next(t)
	assert.True(t, d >= 54*time.Second && d <= 66*time.Second, "TTL 60 s ±10%%: %v", d)

	// A new target: an update.
	set(nil, "a.w.test.", "b.w.test.")
	timers.fire()
	u = recv(t, ch)
	require.NoError(t, u.Err)
	assert.ElementsMatch(t, []string{"tcp://a.w.test=192.0.2.1:80", "tcp://b.w.test=192.0.2.2:80"}, strs(u.Endpoints))
	timers.next(t)

	// No change: no update.
	timers.fire()
	timers.next(t)
	assert.Len(t, ch, 0)

	// Failure: one update with the last good set, then backoff.
	set(errors.New("backend exploded"))
	timers.fire()
	u = recv(t, ch)
	require.Error(t, u.Err)
	assert.Len(t, u.Endpoints, 2)
	d1 := timers.next(t)
	assert.True(t, d1 >= time.Second && d1 <= 1100*time.Millisecond, "%v", d1)
	timers.fire()
	d2 := timers.next(t)
	assert.True(t, d2 >= 1800*time.Millisecond && d2 <= 2200*time.Millisecond, "%v", d2)
	assert.Len(t, ch, 0, "still failing: no update")

	// Recovery.
	set(nil, "b.w.test.")
	timers.fire()
	u = recv(t, ch)
	require.NoError(t, u.Err)
	assert.Equal(t, []string{"tcp://b.w.test=192.0.2.2:80"}, strs(u.Endpoints))
	timers.next(t)

	cancel()
	_, ok := <-ch
	assert.False(t, ok, "closed when ctx ends")
}

func TestWatchStaticAndClose(t *testing.T) {
	r, err := resolver.New(&resolver.Config{HostsFile: "-", LookupHost: fakeLookup, LookupSRV: fakeSRV})
	require.NoError(t, err)
	ch, err := r.Watch(context.Background(), "tcp://192.0.2.1:80")
	require.NoError(t, err)
	u := recv(t, ch)
	assert.Equal(t, []string{"tcp://192.0.2.1:80"}, strs(u.Endpoints))
	ch2, err := r.Watch(context.Background(), "tcp://example.com:80")
	require.NoError(t, err)
	recv(t, ch2)

	_, err = r.Watch(context.Background(), "tcp://192.0.2.1")
	assert.ErrorIs(t, err, resolver.ErrMalformedURI)

	require.NoError(t, r.Close())
	_, ok := <-ch
	assert.False(t, ok, "closed when the resolver is closed")
	_, ok = <-ch2
	assert.False(t, ok)
	_, err = r.Watch(context.Background(), "tcp://192.0.2.1:80")
	assert.ErrorIs(t, err, net.ErrClosed)
}
