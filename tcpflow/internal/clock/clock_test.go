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

func TestReal(t *testing.T) {
	done := make(chan struct{})
	Real().AfterFunc(time.Millisecond, func() { close(done) })
	<-done
	assert.False(t, Real().Now().IsZero())
}
