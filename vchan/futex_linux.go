package vchan

import (
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations, shared (not FUTEX_PRIVATE_FLAG): the word lives in
// a mapping shared between processes.
const (
	futexWait = 0
	futexWake = 1
)

// futexWaitOn sleeps while *w == val, at most d.
func futexWaitOn(w *uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWakeAll wakes every waiter on w.
func futexWakeAll(w *uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWake, math.MaxInt32, 0, 0, 0)
}

// futexEvent is an event channel made of two futex words: the one this
// side sleeps on and the peer's. Signalling bumps the peer's word and
// wakes it; waiting sleeps while our word still holds the token.
type futexEvent struct {
	mine, peer *uint32
}

func (f futexEvent) prepare() uint32 { return atomic.LoadUint32(f.mine) }

func (f futexEvent) wait(tok uint32, d time.Duration) { futexWaitOn(f.mine, tok, d) }

func (f futexEvent) signal() {
	atomic.AddUint32(f.peer, 1)
	futexWakeAll(f.peer)
}

func (f futexEvent) kick() {
	atomic.AddUint32(f.mine, 1)
	futexWakeAll(f.mine)
}
