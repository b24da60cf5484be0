package conduit

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/vchan"
)

// Sentinel errors. Test for them with errors.Is.
//
// ErrRefused, ErrTimeout, ErrReset and ErrClosed are the shared causes of
// package endpoint (net.ErrClosed the last): the transports' own errors
// match them (tcpflow's, vchan's, tlsflow's, a custom transport's that
// wraps them), so they match a flow's errors as well as Conduit's. The
// *OpErrors Conduit returns match them also when the cause is what the
// system or the standard library reported (an errno, a passed deadline;
// see endpoint.HasCause).
var (
	// ErrRefused: the peer refused the connection (no listener).
	ErrRefused = endpoint.ErrRefused
	// ErrTimeout: the operation did not finish before its deadline, or
	// the peer stopped answering. An error matching it also has
	// Timeout() == true.
	ErrTimeout = endpoint.ErrTimeout
	// ErrReset: the peer reset the connection.
	ErrReset = endpoint.ErrReset
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
	Endpoint endpoint.Endpoint
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
		s += " " + RedactURI(e.URI)
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
var packagePrefixes = []string{"conduit: ", "tcpflow: ", "tlsflow: ", "resolver: ", "vchan: ", "dns: ", "proxy: "}

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
func (e *OpError) Timeout() bool { return endpoint.HasCause(e.Err, ErrTimeout) }

// Temporary is required by net.Error; it always reports false.
//
// Deprecated: as for net.Error, temporary errors are not well defined.
func (e *OpError) Temporary() bool { return false }

// Is matches ErrUnknownScheme against the resolver's, and the shared
// causes also where the cause is an error of the system or the standard
// library (endpoint.HasCause): the transports' own errors match them
// through Unwrap.
func (e *OpError) Is(target error) bool {
	switch target {
	case ErrUnknownScheme:
		return errors.Is(e.Err, resolver.ErrUnknownScheme)
	case ErrRefused, ErrTimeout, ErrReset:
		return endpoint.HasCause(e.Err, target)
	}
	return false
}

var _ net.Error = (*OpError)(nil)

// errorf is fmt.Errorf with the package prefix.
func errorf(format string, args ...any) error {
	return fmt.Errorf("conduit: "+format, args...)
}

// RedactURI returns uri with the passwords of its proxy parameters
// replaced by "xxxxx" (url.URL.Redacted's form), for messages and logs.
// OpError's message is redacted so.
func RedactURI(uri string) string {
	if !strings.Contains(uri, proxyParam+"=") {
		return uri
	}
	base, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		v, found := strings.CutPrefix(p, proxyParam+"=")
		if !found {
			continue
		}
		raw, err := url.PathUnescape(v)
		if err != nil {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			params[i] = proxyParam + "=" + u.Redacted()
		}
	}
	return base + "?" + strings.Join(params, "&")
}
