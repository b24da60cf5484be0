package endpoint

import (
	"errors"
	"net"
)

// An Endpoint is one concrete place to connect to: what a URI resolves to
// and what a transport dials or listens on. Endpoints are values: compare
// them with ==.
type Endpoint interface {
	// Kind names the transport that handles the endpoint: "tcp", "unix",
	// "vchan", "vchan-name", "tls", or a custom kind.
	Kind() string
	// String is the endpoint in URI form, with what it was resolved from
	// (tcp://example.com=192.0.2.1:80); see docs/uris.md.
	String() string
}

// Optional methods of an endpoint kind. The built-in kinds have all that
// apply to them; a custom kind implements those it needs.
type (
	// A URIer knows a URI that resolves to it without any lookup.
	URIer interface{ URI() string }
	// A Familier knows its Happy Eyeballs address family.
	Familier interface{ Family() string }
	// A Validator checks its own fields.
	Validator interface{ Validate() error }
	// A Binder writes a listener's bound address back into itself (the
	// real port of a listener asked for port 0).
	Binder interface{ Bind(addr net.Addr) Endpoint }
	// A Wrapper runs over an inner endpoint (as TLS does).
	Wrapper interface{ Unwrap() Endpoint }
)

// ErrInvalid is wrapped by the errors of Validate.
var ErrInvalid = errors.New("invalid endpoint")

// URI returns a URI that resolves to ep without any lookup, or ep.String()
// for a kind without one.
func URI(ep Endpoint) string {
	if u, ok := ep.(URIer); ok {
		return u.URI()
	}
	return ep.String()
}

// Family returns ep's address family for Happy Eyeballs: "4" or "6" for IP
// endpoints (a wrapper counts as its inner endpoint), the kind otherwise.
// Endpoints of one family are tried in order; families alternate.
func Family(ep Endpoint) string {
	if f, ok := ep.(Familier); ok {
		return f.Family()
	}
	if in := Unwrap(ep); in != nil {
		return Family(in)
	}
	return ep.Kind()
}

// Validate checks ep's fields and those of the endpoints it wraps; its
// errors wrap ErrInvalid. Kinds without a Validate method are accepted.
func Validate(ep Endpoint) error {
	if ep == nil {
		return invalid("nil endpoint")
	}
	if v, ok := ep.(Validator); ok {
		return v.Validate()
	}
	return nil
}

// Bind returns ep with what the listener at addr was given, such as the
// real port of a listener asked for port 0. Kinds without a Bind method,
// and addresses the kind does not recognise, leave ep as it is.
func Bind(ep Endpoint, addr net.Addr) Endpoint {
	if b, ok := ep.(Binder); ok && addr != nil {
		return b.Bind(addr)
	}
	return ep
}

// Unwrap returns the endpoint ep runs over, or nil.
func Unwrap(ep Endpoint) Endpoint {
	if w, ok := ep.(Wrapper); ok {
		return w.Unwrap()
	}
	return nil
}

// Innermost returns the endpoint at the bottom of ep's wrappers.
func Innermost(ep Endpoint) Endpoint {
	for {
		in := Unwrap(ep)
		if in == nil {
			return ep
		}
		ep = in
	}
}

// invalid returns an error wrapping ErrInvalid.
func invalid(msg string) error { return &invalidError{msg} }

type invalidError struct{ msg string }

func (e *invalidError) Error() string { return "endpoint: " + e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }
