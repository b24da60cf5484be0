package clock_test

import (
	"fmt"
	"time"

	"github.com/conduit-go/conduit/clock"
)

// A Manual clock runs its timers in the goroutine that advances it, each
// at its due time.
func ExampleManual() {
	clk := clock.NewManual(time.Unix(0, 0))
	start := clk.Now()
	retransmit := clk.AfterFunc(200*time.Millisecond, func() {
		fmt.Println("retransmit at", clk.Now().Sub(start))
	})
	clk.AfterFunc(time.Second, func() { fmt.Println("keepalive at", clk.Now().Sub(start)) })
	clk.Advance(150 * time.Millisecond)
	retransmit.Reset(200 * time.Millisecond) // an ACK came: the timer restarts
	clk.Advance(time.Second)
	fmt.Println(clk.Pending(), "pending")
	// Output:
	// retransmit at 350ms
	// keepalive at 1s
	// 0 pending
}
