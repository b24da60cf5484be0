package tcp

import (
	"time"

	"github.com/conduit-go/conduit/clock"
)

// timer is a lazily re-armed timer of an endpoint: set only moves a
// deadline, and the underlying clock timer, when it fires early, arms
// itself again for the deadline. So restarting the RTO on every ACK
// costs no clock operation, and the clock timer, made once, is reset
// rather than replaced: timers allocate nothing once a connection
// runs. Every method is called with e.mu held, and the endpoint's
// handler for the timer's kind runs with e.mu held.
type timer struct {
	e *endpoint
	t clock.Timer
	// Deadlines on the protocol's clock (Protocol.since), so that a
	// connection's seven timers take 8 bytes each instead of a
	// time.Time's 24: at is the deadline, zero when stopped; tAt is
	// when t fires, zero when it is not pending.
	at, tAt time.Duration
	kind    timerKind
}

// timerKind says which of an endpoint's timers a timer is: a small
// integer rather than a func value, which would cost every connection
// an allocation per timer.
type timerKind uint8

const (
	timerRTO timerKind = iota
	timerPersist
	timerKeepalive
	timerClose
	timerRACK
	timerTLP
	timerDelayedACK
)

func (t *timer) init(e *endpoint, k timerKind) { t.e, t.kind = e, k }

// armed reports whether the timer is set.
func (t *timer) armed() bool { return t.at != 0 }

// set arms the timer to fire d from now, replacing any deadline.
func (t *timer) set(d time.Duration) {
	now := t.e.p.since(t.e.now())
	t.at = max(now+d, 1)
	if t.tAt != 0 && t.tAt <= t.at {
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

func (t *timer) arm(now time.Duration) {
	t.tAt = t.at
	if t.t == nil {
		clk := t.e.p.clk
		if t.kind == timerDelayedACK {
			clk = t.e.p.ackClock()
		}
		t.t = clk.AfterFunc(t.at-now, t.fire)
		return
	}
	t.t.Reset(t.at - now)
}

// stop disarms the timer (the clock timer may still fire, uselessly).
func (t *timer) stop() { t.at = 0 }

// release stops the clock timer too: the endpoint is going away. A call
// already under way finds the deadline cleared and does nothing.
func (t *timer) release() {
	t.at, t.tAt = 0, 0
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
	if t.at == 0 {
		t.tAt = 0
		return
	}
	now := e.p.since(e.now())
	if now < t.at {
		t.arm(now)
		return
	}
	t.tAt, t.at = 0, 0
	switch t.kind {
	case timerRTO:
		e.onRTO()
	case timerPersist:
		e.onPersist()
	case timerKeepalive:
		e.onKeepalive()
	case timerClose:
		e.onCloseTimer()
	case timerRACK:
		e.onRackTimer()
	case timerTLP:
		e.onTLP()
	case timerDelayedACK:
		e.onDelayedAck()
	}
}
