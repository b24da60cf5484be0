package header

import (
	"errors"
	"fmt"
)

// Errors returned (wrapped in a *ParseError) by the IsValid methods and
// ParseTCPOptions. Test them with errors.Is.
var (
	ErrTooShort       = errors.New("too short")
	ErrBadVersion     = errors.New("bad version")
	ErrBadHeaderLen   = errors.New("bad header length")
	ErrBadTotalLength = errors.New("total length mismatch")
	ErrBadChecksum    = errors.New("bad checksum")
	ErrBadOption      = errors.New("bad option")
	ErrOptionsTooLong = errors.New("options too long")
	ErrBadType        = errors.New("unexpected type")
)

// ParseError reports why bytes are not a valid header: which protocol,
// which field, the sentinel error and a detail with the offending values.
type ParseError struct {
	Proto  string // "ipv4", "tcp", "icmpv4", "tcp option"
	Field  string // e.g. "IHL", "TotalLength", "MSS"
	Err    error  // one of the Err* sentinels
	Detail string // values involved, e.g. "IHL 4 < 5"
}

func (e *ParseError) Error() string {
	s := "header: " + e.Proto + ": " + e.Err.Error()
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel error.
func (e *ParseError) Unwrap() error { return e.Err }

func parseErr(proto, field string, err error, format string, args ...any) *ParseError {
	return &ParseError{Proto: proto, Field: field, Err: err, Detail: fmt.Sprintf(format, args...)}
}
