package tcpflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/conduit-go/conduit/endpoint"
)

// The kinds of failure a caller acts on. Errors returned by flows and
// stacks satisfy errors.Is with these when that is what happened, and
// also unwrap to the underlying cause (a syscall.Errno, a *net.OpError,
// a context error). They are the shared causes of package endpoint (and
// conduit's ErrRefused, ErrTimeout and ErrReset), so one errors.Is test
// matches a refusal, timeout or reset of every transport alike; closed
// flows, listeners and stacks give errors matching net.ErrClosed.
var (
	// ErrRefused: the peer answered the connection request with a reset
	// (nothing listens on that port) or the listener declined it.
	ErrRefused = endpoint.ErrRefused
	// ErrTimeout: the connection could not be set up before the context's
	// deadline, or an established connection stopped answering
	// (retransmissions or keepalive probes went unanswered).
	ErrTimeout = endpoint.ErrTimeout
	// ErrReset: the peer reset an established connection.
	ErrReset = endpoint.ErrReset
)

// Error is the error of a flow or stack operation.
type Error struct {
	// Op is the operation: "dial", "listen", "read", "write", "close".
	Op string
	// Addr is the remote address for dial, read and write, the local one
	// for listen; it may be invalid when unknown.
	Addr netip.AddrPort
	// Kind is ErrRefused, ErrTimeout, ErrReset or nil.
	Kind error
	// Err is the underlying cause.
	Err error
}

func (e *Error) Error() string {
	s := "tcpflow: " + e.Op
	if e.Addr.IsValid() {
		s += " " + e.Addr.String()
	}
	// The kind says it all; the cause (an errno inside a *net.OpError
	// repeating the address) stays reachable with errors.As.
	if e.Kind != nil {
		return fmt.Sprintf("%s: %v", s, e.Kind)
	}
	return fmt.Sprintf("%s: %v", s, e.Err)
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the error's kind.
func (e *Error) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// Timeout reports whether the error is a timeout, as net.Error does.
func (e *Error) Timeout() bool {
	if e.Kind == ErrTimeout {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(e.Err, &te) && te.Timeout()
}

// kindOf classifies an error from the kernel.
func kindOf(err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ErrReset
	case errors.Is(err, syscall.ETIMEDOUT):
		return ErrTimeout
	}
	return nil
}

// dialError wraps a failed dial: a context deadline is a timeout, a
// cancellation stays a cancellation.
func dialError(ctx context.Context, dst netip.AddrPort, err error) error {
	kind := kindOf(err)
	var te interface{ Timeout() bool }
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
	switch {
	case kind == ErrReset:
		// A reset while connecting: the listener declined the connection
		// (it accepted and reset it before connect returned).
		kind = ErrRefused
	case kind != nil:
	case timedOut:
		// The dialer's own deadline may fire just before the context's.
		kind = ErrTimeout
		if !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return &Error{Op: "dial", Addr: dst, Kind: kind, Err: err}
}

// ioError wraps a read or write error of an established flow. io.EOF,
// closed-connection and deadline errors are returned as they are, so
// callers can compare them as with any net.Conn.
func ioError(op string, dst netip.AddrPort, err error) error {
	if err == nil || err == io.EOF || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return &Error{Op: op, Addr: dst, Kind: kindOf(err), Err: err}
}
