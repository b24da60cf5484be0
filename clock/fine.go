package clock

import (
	"container/heap"
	"sync"
	"time"

	"github.com/conduit-go/conduit/internal/timerfd"
)

// Fine is the real clock with timers kept to microseconds where the
// system allows (Linux: a timerfd), for waits shorter than the Go
// runtime's timers keep (BenchmarkRealTimerLate: a 100 µs wait fires
// about a millisecond late in an idle process). Its timers run one
// after the other in one goroutine of its own, so their functions must
// be short and must not wait for each other; Close stops it. The zero
// value is not usable; call NewFine.
type Fine struct {
	w *timerfd.Waker

	mu     sync.Mutex
	timers fineHeap
	armed  time.Time // what w is armed for; zero if nothing
	closed bool
	seq    uint64
}

// NewFine returns a Fine clock, or timerfd.ErrUnsupported (or the error
// making the timerfd) where it cannot keep fine time; the caller then
// uses Real.
func NewFine() (*Fine, error) {
	c := &Fine{}
	w, err := timerfd.New(c.fire)
	if err != nil {
		return nil, err
	}
	c.w = w
	return c, nil
}

// Now returns the current time.
func (c *Fine) Now() time.Time { return time.Now() }

// AfterFunc schedules f to run in the clock's goroutine once d has
// elapsed. After Close it never runs.
func (c *Fine) AfterFunc(d time.Duration, f func()) Timer {
	t := &fineTimer{c: c, f: f, idx: -1}
	t.Reset(d)
	return t
}

// Close stops the clock's goroutine, waiting for a function under way;
// the timers pending never run.
func (c *Fine) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, t := range c.timers {
		t.idx = -1
	}
	c.timers = nil
	c.mu.Unlock()
	c.w.Close()
	return nil
}

// armLocked arms the waker for the earliest timer, unless it is armed
// for that time already. c.mu is held.
func (c *Fine) armLocked() {
	if len(c.timers) == 0 || c.closed {
		return
	}
	if at := c.timers[0].at; !at.Equal(c.armed) {
		c.armed = at
		c.w.Arm(at)
	}
}

// fire runs the timers that are due, in order, and arms for the next.
func (c *Fine) fire() {
	for {
		c.mu.Lock()
		c.armed = time.Time{}
		if c.closed || len(c.timers) == 0 || c.timers[0].at.After(time.Now()) {
			c.armLocked()
			c.mu.Unlock()
			return
		}
		t := heap.Pop(&c.timers).(*fineTimer)
		f := t.f
		c.mu.Unlock()
		f()
	}
}

type fineTimer struct {
	c   *Fine
	f   func()
	at  time.Time
	seq uint64
	idx int // in c.timers; -1 when not pending
}

// Stop prevents the call if it has not started, reporting whether it
// did so.
func (t *fineTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.idx < 0 {
		return false
	}
	heap.Remove(&c.timers, t.idx)
	return true
}

// Reset schedules the call again, d from now, reporting whether it was
// pending.
func (t *fineTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	was := t.idx >= 0
	if was {
		heap.Remove(&c.timers, t.idx)
	}
	if c.closed {
		return was
	}
	c.seq++
	t.at, t.seq = time.Now().Add(max(d, 0)), c.seq
	heap.Push(&c.timers, t)
	c.armLocked()
	return was
}

// fineHeap orders timers by due time, then by when they were set.
type fineHeap []*fineTimer

func (h fineHeap) Len() int { return len(h) }
func (h fineHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h fineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *fineHeap) Push(x any) {
	t := x.(*fineTimer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *fineHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.idx = -1
	*h = old[:len(old)-1]
	return t
}
