package conduit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-multierror"

	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/vchan"
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

// Error returns one line: "conduit: OP URI (ENDPOINT): cause", where the
// endpoint is left out when it reads as the URI, and the cause is told
// once: the layers below that only repeat the operation, the URI or the
// endpoint (a *resolver.URIError of the same URI, a transport's error of
// the same operation) and their package prefixes are left out of the
// message. errors.Is and errors.As still see every layer.
func (e *OpError) Error() string {
	s := "conduit: " + e.Op
	if e.URI != "" {
		s += " " + e.URI
	}
	if e.Endpoint != nil && (e.URI == "" || e.Endpoint.String() != e.URI) {
		s += " (" + e.Endpoint.String() + ")"
	}
	if e.Err != nil {
		s += ": " + e.cause()
	}
	return s
}

// cause is the message of e.Err without what e's own message says.
func (e *OpError) cause() string {
	err := e.Err
	for {
		var next error
		switch x := err.(type) {
		case *resolver.URIError:
			if x.URI == e.URI {
				next = x.Err
			}
		case *tcpflow.Error:
			if x.Op == e.Op {
				next = x.Kind
				if next == nil {
					next = x.Err
				}
			}
		case *vchan.Error:
			if x.Op == e.Op {
				next = x.Err
			}
		case *net.OpError:
			if x.Op == e.Op && e.Endpoint != nil {
				next = x.Err
			}
		case *multierror.Error:
			return e.attempts(x.Errors)
		}
		if next == nil {
			return trimPackage(err.Error())
		}
		err = next
	}
}

// attempts formats the errors of several attempts at e's operation, each
// as "ENDPOINT: cause" when it is an *OpError of the same operation and
// URI.
func (e *OpError) attempts(errs []error) string {
	parts := make([]string, len(errs))
	for i, err := range errs {
		var oe *OpError
		if errors.As(err, &oe) && oe.Op == e.Op && oe.URI == e.URI {
			parts[i] = oe.cause()
			if oe.Endpoint != nil {
				parts[i] = oe.Endpoint.String() + ": " + parts[i]
			}
			continue
		}
		parts[i] = trimPackage(err.Error())
	}
	return "all " + strconv.Itoa(len(errs)) + " attempts failed: " + strings.Join(parts, "; ")
}

// packagePrefixes are the prefixes of this module's packages' messages,
// left out inside a conduit message so that only one prefix leads.
var packagePrefixes = []string{"conduit: ", "tcpflow: ", "tlsflow: ", "resolver: ", "vchan: ", "dns: "}

// trimPackage removes the package prefixes leading msg.
func trimPackage(msg string) string {
	for {
		trimmed := msg
		for _, p := range packagePrefixes {
			trimmed = strings.TrimPrefix(trimmed, p)
		}
		if trimmed == msg {
			return msg
		}
		msg = trimmed
	}
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
