package clock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestManual(t *testing.T) {
	start := time.Unix(1000, 0)
	c := NewManual(start)
	var got []string
	c.AfterFunc(2*time.Second, func() { got = append(got, "b@"+c.Now().Sub(start).String()) })
	c.AfterFunc(time.Second, func() {
		got = append(got, "a@"+c.Now().Sub(start).String())
		c.AfterFunc(500*time.Millisecond, func() { got = append(got, "a2@"+c.Now().Sub(start).String()) })
	})
	stopped := c.AfterFunc(time.Second, func() { got = append(got, "never") })
	assert.True(t, stopped.Stop())
	assert.False(t, stopped.Stop())
	c.Advance(1999 * time.Millisecond)
	assert.Equal(t, []string{"a@1s", "a2@1.5s"}, got)
	assert.Equal(t, 1, c.Pending())
	c.Advance(time.Millisecond)
	assert.Equal(t, []string{"a@1s", "a2@1.5s", "b@2s"}, got)
	assert.Equal(t, start.Add(2*time.Second), c.Now())
	assert.Equal(t, 0, c.Pending())
}

func TestAfter(t *testing.T) {
	c := NewManual(time.Unix(0, 0))
	ch, _ := After(c, time.Second)
	stopped, timer := After(c, time.Second)
	assert.True(t, timer.Stop())
	c.Advance(999 * time.Millisecond)
	assert.Len(t, ch, 0)
	c.Advance(time.Millisecond)
	assert.Len(t, ch, 1, "received at 1 s, without a reader")
	assert.Len(t, stopped, 0, "stopped: never")
	assert.Equal(t, 0, c.Pending())
}

func TestReal(t *testing.T) {
	done := make(chan struct{})
	Real().AfterFunc(time.Millisecond, func() { close(done) })
	<-done
	assert.False(t, Real().Now().IsZero())
}

// BenchmarkRealTimerLate measures how late the real clock's timers fire
// for the short waits loss recovery asks for on fast paths (a 50 µs
// probe timeout, a reordering window of microseconds), in a process
// with nothing else to do: the Go runtime then sleeps in the network
// poller, whose timeout has millisecond resolution. It reports the mean
// lateness per wait as late-µs/op.
//
// clock=fine is the same with a Fine clock (its own timerfd), which
// keeps such waits:
//
//	go test -run '^$' -bench RealTimerLate -benchtime 200x ./clock
func BenchmarkRealTimerLate(b *testing.B) {
	for _, d := range []time.Duration{time.Microsecond, 20 * time.Microsecond, 100 * time.Microsecond} {
		b.Run(d.String()+"/clock=real", func(b *testing.B) { timerLate(b, Real(), d) })
		b.Run(d.String()+"/clock=fine", func(b *testing.B) {
			c := newFine(b)
			defer c.Close()
			timerLate(b, c, d)
		})
	}
}

func timerLate(b *testing.B, c Clock, d time.Duration) {
	fired := make(chan time.Time, 1)
	var late time.Duration
	for b.Loop() {
		start := time.Now()
		c.AfterFunc(d, func() { fired <- time.Now() })
		late += (<-fired).Sub(start) - d
	}
	b.ReportMetric(float64(late.Microseconds())/float64(b.N), "late-µs/op")
}
