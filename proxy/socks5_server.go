package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/netaddr"
)

// ServeSOCKS5 serves one SOCKS5 client (RFC 1928) on conn, a connection
// the caller accepted, and closes conn when it is done. It offers no
// authentication when s.Auth is nil and requires username/password
// (RFC 1929, compared in constant time) when it is set; it serves
// CONNECT to IPv4, IPv6 and domain-name destinations (other commands get
// reply 7), checks s.Allow (reply 2), dials the destination through
// s.Dial, replies with the local address of the dialed connection, and
// then relays both ways, passing each half-close on, until both
// directions end.
//
// The greeting, the request and the dial together are bounded by
// s.HandshakeTimeout. A dial that fails gets the reply for its cause:
// 5 for endpoint.ErrRefused, 4 for a timeout, an unreachable host or a
// name that does not resolve, 3 for an unreachable network, 2 for an
// error wrapping ErrNotAllowed, 1 for anything else. A refusal (no
// acceptable method, wrong credentials, a reply code) is written under
// its own one-second bound, then the write side is closed and what the
// client still sends is read and dropped until it closes (within that
// bound), so that the refusal reaches the client instead of a reset.
//
// ctx ending closes conn and the destination and ends ServeSOCKS5. When
// s.Logger is set, one record per connection gives the client, the
// destination, the bytes each way and the result. The error is nil for a
// relay that ended cleanly, else why the connection ended (wrapping
// ErrAuth, ErrNotAllowed, ErrProtocol or the dial's error). ServeSOCKS5
// is safe to call from many goroutines at once.
func (s *Server) ServeSOCKS5(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	rec := socks5Record{client: conn.RemoteAddr()}
	if s.Dial == nil {
		return s.socks5Done(ctx, &rec, &socks5Error{msg: "Server.Dial is nil"})
	}
	var deadline time.Time
	if hs := s.handshakeTimeout(); hs > 0 {
		deadline = time.Now().Add(hs)
		conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	dest, err := s.socks5Handshake(ctx, conn, deadline, &rec)
	if !stop() && err == nil {
		dest.Close()
		err = &socks5Error{msg: "serve", err: ctx.Err()}
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = &socks5Error{msg: "serve", err: ctx.Err()}
		}
		return s.socks5Done(ctx, &rec, err)
	}
	conn.SetDeadline(time.Time{})
	rec.up, rec.down, err = relay(ctx, conn, dest)
	if err != nil {
		err = &socks5Error{msg: "relay " + rec.dest, err: err}
	}
	return s.socks5Done(ctx, &rec, err)
}

// socks5Record is what ServeSOCKS5 logs about a connection.
type socks5Record struct {
	client   net.Addr
	dest     string
	up, down int64
}

func (s *Server) socks5Done(ctx context.Context, rec *socks5Record, err error) error {
	if s.Logger != nil {
		level, result := slog.LevelInfo, "ok"
		if err != nil {
			level, result = slog.LevelWarn, err.Error()
		}
		client := ""
		if rec.client != nil {
			client = rec.client.String()
		}
		s.Logger.LogAttrs(context.WithoutCancel(ctx), level, "proxy: socks5 connection",
			slog.String("client", client), slog.String("destination", rec.dest),
			slog.Int64("up", rec.up), slog.Int64("down", rec.down), slog.String("result", result))
	}
	return err
}

// socks5Handshake runs the server side up to the successful reply and
// returns the dialed destination.
func (s *Server) socks5Handshake(ctx context.Context, conn net.Conn, deadline time.Time, rec *socks5Record) (net.Conn, error) {
	// buf holds the longest field read at once: a 255-byte name or
	// credential with its neighbours, or the reply written.
	buf := make([]byte, socks5MaxAddr+4)

	// Greeting: VER NMETHODS METHODS.
	if err := socks5ReadFull(conn, buf[:2], "greeting"); err != nil {
		return nil, err
	}
	if buf[0] != socks5Version {
		return nil, socks5ProtocolError("greeting has version " + strconv.Itoa(int(buf[0])))
	}
	methods := buf[:buf[1]]
	if err := socks5ReadFull(conn, methods, "greeting"); err != nil {
		return nil, err
	}
	want := byte(socks5MethodNone)
	if s.Auth != nil {
		want = socks5MethodPassword
	}
	offered := false
	for _, m := range methods {
		offered = offered || m == want
	}
	if !offered {
		socks5Refuse(conn, []byte{socks5Version, socks5MethodNoneOK})
		if want == socks5MethodPassword {
			return nil, &socks5Error{msg: "client did not offer username/password", kind: ErrAuth}
		}
		return nil, &socks5Error{msg: "client did not offer no authentication", kind: ErrAuth}
	}
	if _, err := conn.Write([]byte{socks5Version, want}); err != nil {
		return nil, &socks5Error{msg: "write method selection", err: err}
	}
	if want == socks5MethodPassword {
		if err := s.socks5CheckPassword(conn, buf); err != nil {
			return nil, err
		}
	}

	// Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
	if err := socks5ReadFull(conn, buf[:4], "request"); err != nil {
		return nil, err
	}
	if buf[0] != socks5Version {
		return nil, socks5ProtocolError("request has version " + strconv.Itoa(int(buf[0])))
	}
	cmd, atyp := buf[1], buf[3]
	dst, err := socks5ReadAddr(conn, atyp, buf)
	if err == errSOCKS5Atyp {
		socks5Refuse(conn, socks5AppendReply(buf[:0], 8, netip.AddrPort{}))
		return nil, &socks5Error{msg: "request has address type " + strconv.Itoa(int(atyp))}
	}
	if err != nil {
		return nil, socks5ReadError("request", err)
	}
	if atyp == socks5AtypDomain {
		// A name that is an address literal is that address; any other
		// must be a host name.
		if ip, err := netip.ParseAddr(dst.name); err == nil && ip.Zone() == "" {
			dst = socks5Addr{ip: ip, port: dst.port}
		} else if !socks5ValidName(dst.name) {
			rec.dest = strconv.Quote(dst.name)
			socks5Refuse(conn, socks5AppendReply(buf[:0], 4, netip.AddrPort{}))
			return nil, &socks5Error{msg: "request has an invalid host name " + rec.dest}
		}
	}
	// An IPv4-mapped IPv6 address is the IPv4 address, for Allow as for
	// the dial: a rule about 10.0.0.0/8 must not miss ::ffff:10.0.0.1.
	dst.ip = dst.ip.Unmap()
	rec.dest = dst.String()
	if cmd != socks5CmdConnect {
		socks5Refuse(conn, socks5AppendReply(buf[:0], 7, netip.AddrPort{}))
		return nil, &socks5Error{msg: "command " + strconv.Itoa(int(cmd)) + " not supported"}
	}
	if s.Allow != nil && !s.Allow(dst.host(), dst.port) {
		socks5Refuse(conn, socks5AppendReply(buf[:0], 2, netip.AddrPort{}))
		return nil, &socks5Error{msg: "destination " + rec.dest + " not allowed", kind: ErrNotAllowed}
	}

	dctx, cancel := ctx, context.CancelFunc(func() {})
	if !deadline.IsZero() {
		dctx, cancel = context.WithDeadline(ctx, deadline)
	}
	dest, err := s.Dial(dctx, rec.dest)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			socks5Refuse(conn, socks5AppendReply(buf[:0], socks5DialReply(err), netip.AddrPort{}))
		}
		return nil, &socks5Error{msg: "dial " + rec.dest, err: err}
	}
	bound := netaddr.AddrPort(dest.LocalAddr())
	if _, err := conn.Write(socks5AppendReply(buf[:0], 0, bound)); err != nil {
		dest.Close()
		return nil, &socks5Error{msg: "write reply", err: err}
	}
	return dest, nil
}

