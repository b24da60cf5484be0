//go:build !linux

package timerfd

import "time"

// Waker calls a function when the time it was armed for comes.
type Waker struct{}

// New returns ErrUnsupported: there is no timerfd here.
func New(fire func()) (*Waker, error) { return nil, ErrUnsupported }

// Arm is never called: New returns no Waker.
func (w *Waker) Arm(at time.Time) {}

// Close is never called: New returns no Waker.
func (w *Waker) Close() {}
