//go:build linux

package netem

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// timerfdScheduler keeps real time with a timerfd (CLOCK_MONOTONIC,
// absolute expirations) that a goroutine of its own waits on in
// epoll_wait, with an eventfd to stop it. The runtime's timers would
// round short waits to its idle poller's millisecond; a timerfd wakes
// the waiting thread within microseconds.
type timerfdScheduler struct {
	fire      func()
	tfd, efd  int
	epfd      int
	base      time.Time // taken together with baseMono
	baseMono  int64     // CLOCK_MONOTONIC at base, in nanoseconds
	done      chan struct{}
	closeOnce sync.Once
}

// newRealScheduler returns the scheduler of a wire without a Config.Clock.
func newRealScheduler(fire func()) (scheduler, error) {
	s := &timerfdScheduler{fire: fire, tfd: -1, efd: -1, epfd: -1, done: make(chan struct{})}
	var err error
	if s.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("netem: timerfd_create: %w", err)
	}
	if s.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil {
		s.closeFDs()
		return nil, fmt.Errorf("netem: eventfd: %w", err)
	}
	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		s.closeFDs()
		return nil, fmt.Errorf("netem: epoll_create1: %w", err)
	}
	for _, fd := range []int{s.tfd, s.efd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			s.closeFDs()
			return nil, fmt.Errorf("netem: epoll_ctl: %w", err)
		}
	}
	var ts unix.Timespec
	s.base = time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		s.closeFDs()
		return nil, fmt.Errorf("netem: clock_gettime: %w", err)
	}
	s.baseMono = ts.Nano()
	go s.loop()
	return s, nil
}

func (s *timerfdScheduler) closeFDs() {
	for _, fd := range []int{s.tfd, s.efd, s.epfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

func (s *timerfdScheduler) now() time.Time { return time.Now() }

func (s *timerfdScheduler) arm(at time.Time) {
	ns := max(s.baseMono+int64(at.Sub(s.base)), 1) // zero would disarm
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(ns)}
	// It fails only for bad arguments. The direction arms only until it
	// is closed, before close closes the fd.
	unix.TimerfdSettime(s.tfd, unix.TFD_TIMER_ABSTIME, &spec, nil)
}

func (s *timerfdScheduler) loop() {
	defer close(s.done)
	events := make([]unix.EpollEvent, 2)
	var buf [8]byte
	for {
		n, err := unix.EpollWait(s.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return // cannot happen with valid descriptors
		}
		expired := false
		for _, ev := range events[:n] {
			switch int(ev.Fd) {
			case s.efd:
				return
			case s.tfd:
				// Drain the expiration count. EAGAIN means a settime
				// re-armed it after epoll saw it expire: fire anyway (it
				// finds what is due and re-arms).
				unix.Read(s.tfd, buf[:])
				expired = true
			}
		}
		if expired {
			s.fire()
		}
	}
}

func (s *timerfdScheduler) close() {
	s.closeOnce.Do(func() {
		one := [8]byte{1}
		unix.Write(s.efd, one[:])
		<-s.done
		s.closeFDs()
	})
}
