package proxy

import (
	"context"
	"io"
	"net"
	"strconv"
	"syscall"

	"github.com/conduit-go/conduit/endpoint"
)

// SOCKS5 runs a SOCKS5 CONNECT handshake (RFC 1928) on conn, a
// connection to a SOCKS5 proxy, asking it to connect to target
// ("host:port"). A host that is an IP literal is sent as an IPv4 or IPv6
// address (an IPv4-mapped IPv6 address as IPv4), anything else as a
// domain name for the proxy to resolve (at most 255 bytes); a target
// that cannot be sent fails before any byte is written.
//
// With auth nil SOCKS5 offers only "no authentication"; with auth it
// offers "no authentication" and then username/password (RFC 1929), so
// a proxy that needs no credentials is not sent them and one that needs
// them gets them. On success conn carries the tunnelled stream: no byte
// after the proxy's reply has been read.
//
// ctx bounds the handshake only: its deadline is set on conn, and its
// end interrupts a blocked read or write by setting a deadline in the
// past. When SOCKS5 returns, conn has no deadline. SOCKS5 does not close
// conn, even on failure.
//
// Errors: a refusal by the proxy is a *SOCKSError (errors.Is matches
// endpoint.ErrRefused, endpoint.ErrTimeout or ErrNotAllowed where one
// applies); refused credentials or no acceptable method wrap ErrAuth;
// a reply that breaks the protocol (a wrong version, an unknown address
// type, a connection closed mid-reply: io.ErrUnexpectedEOF) wraps
// ErrProtocol; ctx ending gives its error wrapped.
func SOCKS5(ctx context.Context, conn net.Conn, target string, auth *Auth) error {
	dst, err := socks5ParseTarget(target)
	if err != nil {
		return err
	}
	if auth != nil && (len(auth.Username) == 0 || len(auth.Username) > 255 || len(auth.Password) > 255) {
		return &socks5Error{msg: "username must be 1 to 255 bytes and password at most 255"}
	}
	if err := ctx.Err(); err != nil {
		return &socks5Error{msg: "handshake", err: err}
	}
	release := bindContext(ctx, conn)
	err = socks5Handshake(conn, dst, auth)
	release()
	if err != nil {
		if ctxErr := contextError(ctx, err); ctxErr != nil {
			return &socks5Error{msg: "handshake", err: ctxErr}
		}
	}
	return err
}

func socks5Handshake(conn net.Conn, dst socks5Addr, auth *Auth) error {
	buf := make([]byte, 0, 3+2*255)
	if auth == nil {
		buf = append(buf, socks5Version, 1, socks5MethodNone)
	} else {
		buf = append(buf, socks5Version, 2, socks5MethodNone, socks5MethodPassword)
	}
	if _, err := conn.Write(buf); err != nil {
		return &socks5Error{msg: "write greeting", err: err}
	}
	buf = buf[:2]
	if err := socks5ReadFull(conn, buf, "method selection"); err != nil {
		return err
	}
	if buf[0] != socks5Version {
		return socks5ProtocolError("method selection has version " + strconv.Itoa(int(buf[0])))
	}
	switch buf[1] {
	case socks5MethodNone:
	case socks5MethodPassword:
		if auth == nil {
			return socks5ProtocolError("proxy chose username/password, which was not offered")
		}
		if err := socks5Password(conn, buf, auth); err != nil {
			return err
		}
	case socks5MethodNoneOK:
		if auth == nil {
			return &socks5Error{msg: "proxy requires authentication", kind: ErrAuth}
		}
		return &socks5Error{msg: "proxy accepts neither no authentication nor username/password", kind: ErrAuth}
	default:
		return socks5ProtocolError("proxy chose method " + strconv.Itoa(int(buf[1])) + ", which was not offered")
	}

	buf = append(buf[:0], socks5Version, socks5CmdConnect, 0)
	buf = dst.appendTo(buf)
	if _, err := conn.Write(buf); err != nil {
		return &socks5Error{msg: "write request", err: err}
	}
	return socks5ReadReply(conn, buf[:cap(buf)])
}

