package conduit

import (
	"time"

	"github.com/conduit-go/conduit/clock"
)

// orReal returns clk, or the real clock when clk is nil.
func orReal(clk clock.Clock) clock.Clock {
	if clk == nil {
		return clock.Real()
	}
	return clk
}

// after is clock.After with the timer's Stop.
func after(clk clock.Clock, d time.Duration) (<-chan struct{}, func() bool) {
	ch, t := clock.After(clk, d)
	return ch, t.Stop
}
