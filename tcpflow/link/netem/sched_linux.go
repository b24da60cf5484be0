//go:build linux

package netem

import (
	"fmt"
	"time"

	"github.com/conduit-go/conduit/internal/timerfd"
)

// timerfdScheduler keeps real time with a timerfd.Waker: a 1 ms delay
// is kept to microseconds, where the runtime's timers would round a
// short wait to its idle poller's millisecond.
type timerfdScheduler struct{ w *timerfd.Waker }

// newRealScheduler returns the scheduler of a wire without a Config.Clock.
func newRealScheduler(fire func()) (scheduler, error) {
	w, err := timerfd.New(fire)
	if err != nil {
		return nil, fmt.Errorf("netem: %w", err)
	}
	return timerfdScheduler{w}, nil
}

func (s timerfdScheduler) now() time.Time   { return time.Now() }
func (s timerfdScheduler) arm(at time.Time) { s.w.Arm(at) }
func (s timerfdScheduler) close()           { s.w.Close() }
