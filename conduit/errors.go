package conduit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tcpflow"
)

// Sentinel errors. Test for them with errors.Is: the errors conduit
// returns are *OpErrors that match these whatever the transport's own
// error was (a tcpflow error, an errno, a context error).
var (
	// ErrRefused: the peer refused the connection (no listener).
	ErrRefused = errors.New("conduit: connection refused")
	// ErrTimeout: the operation did not finish before its deadline. An
	// error matching it also has Timeout() == true.
	ErrTimeout = errors.New("conduit: timed out")
	// ErrReset: the peer reset the connection.
	ErrReset = errors.New("conduit: connection reset by peer")
	// ErrUnknownScheme: no transport or resolver knows the URI's scheme.
	ErrUnknownScheme = errors.New("conduit: unknown scheme")
	// ErrNoEndpoints: the URI resolved to no endpoint.
	ErrNoEndpoints = errors.New("conduit: no endpoints")
	// ErrNoTransport: no transport is registered for an endpoint's kind.
	ErrNoTransport = errors.New("conduit: no transport for endpoint kind")
	// ErrClosed is net.ErrClosed: a Conduit, listener or flow used after
	// Close.
	ErrClosed = net.ErrClosed
)

// OpError is the error returned by Conduit's methods. It names the
// operation, the URI and, where one was being tried, the endpoint.
//
// When several endpoints were tried, Err holds every attempt's error (a
// *multierror.Error of *OpErrors) and errors.Is and errors.As look into
// each of them.
type OpError struct {
	// Op is "resolve", "dial", "listen", "accept" or "serve".
	Op string
	// URI is the URI the caller passed (may be empty for DialEndpoints).
	URI string
	// Endpoint is the endpoint being dialed or listened on, if any.
	Endpoint resolver.Endpoint
	// Err is the cause.
	Err error
}

func (e *OpError) Error() string {
	s := "conduit: " + e.Op
	if e.URI != "" {
		s += " " + e.URI
	}
	if e.Endpoint != nil && (e.URI == "" || e.Endpoint.String() != e.URI) {
		s += " (" + e.Endpoint.String() + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether the operation timed out; *OpError is a net.Error.
func (e *OpError) Timeout() bool { return isTimeout(e.Err) }

// Temporary is required by net.Error; it always reports false.
//
// Deprecated: as for net.Error, temporary errors are not well defined.
func (e *OpError) Temporary() bool { return false }

// Is matches the conduit sentinels against the cause, whatever layer
// produced it.
func (e *OpError) Is(target error) bool {
	switch target {
	case ErrTimeout:
		return isTimeout(e.Err)
	case ErrRefused:
		return errors.Is(e.Err, syscall.ECONNREFUSED) || errors.Is(e.Err, tcpflow.ErrRefused)
	case ErrReset:
		return errors.Is(e.Err, syscall.ECONNRESET) || errors.Is(e.Err, tcpflow.ErrReset) ||
			errors.Is(e.Err, syscall.EPIPE)
	case ErrUnknownScheme:
		return errors.Is(e.Err, resolver.ErrUnknownScheme)
	}
	return false
}

var _ net.Error = (*OpError)(nil)

// isTimeout reports whether err is, or wraps, a timeout.
func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, tcpflow.ErrTimeout) || errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// errorf is fmt.Errorf with the package prefix.
func errorf(format string, args ...any) error {
	return fmt.Errorf("conduit: "+format, args...)
}
