//go:build linux

package timerfd

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Waker calls its function once the time it was last armed for has
// come, from a goroutine of its own, one call at a time. Arm may be
// called from any goroutine, the function included; a later Arm
// replaces the earlier one. Close stops the goroutine and waits for a
// call under way; the function is not called once Close has returned.
type Waker struct {
	fire      func()
	tfd, efd  int
	epfd      int
	base      time.Time // taken together with baseMono
	baseMono  int64     // CLOCK_MONOTONIC at base, in nanoseconds
	done      chan struct{}
	closeOnce sync.Once

	// mu keeps Arm off the descriptors once Close has closed them
	// (their numbers may belong to other files by then).
	mu     sync.RWMutex
	closed bool
}

// New returns a Waker calling fire, its goroutine started.
func New(fire func()) (*Waker, error) {
	w := &Waker{fire: fire, tfd: -1, efd: -1, epfd: -1, done: make(chan struct{})}
	var err error
	if w.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("timerfd: timerfd_create: %w", err)
	}
	if w.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("timerfd: eventfd: %w", err)
	}
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("timerfd: epoll_create1: %w", err)
	}
	for _, fd := range []int{w.tfd, w.efd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			w.closeFDs()
			return nil, fmt.Errorf("timerfd: epoll_ctl: %w", err)
		}
	}
	var ts unix.Timespec
	w.base = time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("timerfd: clock_gettime: %w", err)
	}
	w.baseMono = ts.Nano()
	go w.loop()
	return w, nil
}

func (w *Waker) closeFDs() {
	for _, fd := range []int{w.tfd, w.efd, w.epfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// Arm has the function called at at (at once if at has passed). After
// Close it does nothing.
func (w *Waker) Arm(at time.Time) {
	ns := max(w.baseMono+int64(at.Sub(w.base)), 1) // zero would disarm
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(ns)}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.closed {
		// It fails only for bad arguments.
		unix.TimerfdSettime(w.tfd, unix.TFD_TIMER_ABSTIME, &spec, nil)
	}
}

func (w *Waker) loop() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 2)
	var buf [8]byte
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return // cannot happen with valid descriptors
		}
		expired := false
		for _, ev := range events[:n] {
			switch int(ev.Fd) {
			case w.efd:
				return
			case w.tfd:
				// Drain the expiration count. EAGAIN means a settime
				// re-armed it after epoll saw it expire: call anyway
				// (the function finds what is due and arms again).
				unix.Read(w.tfd, buf[:])
				expired = true
			}
		}
		if expired {
			w.fire()
		}
	}
}

// Close stops the Waker and waits for a call under way.
func (w *Waker) Close() {
	w.closeOnce.Do(func() {
		one := [8]byte{1}
		unix.Write(w.efd, one[:])
		<-w.done
		w.mu.Lock()
		w.closed = true
		w.closeFDs()
		w.mu.Unlock()
	})
}
