package tlsflow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"reflect"

	"github.com/conduit-go/conduit/endpoint"
)

// Handshake failure kinds. A *HandshakeError matches its Kind with
// errors.Is, and every *HandshakeError matches ErrHandshake.
var (
	// ErrHandshake is matched by every handshake failure; it is the Kind
	// of failures that fit no other kind.
	ErrHandshake = errors.New("handshake failed")
	// ErrUntrusted: the peer's chain does not lead to a trusted root
	// (wraps x509.UnknownAuthorityError).
	ErrUntrusted = errors.New("certificate not trusted")
	// ErrWrongName: the certificate is not valid for the server name
	// (wraps x509.HostnameError).
	ErrWrongName = errors.New("certificate name mismatch")
	// ErrExpired: a certificate has expired or is not yet valid (wraps
	// x509.CertificateInvalidError with Reason x509.Expired).
	ErrExpired = errors.New("certificate expired")
	// ErrHandshakeTimeout: the handshake's context was cancelled or its
	// deadline passed, or a deadline of the connection expired (wraps the
	// context's error, e.g. context.DeadlineExceeded, or the net timeout).
	ErrHandshakeTimeout = errors.New("handshake timed out")
	// ErrPinMismatch: the server's key matches none of Config.PinnedSPKI.
	ErrPinMismatch = errors.New("public key pin mismatch")
	// ErrPeerAlert: the peer aborted the handshake with an alert (wraps
	// *AlertError).
	ErrPeerAlert = errors.New("peer sent alert")
	// ErrECHRejected: the client offered Encrypted Client Hello and the
	// server did not accept it (it has no key for the config, or serves
	// no ECH). The handshake was authenticated for the config's public
	// name, so the error wraps a *tls.ECHRejectionError whose
	// RetryConfigList holds the configs the server offers instead (empty
	// when it offers none): a client may retry once with them on a new
	// connection (draft-ietf-tls-esni-22 section 6.1.6).
	ErrECHRejected = errors.New("encrypted client hello rejected")
)

// ECHRetryConfigs returns the retry configurations of a handshake failure
// of kind ErrECHRejected, and whether err is one. The list may be empty:
// the server offered none (it serves no ECH).
func ECHRetryConfigs(err error) ([]byte, bool) {
	var rej *tls.ECHRejectionError
	if !errors.As(err, &rej) {
		return nil, false
	}
	return rej.RetryConfigList, true
}

// ErrTruncated is returned by Conn.Read when the inner connection ended
// (a TCP FIN or close) without the peer's close_notify alert: the data
// read so far may be only part of what the peer meant to send. It
// matches io.ErrUnexpectedEOF with errors.Is, so code that treats an
// unexpected EOF as an error treats it so too.
var ErrTruncated error = truncatedError{}

type truncatedError struct{}

func (truncatedError) Error() string {
	return "tlsflow: connection closed without close_notify: data may be truncated"
}

// Unwrap returns io.ErrUnexpectedEOF.
func (truncatedError) Unwrap() error { return io.ErrUnexpectedEOF }

// HandshakeError is the error of a failed handshake. Kind classifies it
// (one of the Err* kinds above); Err is the underlying error from
// crypto/tls, crypto/x509 or the context, kept whole.
type HandshakeError struct {
	Kind       error
	ServerName string // the name verified (client) or received as SNI (server); may be empty
	Err        error

	peer string // the peer address, named when ServerName is empty
}

func (e *HandshakeError) Error() string {
	who := e.ServerName
	if who == "" {
		who = e.peer
	}
	if who == "" {
		who = "peer"
	}
	return "tls handshake with " + who + ": " + e.Kind.Error() + ": " + e.Err.Error()
}

// Is matches Kind and ErrHandshake, and endpoint.ErrTimeout (conduit's
// ErrTimeout) when the handshake ran out of time. A handshake that failed
// on a refused, reset or closed connection matches that cause through
// Err.
func (e *HandshakeError) Is(target error) bool {
	return target == e.Kind || target == ErrHandshake || target == endpoint.ErrTimeout && e.Timeout()
}

// Unwrap returns Err.
func (e *HandshakeError) Unwrap() error { return e.Err }

// Timeout reports whether the handshake ran out of time (net.Error).
func (e *HandshakeError) Timeout() bool { return e.Kind == ErrHandshakeTimeout }

// AlertError is a TLS alert received from the peer. It unwraps to both
// crypto/tls's error (a *net.OpError with Op "remote error") and Alert, so
// errors.As(err, new(tls.AlertError)) yields the alert code.
type AlertError struct {
	Alert tls.AlertError
	Err   error
}

func (e *AlertError) Error() string { return e.Err.Error() }

// Unwrap returns crypto/tls's error and the alert code.
func (e *AlertError) Unwrap() []error { return []error{e.Err, e.Alert} }

// remoteAlert recognises crypto/tls's error for a received alert,
// &net.OpError{Op: "remote error", Err: alert(code)}, and wraps it.
func remoteAlert(err error) (*AlertError, bool) {
	var ae *AlertError
	if errors.As(err, &ae) {
		return ae, true
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return nil, false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() != reflect.Uint8 || v.Type().PkgPath() != "crypto/tls" {
		return nil, false
	}
	return &AlertError{Alert: tls.AlertError(v.Uint()), Err: err}, true
}

// wrapAlert turns received alerts on an established connection into
// *AlertError and leaves other errors alone.
func wrapAlert(err error) error {
	if ae, ok := remoteAlert(err); ok {
		return ae
	}
	return err
}

// classify wraps a handshake error in a *HandshakeError.
func classify(err error, serverName, peer string) error {
	var he *HandshakeError
	if errors.As(err, &he) {
		return err
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		netErr   net.Error
	)
	var echRejected *tls.ECHRejectionError
	kind := ErrHandshake
	switch {
	case errors.As(err, &echRejected):
		kind = ErrECHRejected
	case errors.Is(err, ErrPinMismatch):
		kind = ErrPinMismatch
	case errors.As(err, &unknown):
		kind = ErrUntrusted
	case errors.As(err, &hostname):
		kind = ErrWrongName
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		kind = ErrExpired
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		kind = ErrHandshakeTimeout
	default:
		if ae, ok := remoteAlert(err); ok {
			kind, err = ErrPeerAlert, ae
		} else if errors.As(err, &netErr) && netErr.Timeout() {
			kind = ErrHandshakeTimeout
		}
	}
	return &HandshakeError{Kind: kind, ServerName: serverName, Err: err, peer: peer}
}

// isVerification reports whether err is a failure to verify the peer.
func isVerification(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		cve      *tls.CertificateVerificationError
		cb       *callbackError
	)
	return errors.Is(err, ErrPinMismatch) || errors.As(err, &cb) || errors.As(err, &unknown) ||
		errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &cve)
}

// alertNotSent is a verification failure whose alert could not be
// delivered before the handshake's context ended. It keeps both causes.
type alertNotSent struct {
	cause, ctxErr error
}

func (e *alertNotSent) Error() string {
	return e.cause.Error() + " (alert not delivered: " + e.ctxErr.Error() + ")"
}

func (e *alertNotSent) Unwrap() []error { return []error{e.cause, e.ctxErr} }
