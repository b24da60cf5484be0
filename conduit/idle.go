package conduit

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// idleFlow is a flow of a listener with an idle timeout. It keeps the
// flow's read and write deadlines at most timeout+slack after the last
// Read or Write call began, so that a call blocked or made past them
// fails with a timeout; no timer of its own, and no system call on the
// hot path.
//
// Pushing the deadlines costs a timer update in the runtime poller, so
// a call pushes them only when they were last pushed more than slack
// (timeout/16) ago. The deadline therefore falls between timeout and
// timeout+slack after the last activity.
//
// The caller's own deadlines are kept: the earlier of the caller's and
// the idle deadline applies.
type idleFlow struct {
	Flow
	timeout time.Duration
	slack   time.Duration
	base    time.Time                     // the origin of the offsets below (monotonic)
	since   func(time.Time) time.Duration // time.Since; tests inject a clock

	last atomic.Int64 // offset of the last push claimed, in ns

	mu     sync.Mutex // serialises pushes and the caller's Set*Deadline
	pushed time.Duration
	rd, wd time.Time // the caller's deadlines; zero is none
}

// newIdleFlow wraps f and sets its first deadlines.
func newIdleFlow(f Flow, timeout time.Duration) *idleFlow {
	return newIdleFlowClock(f, timeout, time.Now(), time.Since)
}

func newIdleFlowClock(f Flow, timeout time.Duration, base time.Time, since func(time.Time) time.Duration) *idleFlow {
	i := &idleFlow{Flow: f, timeout: timeout, slack: timeout / 16, base: base, since: since}
	i.push(since(base))
	i.last.Store(int64(i.pushed))
	return i
}

// touch records activity: it pushes the deadlines if they are stale.
func (f *idleFlow) touch() {
	now := f.since(f.base)
	last := f.last.Load()
	if now-time.Duration(last) < f.slack || !f.last.CompareAndSwap(last, int64(now)) {
		return // fresh enough, or another call is pushing them
	}
	f.push(now)
}

// push sets the deadlines for activity at now (an offset from base).
func (f *idleFlow) push(now time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now < f.pushed {
		return // a later push got here first
	}
	f.pushed = now
	f.apply()
}

// idleDeadline is the deadline of the last push; f.mu is held.
func (f *idleFlow) idleDeadline() time.Time {
	return f.base.Add(f.pushed + f.timeout + f.slack)
}

// apply sets the flow's deadlines; f.mu is held.
func (f *idleFlow) apply() error {
	idle := f.idleDeadline()
	err := f.Flow.SetReadDeadline(earlier(f.rd, idle))
	if werr := f.Flow.SetWriteDeadline(earlier(f.wd, idle)); err == nil {
		err = werr
	}
	return err
}

// earlier returns the earlier of a caller's deadline (zero: none) and
// the idle deadline.
func earlier(caller, idle time.Time) time.Time {
	if !caller.IsZero() && caller.Before(idle) {
		return caller
	}
	return idle
}

func (f *idleFlow) Read(b []byte) (int, error) {
	f.touch()
	return f.Flow.Read(b)
}

func (f *idleFlow) Write(b []byte) (int, error) {
	f.touch()
	return f.Flow.Write(b)
}

func (f *idleFlow) Writev(bufs net.Buffers) (int64, error) {
	f.touch()
	return f.Flow.Writev(bufs)
}

// WriteNodelay writes b and pushes it at once when the flow can
// (tcpflow.Flow, *tlsflow.Conn); otherwise it is Write.
func (f *idleFlow) WriteNodelay(b []byte) (int, error) {
	f.touch()
	if nd, ok := f.Flow.(interface{ WriteNodelay([]byte) (int, error) }); ok {
		return nd.WriteNodelay(b)
	}
	return f.Flow.Write(b)
}

// WritevNodelay is Writev, pushed at once when the flow can.
func (f *idleFlow) WritevNodelay(bufs net.Buffers) (int64, error) {
	f.touch()
	if nd, ok := f.Flow.(interface {
		WritevNodelay(net.Buffers) (int64, error)
	}); ok {
		return nd.WritevNodelay(bufs)
	}
	return f.Flow.Writev(bufs)
}

func (f *idleFlow) CloseWrite() error {
	f.touch()
	return f.Flow.CloseWrite()
}

// SetDeadline sets the caller's read and write deadlines; the idle
// deadline still applies when it is earlier.
func (f *idleFlow) SetDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rd, f.wd = t, t
	return f.apply()
}

// SetReadDeadline sets the caller's read deadline, as SetDeadline.
func (f *idleFlow) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rd = t
	return f.Flow.SetReadDeadline(earlier(t, f.idleDeadline()))
}

// SetWriteDeadline sets the caller's write deadline, as SetDeadline.
func (f *idleFlow) SetWriteDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wd = t
	return f.Flow.SetWriteDeadline(earlier(t, f.idleDeadline()))
}

// Unwrap returns the flow of the transport, for type assertions to
// tcpflow.Flow or *tlsflow.Conn.
func (f *idleFlow) Unwrap() Flow { return f.Flow }
