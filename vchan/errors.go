package vchan

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Errors returned by Conn and Listener methods (wrapped in *Error) satisfy
// errors.Is with these when that is what happened.
var (
	// ErrPeerClosed: the peer closed the channel; Write fails with it.
	// It also matches net.ErrClosed. (Read returns io.EOF instead once
	// the ring is drained.)
	ErrPeerClosed error = &kindError{"peer closed the channel", net.ErrClosed}
	// ErrPeerDied: the peer's process exited without closing the channel
	// (killed, crashed). It also matches net.ErrClosed.
	ErrPeerDied error = &kindError{"peer process died", net.ErrClosed}
	// ErrProtocol: the peer broke the protocol (indices claiming more data
	// or space than the ring has, orders out of range, a malformed
	// rendezvous entry). The channel is unusable; close it.
	ErrProtocol = errors.New("vchan: protocol violation by peer")
	// ErrRefused: nothing listens on the port dialled, or the domain or
	// name is not registered.
	ErrRefused = errors.New("vchan: connection refused")
	// ErrInUse: the domid, name or port asked for is held by another
	// live endpoint.
	ErrInUse = errors.New("vchan: address already in use")
)

type kindError struct {
	msg    string
	parent error
}

func (e *kindError) Error() string { return "vchan: " + e.msg }
func (e *kindError) Unwrap() error { return e.parent }

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
