package conduit

import (
	"errors"
	"syscall"
	"time"
)

// The back-off of Server.Serve after a temporary accept error, as
// net/http's: the first retry after minAcceptDelay, each next one after
// twice as long, up to maxAcceptDelay; an accept that succeeds resets it.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// temporaryAcceptErrnos are the errors of accept(2) that say nothing
// about the listening socket: the process or the system is out of a
// resource for the moment (EMFILE, ENFILE, ENOBUFS, ENOMEM), or the
// connection being accepted failed before it was taken (ECONNABORTED,
// and the pending network errors Linux passes on, which accept(2) says
// to treat like EAGAIN), or the call was interrupted.
var temporaryAcceptErrnos = []syscall.Errno{
	syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
	syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN,
	syscall.EPROTO, syscall.EPERM, syscall.ETIMEDOUT,
	syscall.ENETDOWN, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.EHOSTUNREACH,
	syscall.ENOPROTOOPT, syscall.ENONET,
}

// isTemporaryAccept reports whether err, an error of a listener's
// Accept, is one to retry after a pause rather than the end of the
// listener. It looks through wrappers (*net.OpError, *os.SyscallError,
// *OpError) for the errno.
func isTemporaryAccept(err error) bool {
	for _, errno := range temporaryAcceptErrnos {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// acceptBackoff is the state of the back-off; its zero value is reset.
type acceptBackoff struct {
	delay time.Duration
}

// next returns how long to wait before the next accept.
func (b *acceptBackoff) next() time.Duration {
	if b.delay == 0 {
		b.delay = minAcceptDelay
	} else {
		b.delay = min(2*b.delay, maxAcceptDelay)
	}
	return b.delay
}

// reset starts the back-off over after an accept that succeeded.
func (b *acceptBackoff) reset() { b.delay = 0 }
