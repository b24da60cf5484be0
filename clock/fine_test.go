package clock

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/timerfd"
)

func newFine(tb testing.TB) *Fine {
	c, err := NewFine()
	if errors.Is(err, timerfd.ErrUnsupported) {
		tb.Skip(err)
	}
	require.NoError(tb, err)
	return c
}

// TestFine: timers run in the order of their due times, a stopped one
// never, a reset one at its new time; after Close nothing runs and
// the clock's goroutine is gone (TestMain checks).
func TestFine(t *testing.T) {
	c := newFine(t)
	ran := make(chan int, 8)
	c.AfterFunc(3*time.Millisecond, func() { ran <- 3 })
	c.AfterFunc(time.Millisecond, func() { ran <- 1 })
	stopped := c.AfterFunc(2*time.Millisecond, func() { ran <- 99 })
	assert.True(t, stopped.Stop())
	assert.False(t, stopped.Stop(), "stopped already")
	moved := c.AfterFunc(time.Hour, func() { ran <- 2 })
	assert.True(t, moved.Reset(2*time.Millisecond), "it was pending")
	var got []int
	for len(got) < 3 {
		select {
		case n := <-ran:
			got = append(got, n)
		case <-time.After(10 * time.Second):
			t.Fatalf("ran %v", got)
		}
	}
	assert.Equal(t, []int{1, 2, 3}, got)
	assert.False(t, moved.Reset(0), "it had run")
	assert.Equal(t, 2, <-ran, "reset after running: runs again")

	late := c.AfterFunc(time.Hour, func() { ran <- 100 })
	require.NoError(t, c.Close())
	assert.False(t, late.Stop(), "Close dropped it")
	assert.False(t, late.Reset(0))
	c.AfterFunc(0, func() { ran <- 101 })
	assert.Empty(t, ran)
}
