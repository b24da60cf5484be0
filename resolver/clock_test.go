package resolver_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conduit-go/conduit/clock"
)

// fakeClock is Config.Clock for tests that run several timers at once
// (the SRV target deadlines): a manual clock that records every
// duration AfterFunc is called with and signals each call, and whose
// advance says how many timers fired. Safe for concurrent use.
type fakeClock struct {
	*clock.Manual
	fired   atomic.Int64
	mu      sync.Mutex
	asked   []time.Duration // every duration AfterFunc was called with
	changed chan struct{}   // signalled (without blocking) by AfterFunc
}

func newFakeClock() *fakeClock {
	return &fakeClock{Manual: clock.NewManual(time.Unix(0, 0)), changed: make(chan struct{}, 1)}
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := c.Manual.AfterFunc(d, func() {
		c.fired.Add(1)
		f()
	})
	c.mu.Lock()
	c.asked = append(c.asked, d)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return t
}

// advance moves the clock by d and fires the timers then due, returning
// how many fired.
func (c *fakeClock) advance(d time.Duration) int {
	before := c.fired.Load()
	c.Advance(d)
	return int(c.fired.Load() - before)
}

// waitPending waits until at least n timers are armed and neither fired
// nor stopped; it fails the test after a minute (a hang guard).
func (c *fakeClock) waitPending(t testing.TB, n int) {
	t.Helper()
	guard := time.After(time.Minute)
	for {
		got := c.Pending()
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

// durations returns every duration AfterFunc was called with.
func (c *fakeClock) durations() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.asked...)
}

// waitAsked waits until AfterFunc has been called at least n times and
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
