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

// after returns a channel that receives once d has passed on clk, for a
// select, and the timer's Stop. The channel is buffered: the timer never
// blocks, and a value that arrives after Stop is dropped with it.
func after(clk clock.Clock, d time.Duration) (<-chan struct{}, func() bool) {
	ch := make(chan struct{}, 1)
	t := clk.AfterFunc(d, func() { ch <- struct{}{} })
	return ch, t.Stop
}
