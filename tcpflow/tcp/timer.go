package tcp

import (
	"time"

	"github.com/conduit-go/conduit/tcpflow/internal/clock"
)

// timer is a lazily re-armed timer of an endpoint: set only moves a
// deadline, and the underlying clock timer, when it fires early, arms
// itself again for the deadline. So restarting the RTO on every ACK
// costs no clock operation, and the clock timer, made once, is reset
// rather than replaced: timers allocate nothing once a connection
// runs. Every method is called with e.mu held, and fn runs with e.mu
// held.
type timer struct {
	e   *endpoint
	fn  func()
	at  time.Time // deadline; zero when stopped
	t   clock.Timer
	tAt time.Time // when t fires; zero when it is not pending
}

func (t *timer) init(e *endpoint, fn func()) { t.e, t.fn = e, fn }

// armed reports whether the timer is set.
func (t *timer) armed() bool { return !t.at.IsZero() }

// set arms the timer to fire d from now, replacing any deadline.
func (t *timer) set(d time.Duration) {
	now := t.e.now()
	t.at = now.Add(d)
	if !t.tAt.IsZero() && !t.tAt.After(t.at) {
		return // fires first and re-arms
	}
	t.arm(now)
}

// setIfStopped arms the timer only if it is not set.
func (t *timer) setIfStopped(d time.Duration) {
	if !t.armed() {
		t.set(d)
	}
}

func (t *timer) arm(now time.Time) {
	t.tAt = t.at
	if t.t == nil {
		t.t = t.e.p.clk.AfterFunc(t.at.Sub(now), t.fire)
		return
	}
	t.t.Reset(t.at.Sub(now))
}

// stop disarms the timer (the clock timer may still fire, uselessly).
func (t *timer) stop() { t.at = time.Time{} }

// release stops the clock timer too: the endpoint is going away. A call
// already under way finds the deadline cleared and does nothing.
func (t *timer) release() {
	t.at, t.tAt = time.Time{}, time.Time{}
	if t.t != nil {
		t.t.Stop()
	}
}

// fire runs when the clock timer expires. It may be stale (reset since
// it was started): the deadline decides what happens.
func (t *timer) fire() {
	e := t.e
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.endTick(e.tick())
	if t.at.IsZero() {
		t.tAt = time.Time{}
		return
	}
	now := e.now()
	if now.Before(t.at) {
		t.arm(now)
		return
	}
	t.tAt = time.Time{}
	t.at = time.Time{}
	t.fn()
}
