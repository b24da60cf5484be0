package vchan

import "time"

// minSpin is the shortest spin worth doing: below it, block goes
// straight to the futex.
const minSpin = time.Microsecond

// spinPolicy adapts how long a blocked call polls the ring before it
// sleeps on the futex, between 0 and max (Config.SpinTime). A spin that
// ends in success keeps (and doubles back up to max) its budget; a spin
// that fails, because the peer is slow or descheduled (an oversubscribed
// machine, where our spinning may even be what keeps it off the CPU),
// halves it, down to 0: no spinning at all. A wait that ended on the
// futex sooner than max after it began means a spin would have caught
// the peer: the budget grows again. So a busy exchange between running
// processes spins, an idle or starved one sleeps at once.
//
// A spinPolicy is used under the Conn's read or write lock.
type spinPolicy struct {
	max, cur time.Duration
}

func newSpinPolicy(max time.Duration) spinPolicy { return spinPolicy{max: max, cur: max} }

// budget is how long to spin now.
func (s *spinPolicy) budget() time.Duration { return s.cur }

// spun records the end of a spin: ok if the condition came true.
func (s *spinPolicy) spun(ok bool) {
	if ok {
		s.cur = min(s.max, 2*s.cur)
		return
	}
	s.cur /= 2
	if s.cur < minSpin {
		s.cur = 0
	}
}

// slept records a wait that ended on the futex, waited after it began.
func (s *spinPolicy) slept(waited time.Duration) {
	if waited < s.max {
		s.cur = min(s.max, max(2*s.cur, minSpin))
	}
}
