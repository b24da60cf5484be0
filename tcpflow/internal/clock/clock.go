// Package clock is the former home of the public package
// github.com/conduit-go/conduit/clock, kept as aliases while tcpflow's
// imports move there.
package clock

import (
	"time"

	"github.com/conduit-go/conduit/clock"
)

type (
	// Clock is clock.Clock.
	Clock = clock.Clock
	// Timer is clock.Timer.
	Timer = clock.Timer
	// Manual is clock.Manual.
	Manual = clock.Manual
)

// Real is clock.Real.
func Real() Clock { return clock.Real() }

// NewManual is clock.NewManual.
func NewManual(start time.Time) *Manual { return clock.NewManual(start) }
