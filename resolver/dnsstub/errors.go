package dnsstub

import (
	"errors"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// Sentinel errors. An *Error's Err is one of them (or a context error);
// test with errors.Is.
var (
	// ErrNotFound: the name does not exist (ErrNXDomain) or has no record
	// of the type asked (ErrNoData). Both match ErrNotFound.
	ErrNotFound = errors.New("dns: not found")
	// ErrNXDomain: the name does not exist (RCODE NXDOMAIN). It matches
	// ErrNotFound.
	ErrNXDomain error = &notFoundError{"no such host (NXDOMAIN)"}
	// ErrNoData: the name exists but has no record of the type asked
	// (NOERROR with an empty answer). It matches ErrNotFound.
	ErrNoData error = &notFoundError{"no records of the type (NODATA)"}
	// ErrTimeout: no server answered in time.
	ErrTimeout = errors.New("dns: timeout")
	// ErrRefused: every server refused or failed the query (REFUSED,
	// SERVFAIL or another error RCODE), or could not be reached.
	ErrRefused = errors.New("dns: server refused or failed")
	// ErrCNAMELoop: a CNAME chain is longer than Config.MaxCNAME.
	ErrCNAMELoop = errors.New("dns: CNAME chain too long")
	// ErrClosed: the Stub is closed. It matches net.ErrClosed.
	ErrClosed error = closedError{}
)

type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return "dns: " + e.msg }
func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }

type closedError struct{}

func (closedError) Error() string        { return "dns: stub resolver is closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// An Error is a failed lookup of one name and type. Err says why (one of
// the sentinels above, or ctx.Err()); Attempts keeps the cause of each
// failed exchange with a server, in order (a timeout, a SERVFAIL, a
// refused connection, …).
type Error struct {
	Name     string // the name asked, as given
	Type     string // "A", "AAAA", "SRV", …
	Err      error
	Attempts []error
	// Stale is unused in errors returned today; reserved.
}

// Error returns "dns: lookup NAME TYPE: reason [attempts]".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("dns: lookup ")
	b.WriteString(e.Name)
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "dns: "))
	if len(e.Attempts) > 0 {
		b.WriteString(" [")
		for i, a := range e.Attempts {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(a.Error())
		}
		b.WriteString("]")
	}
	return b.String()
}

// Unwrap returns Err followed by every attempt's error, so errors.Is
// finds the reason and any attempt's cause.
func (e *Error) Unwrap() []error {
	return append([]error{e.Err}, e.Attempts...)
}

// Timeout reports whether the lookup timed out.
func (e *Error) Timeout() bool { return errors.Is(e.Err, ErrTimeout) }

// NotFound reports whether the name or the record type does not exist.
func (e *Error) NotFound() bool { return errors.Is(e.Err, ErrNotFound) }

// A ServerError is one failed exchange with a server.
type ServerError struct {
	Server string // "ADDR:PORT"
	Rcode  int    // the response's RCODE, or -1
	Err    error  // ErrTimeout, ErrRefused, or a network error
}

func (e *ServerError) Error() string {
	if e.Rcode >= 0 {
		return e.Server + ": " + dns.RcodeToString[e.Rcode]
	}
	return e.Server + ": " + strings.TrimPrefix(e.Err.Error(), "dns: ") // inside a "dns: " message
}

func (e *ServerError) Unwrap() error { return e.Err }
