package tcp

import (
	"time"

	"github.com/conduit-go/conduit/tcpflow/internal/clock"
)

// timer is a lazily re-armed timer of an endpoint: set only moves a
// deadline, and the underlying clock timer, when it fires early, arms
// itself again for the deadline. So restarting the RTO on every ACK
// costs no clock operation. Every method is called with e.mu held, and
// fn runs with e.mu held.
type timer struct {
	e   *endpoint
	fn  func()
	at  time.Time // deadline; zero when stopped
	t   clock.Timer
	tAt time.Time // when t fires
	gen uint64    // identifies t, so a stale callback does nothing
}

func (t *timer) init(e *endpoint, fn func()) { t.e, t.fn = e, fn }

// armed reports whether the timer is set.
func (t *timer) armed() bool { return !t.at.IsZero() }

// set arms the timer to fire d from now, replacing any deadline.
func (t *timer) set(d time.Duration) {
	clk := t.e.p.clk
	now := clk.Now()
	t.at = now.Add(d)
	if t.t != nil && !t.tAt.After(t.at) {
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
	if t.t != nil {
		t.t.Stop()
	}
	t.gen++
	g := t.gen
	t.tAt = t.at
	t.t = t.e.p.clk.AfterFunc(t.at.Sub(now), func() { t.fire(g) })
}

// stop disarms the timer (the clock timer may still fire, uselessly).
func (t *timer) stop() { t.at = time.Time{} }

// release stops the clock timer too: the endpoint is going away.
func (t *timer) release() {
	t.at = time.Time{}
	if t.t != nil {
		t.t.Stop()
		t.t = nil
		t.gen++
	}
}

func (t *timer) fire(g uint64) {
	e := t.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if g != t.gen {
		return
	}
	t.t = nil
	if t.at.IsZero() {
		return
	}
	now := e.p.clk.Now()
	if now.Before(t.at) {
		t.arm(now)
		return
	}
	t.at = time.Time{}
	t.fn()
}
