package vchan

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSpinPolicy(t *testing.T) {
	const max = 50 * time.Microsecond
	s := newSpinPolicy(max)
	assert.Equal(t, max, s.budget(), "starts spinning fully")
	s.spun(true)
	assert.Equal(t, max, s.budget(), "success keeps the budget")

	// A descheduled peer: every spin fails and every wait is long.
	for range 10 {
		s.spun(false)
		s.slept(time.Millisecond)
	}
	assert.Zero(t, s.budget(), "failing spins stop spinning")

	// The peer answers quickly again: the budget comes back.
	s.slept(5 * time.Microsecond)
	assert.Equal(t, minSpin, s.budget())
	for range 10 {
		s.spun(true)
	}
	assert.Equal(t, max, s.budget())

	// Disabled spinning stays disabled.
	z := newSpinPolicy(0)
	z.slept(0)
	z.spun(true)
	assert.Zero(t, z.budget())
}
