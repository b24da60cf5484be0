package netem

import (
	"sync"
	"time"

	"github.com/conduit-go/conduit/clock"
)

// scheduler calls a direction's fire once the time it was last armed
// for has come. arm may be called from any goroutine, fire included;
// a later arm replaces the earlier one. close stops it and waits for a
// fire that is running; fire is not called once close has returned.
type scheduler interface {
	now() time.Time
	arm(at time.Time)
	close()
}

// clockScheduler arms a timer of a clock.Clock.
type clockScheduler struct {
	clk  clock.Clock
	fire func()

	mu     sync.Mutex
	timer  clock.Timer
	closed bool
	wg     sync.WaitGroup // a timer scheduled and not stopped
}

func newClockScheduler(clk clock.Clock, fire func()) *clockScheduler {
	return &clockScheduler{clk: clk, fire: fire}
}

func (s *clockScheduler) now() time.Time { return s.clk.Now() }

func (s *clockScheduler) arm(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.timer != nil && s.timer.Stop() {
		s.wg.Done()
	}
	s.wg.Add(1)
	s.timer = s.clk.AfterFunc(max(at.Sub(s.clk.Now()), 0), func() {
		defer s.wg.Done()
		s.fire()
	})
}

func (s *clockScheduler) close() {
	s.mu.Lock()
	s.closed = true
	if s.timer != nil && s.timer.Stop() {
		s.wg.Done()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