// socks5Password runs RFC 1929's subnegotiation; buf has room for it.
func socks5Password(conn net.Conn, buf []byte, auth *Auth) error {
	buf = append(buf[:0], socks5AuthVersion, byte(len(auth.Username)))
	buf = append(buf, auth.Username...)
	buf = append(buf, byte(len(auth.Password)))
	buf = append(buf, auth.Password...)
	if _, err := conn.Write(buf); err != nil {
		return &socks5Error{msg: "write username/password", err: err}
	}
	buf = buf[:2]
	if err := socks5ReadFull(conn, buf, "authentication status"); err != nil {
		return err
	}
	if buf[0] != socks5AuthVersion {
		return socks5ProtocolError("authentication status has version " + strconv.Itoa(int(buf[0])))
	}
	if buf[1] != 0 {
		return &socks5Error{msg: "proxy refused the username/password (status " + strconv.Itoa(int(buf[1])) + ")", kind: ErrAuth}
	}
	return nil
}

// socks5ReadReply reads the reply to CONNECT exactly: VER REP RSV ATYP,
// then BND.ADDR of its type and BND.PORT. buf has room for
// 4+socks5MaxAddr bytes.
func socks5ReadReply(conn net.Conn, buf []byte) error {
	// The first five bytes belong to any reply: the header and the first
	// byte of the address (a name's length).
	n, err := io.ReadFull(conn, buf[:5])
	if n >= 2 && buf[0] == socks5Version && buf[1] != 0 {
		return &SOCKSError{Code: buf[1]} // a refusal, even if cut short
	}
	if err != nil {
		return socks5ReadError("reply", err)
	}
	if buf[0] != socks5Version {
		return socks5ProtocolError("reply has version " + strconv.Itoa(int(buf[0])))
	}
	var rest int
	switch buf[3] {
	case socks5AtypIPv4:
		rest = 4 - 1 + 2
	case socks5AtypIPv6:
		rest = 16 - 1 + 2
	case socks5AtypDomain:
		rest = int(buf[4]) + 2
	default:
		return socks5ProtocolError("reply has address type " + strconv.Itoa(int(buf[3])))
	}
	return socks5ReadFull(conn, buf[:rest], "reply")
}

// socks5ReadFull fills buf from conn; a connection that ends first is a
// protocol error wrapping io.ErrUnexpectedEOF.
func socks5ReadFull(conn net.Conn, buf []byte, what string) error {
	if _, err := io.ReadFull(conn, buf); err != nil {
		return socks5ReadError(what, err)
	}
	return nil
}

func socks5ReadError(what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &socks5Error{msg: "connection closed in the " + what, kind: ErrProtocol, err: io.ErrUnexpectedEOF}
	}
	return &socks5Error{msg: "read " + what, err: err}
}

func socks5ProtocolError(msg string) error {
	return &socks5Error{msg: msg, kind: ErrProtocol}
}

// socks5Error is the package's SOCKS5 error other than a reply code:
// "proxy: socks5: msg[: err]", matching kind (ErrProtocol, ErrAuth,
// ErrNotAllowed or nil) with errors.Is and unwrapping to err.
type socks5Error struct {
	msg  string
	kind error
	err  error
}

func (e *socks5Error) Error() string {
	if e.err != nil {
		return "proxy: socks5: " + e.msg + ": " + e.err.Error()
	}
	return "proxy: socks5: " + e.msg
}

func (e *socks5Error) Is(target error) bool { return e.kind != nil && target == e.kind }

func (e *socks5Error) Unwrap() error { return e.err }

// SOCKSError is a SOCKS5 proxy's refusal of a CONNECT: the REP field of
// its reply (RFC 1928 §6), 1 to 255. errors.Is matches the shared cause
// the code stands for: 2 (not allowed by the ruleset) ErrNotAllowed,
// 3 (network unreachable) syscall.ENETUNREACH, 4 (host unreachable) and
// 6 (TTL expired) endpoint.ErrTimeout, 5 (connection refused)
// endpoint.ErrRefused; the other codes match none.
type SOCKSError struct {
	Code byte
}

var socks5ReplyText = [...]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by the proxy's rules",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused by destination",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

// Error is "proxy: socks5: " and the meaning of the code.
func (e *SOCKSError) Error() string {
	text := "unknown reply"
	if int(e.Code) < len(socks5ReplyText) && e.Code != 0 {
		text = socks5ReplyText[e.Code]
	}
	return "proxy: socks5: " + text + " (reply " + strconv.Itoa(int(e.Code)) + ")"
}

// Unwrap returns the shared cause of the code, or nil.
func (e *SOCKSError) Unwrap() error {
	switch e.Code {
	case 2:
		return ErrNotAllowed
	case 3:
		return syscall.ENETUNREACH
	case 4, 6:
		return endpoint.ErrTimeout
	case 5:
		return endpoint.ErrRefused
	}
	return nil
}

var _ error = (*SOCKSError)(nil)
