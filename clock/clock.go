// Package clock is the injected time source of every conduit package that
// waits: Real for production, Manual for tests that advance time
// explicitly instead of sleeping (gVisor's tcpip.Clock and
// faketime.ManualClock).
//
// A configuration takes a Clock in a field named Clock, where nil means
// Real (conduit.Config, conduit.Server, resolver.Config, dnsstub.Config,
// stack.Options, tcp.Options, the links of tcpflow/link). A test builds
// the userspace stack, or anything else, on a Manual clock and moves time
// itself:
//
//	clk := clock.NewManual(time.Unix(0, 0))
//	s, err := stack.New(stack.Options{Addr: addr, Link: ep, Clock: clk})
//	// dial, write, lose a segment on the link …
//	clk.Advance(200 * time.Millisecond) // the retransmission timeout fires, in this goroutine
//
// Waits that another process or the kernel ends (socket and futex
// deadlines, the deadlines of net.Conn) keep real time whatever clock is
// configured.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and schedules functions. Implementations are safe
// for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine (Real) or in the goroutine
	// advancing time (Manual) once d has elapsed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a function scheduled by AfterFunc. It is safe for concurrent
// use.
type Timer interface {
	// Stop prevents the call if it has not started, reporting whether
	// it did so. When it reports false the call has run or is running
	// (on the Real clock, in its own goroutine): Stop does not wait for
	// it.
	Stop() bool
	// Reset schedules the call again, d from now, whether or not it
	// has run (as time.Timer's Reset does for AfterFunc timers),
	// reporting whether it was still scheduled.
	Reset(d time.Duration) bool
}

// Real returns the system clock: time.Now and time.AfterFunc, whose
// *time.Timer is the Timer.
func Real() Clock { return realClock{} }

type realClock struct{}

var (
	_ Clock = realClock{}
	_ Clock = (*Manual)(nil)
	_ Timer = (*time.Timer)(nil)
	_ Timer = (*manualTimer)(nil)
)

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// After is time.After on clk, for a select: it returns a channel that
// receives once d has passed on clk, and the timer, whose Stop releases
// it. The channel has room for its one value, so the timer never blocks,
// and a value that arrives after Stop is dropped with the channel.
func After(clk Clock, d time.Duration) (<-chan struct{}, Timer) {
	ch := make(chan struct{}, 1)
	t := clk.AfterFunc(d, func() { ch <- struct{}{} })
	return ch, t
}

// Manual is a Clock whose time moves only when Advance is called. Its
// methods are safe for concurrent use, but its timers run in the
// goroutine calling Advance, one after the other, so one goroutine (the
// test's) should drive it. The zero value is not usable; call NewManual.
type Manual struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*manualTimer
}

// NewManual returns a Manual clock set to start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

type manualTimer struct {
	c   *Manual
	at  time.Time
	seq uint64
	f   func()
}

// Now returns the clock's current time.
func (c *Manual) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f to run when the clock has been advanced by d.
// A d <= 0 runs f at the next Advance (even by 0).
func (c *Manual) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, at: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop cancels the timer if it has not fired.
func (t *manualTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, u := range c.timers {
		if u == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Reset schedules the timer again, d from the clock's current time.
func (t *manualTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	was := false
	for i, u := range c.timers {
		if u == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			was = true
			break
		}
	}
	c.seq++
	t.at, t.seq = c.now.Add(max(d, 0)), c.seq
	c.timers = append(c.timers, t)
	return was
}

// Pending returns the number of scheduled timers.
func (c *Manual) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Advance moves the clock forward by d, running every timer that falls
// due in order of due time (then of scheduling), each with the clock set
// to its due time, in the calling goroutine. Timers scheduled by those
// functions run too if they fall due within d.
func (c *Manual) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(max(d, 0))
	for {
		sort.Slice(c.timers, func(i, j int) bool {
			a, b := c.timers[i], c.timers[j]
			if !a.at.Equal(b.at) {
				return a.at.Before(b.at)
			}
			return a.seq < b.seq
		})
		if len(c.timers) == 0 || c.timers[0].at.After(end) {
			break
		}
		t := c.timers[0]
		c.timers = c.timers[1:]
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}
