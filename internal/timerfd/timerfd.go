// Package timerfd calls a function at an absolute time, kept to
// microseconds on Linux by a timerfd (CLOCK_MONOTONIC, absolute
// expirations) that a goroutine of its own waits on in epoll_wait, with
// an eventfd to stop it. The Go runtime's timers round a short wait to
// its idle network poller's millisecond (clock's BenchmarkRealTimerLate:
// a 100 µs wait fires about a millisecond late in an idle process); a
// timerfd wakes the waiting thread within microseconds.
package timerfd

import "errors"

// ErrUnsupported is New's error where there is no timerfd.
var ErrUnsupported = errors.New("timerfd: not supported on this system")