// socks5CheckPassword runs RFC 1929's subnegotiation; buf has room for a
// 255-byte field.
func (s *Server) socks5CheckPassword(conn net.Conn, buf []byte) error {
	if err := socks5ReadFull(conn, buf[:2], "username/password"); err != nil {
		return err
	}
	if buf[0] != socks5AuthVersion {
		return socks5ProtocolError("username/password has version " + strconv.Itoa(int(buf[0])))
	}
	field := buf[:int(buf[1])+1] // the username and PLEN
	if err := socks5ReadFull(conn, field, "username/password"); err != nil {
		return err
	}
	user := sha256.Sum256(field[:len(field)-1])
	field = buf[:field[len(field)-1]]
	if err := socks5ReadFull(conn, field, "username/password"); err != nil {
		return err
	}
	pass := sha256.Sum256(field)
	// Digests of both sides, so neither the lengths nor the first
	// difference show in the time taken.
	wantUser := sha256.Sum256([]byte(s.Auth.Username))
	wantPass := sha256.Sum256([]byte(s.Auth.Password))
	ok := subtle.ConstantTimeCompare(user[:], wantUser[:]) & subtle.ConstantTimeCompare(pass[:], wantPass[:])
	if ok != 1 {
		socks5Refuse(conn, []byte{socks5AuthVersion, 1})
		return &socks5Error{msg: "client gave a wrong username or password", kind: ErrAuth}
	}
	if _, err := conn.Write([]byte{socks5AuthVersion, 0}); err != nil {
		return &socks5Error{msg: "write authentication status", err: err}
	}
	return nil
}

// socks5AppendReply appends a reply with code rep and BND bound
// (0.0.0.0:0 when it is not valid) to b.
func socks5AppendReply(b []byte, rep byte, bound netip.AddrPort) []byte {
	a := socks5Addr{ip: bound.Addr().Unmap(), port: bound.Port()}
	if !a.ip.IsValid() {
		a.ip = netip.IPv4Unspecified()
	}
	b = append(b, socks5Version, rep, 0)
	return a.appendTo(b)
}

// socks5Linger bounds the writing of a refusal and the wait for the
// client to close after it.
const socks5Linger = time.Second

// socks5Refuse writes a refusal (no acceptable method, a failed
// authentication, a reply code), half-closes and reads what the client
// still sends until it closes or socks5Linger passes: closing with
// unread bytes would reset the connection, and the reset can overtake
// the refusal. It has its own deadline, so a dial that used the whole
// handshake timeout still gets its reply to the client.
func socks5Refuse(conn net.Conn, msg []byte) {
	conn.SetDeadline(time.Now().Add(socks5Linger))
	if _, err := conn.Write(msg); err != nil {
		return
	}
	if h, ok := conn.(halfCloser); !ok || h.CloseWrite() != nil {
		return
	}
	var b [512]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			return
		}
	}
}

// socks5DialReply is the reply code for a dial's error.
func socks5DialReply(err error) byte {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, ErrNotAllowed):
		return 2
	case endpoint.HasCause(err, endpoint.ErrRefused):
		return 5
	case errors.Is(err, syscall.ENETUNREACH):
		return 3
	case errors.Is(err, syscall.EHOSTUNREACH), endpoint.HasCause(err, endpoint.ErrTimeout), errors.As(err, &dnsErr):
		return 4
	}
	return 1
}
