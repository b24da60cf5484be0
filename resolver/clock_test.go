package resolver_test

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is Config.After for tests that run several timers at once
// (the SRV target deadlines): After registers a timer due at the fake
// now plus d, and advance moves now and fires the timers due. Safe for
// concurrent use.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Duration
	pending []*fakeTimer    // armed, not fired
	asked   []time.Duration // every duration After was called with
	changed chan struct{}   // signalled (without blocking) by After
}

type fakeTimer struct {
	due time.Duration
	ch  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{changed: make(chan struct{}, 1)} }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{due: c.now + d, ch: make(chan time.Time, 1)}
	c.pending = append(c.pending, t)
	c.asked = append(c.asked, d)
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return t.ch
}

// advance moves the clock by d and fires the timers then due, returning
// how many fired.
func (c *fakeClock) advance(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now += d
	kept, fired := c.pending[:0], 0
	for _, t := range c.pending {
		if t.due <= c.now {
			t.ch <- time.Unix(0, 0).Add(c.now)
			fired++
			continue
		}
		kept = append(kept, t)
	}
	c.pending = kept
	return fired
}

// waitPending waits until at least n timers are armed and not fired; it
// fails the test after a minute (a hang guard).
func (c *fakeClock) waitPending(t testing.TB, n int) {
	t.Helper()
	guard := time.After(time.Minute)
	for {
		c.mu.Lock()
		got := len(c.pending)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.changed:
		case <-guard:
			t.Fatalf("%d timers armed, want %d", got, n)
		}
	}
}

// durations returns every duration After was called with.
func (c *fakeClock) durations() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.asked...)
}

// waitAsked waits until After has been called at least n times and
// returns the n-th duration; it fails the test after a minute (a hang
// guard).
func (c *fakeClock) waitAsked(t testing.TB, n int) time.Duration {
	t.Helper()
	guard := time.After(time.Minute)
	for {
		c.mu.Lock()
		if len(c.asked) >= n {
			d := c.asked[n-1]
			c.mu.Unlock()
			return d
		}
		got := len(c.asked)
		c.mu.Unlock()
		select {
		case <-c.changed:
		case <-guard:
			t.Fatalf("%d timers armed, want %d", got, n)
		}
	}
}
