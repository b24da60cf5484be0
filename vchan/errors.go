package vchan

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	// Named so: this package has an endpoint type of its own.
	cause "github.com/conduit-go/conduit/endpoint"
)

// Errors returned by Conn and Listener methods (wrapped in *Error) satisfy
// errors.Is with these when that is what happened. They also match the
// shared causes of package endpoint (and conduit), as documented for
// each, so that one errors.Is test matches a refusal, timeout or reset of
// every transport alike.
var (
	// ErrPeerClosed: the peer closed the channel; Write fails with it.
	// It also matches net.ErrClosed and endpoint.ErrReset (as a TCP
	// write to a connection its peer closed fails with EPIPE). (Read
	// returns io.EOF instead once the ring is drained.)
	ErrPeerClosed error = &kindError{"peer closed the channel", net.ErrClosed, cause.ErrReset}
	// ErrPeerDied: the peer's process exited without closing the channel
	// (killed, crashed). It also matches net.ErrClosed and
	// endpoint.ErrReset.
	ErrPeerDied error = &kindError{"peer process died", net.ErrClosed, cause.ErrReset}
	// ErrProtocol: the peer broke the protocol (indices claiming more data
	// or space than the ring has, orders out of range, a malformed
	// rendezvous entry). The channel is unusable; close it.
	ErrProtocol = errors.New("vchan: protocol violation by peer")
	// ErrRefused: nothing listens on the port dialled, or the domain or
	// name is not registered. It also matches endpoint.ErrRefused.
	ErrRefused error = &kindError{"connection refused", nil, cause.ErrRefused}
	// ErrInUse: the domid, name or port asked for is held by another
	// live endpoint.
	ErrInUse = errors.New("vchan: address already in use")
)

// kindError is a sentinel of this package that also matches a more
// general error (parent) and, if set, a shared cause of package endpoint.
type kindError struct {
	msg    string
	parent error
	shared error
}

func (e *kindError) Error() string { return "vchan: " + e.msg }
func (e *kindError) Unwrap() error { return e.parent }

func (e *kindError) Is(target error) bool { return e.shared != nil && target == e.shared }

// protocolError carries what a hostile or broken peer did.
type protocolError struct{ detail string }

func (e *protocolError) Error() string        { return "vchan: protocol violation by peer: " + e.detail }
func (e *protocolError) Is(target error) bool { return target == ErrProtocol }

func protocolErrorf(format string, args ...any) error {
	return &protocolError{fmt.Sprintf(format, args...)}
}

// Error is the error of a Conn, Listener, Dial or Listen operation.
type Error struct {
	// Op is "dial", "listen", "accept", "read", "write", "close".
	Op string
	// Addr is the remote address for dial, read and write, the local one
	// for listen and accept.
	Addr *Addr
	// Err is the cause: one of this package's sentinels, net.ErrClosed,
	// os.ErrDeadlineExceeded, a context error or a system error.
	Err error
}

func (e *Error) Error() string {
	s := "vchan: " + e.Op
	if e.Addr != nil {
		s += " " + e.Addr.String()
	}
	// The cause's own "vchan: " is not repeated.
	return s + ": " + strings.TrimPrefix(e.Err.Error(), "vchan: ")
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches endpoint.ErrTimeout when the operation failed on a deadline
// (Timeout reports true); the cause's own matches are found through
// Unwrap.
func (e *Error) Is(target error) bool { return target == cause.ErrTimeout && e.Timeout() }

// Timeout reports whether the operation failed on a deadline.
func (e *Error) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout() || errors.Is(e.Err, os.ErrDeadlineExceeded)
}

func opError(op string, a *Addr, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Addr: a, Err: err}
}
