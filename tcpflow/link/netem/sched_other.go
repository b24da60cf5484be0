//go:build !linux

package netem

import "github.com/conduit-go/conduit/clock"

// newRealScheduler returns the scheduler of a wire without a
// Config.Clock: the runtime's timers, elsewhere than on Linux.
func newRealScheduler(fire func()) (scheduler, error) {
	return newClockScheduler(clock.Real(), fire), nil
}
