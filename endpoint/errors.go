package endpoint

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// The shared causes of a failed dial or flow, whatever the transport:
// every transport's errors satisfy errors.Is with these when that is what
// happened (tcpflow's kernel and userspace stacks, vchan, tlsflow, and
// conduit, whose ErrRefused, ErrTimeout and ErrReset are these values). A
// fourth shared cause is net.ErrClosed: the operation ran on something
// closed on this side (a flow, a listener, a stack).
//
// A custom transport reports them by returning an error that matches
// them (wrap them with fmt.Errorf's %w, or give the error type an Is
// method). Errors a transport hands on as the system or the standard
// library reported them (a syscall.Errno, a passed deadline) are
// recognised by HasCause.
var (
	// ErrRefused: nothing accepted the connection (no listener at the
	// address, or the listener declined it).
	ErrRefused = errors.New("connection refused")
	// ErrTimeout: the operation ran out of time (its deadline passed)
	// or the peer stopped answering. It has a Timeout method reporting
	// true, and transports' errors that match it report Timeout() true.
	ErrTimeout error = timeoutError{}
	// ErrReset: the peer ended an established connection abruptly (a TCP
	// reset, a write to a connection the peer has closed, a peer process
	// that died).
	ErrReset = errors.New("connection reset by peer")
)

type timeoutError struct{}

func (timeoutError) Error() string { return "connection timed out" }

// Timeout reports true: ErrTimeout is a timeout.
func (timeoutError) Timeout() bool { return true }

// HasCause reports whether err has the shared cause cause: whether
// errors.Is(err, cause), or err holds what the system or the standard
// library reports for it, as transports that hand on such errors do:
//
//   - ErrRefused: syscall.ECONNREFUSED;
//   - ErrReset: syscall.ECONNRESET, syscall.EPIPE;
//   - ErrTimeout: syscall.ETIMEDOUT, context.DeadlineExceeded,
//     os.ErrDeadlineExceeded, or an error whose Timeout method reports
//     true (a net.Error).
//
// For any other cause (net.ErrClosed among them) it is errors.Is. It is
// meant for error paths: it walks err's chain several times.
func HasCause(err, cause error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, cause) {
		return true
	}
	switch cause {
	case ErrRefused:
		return errors.Is(err, syscall.ECONNREFUSED)
	case ErrReset:
		return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	case ErrTimeout:
		if errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, context.DeadlineExceeded) ||
			errors.Is(err, os.ErrDeadlineExceeded) {
			return true
		}
		var t interface{ Timeout() bool }
		return errors.As(err, &t) && t.Timeout()
	}
	return false
}
