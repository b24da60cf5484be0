package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/conduit-go/conduit/endpoint"
)

// connectRequestHead is a parsed HTTP CONNECT request head.
type connectRequestHead struct {
	host string // as the client gave it, IPv6 without brackets
	port uint16
	// authorization is the Proxy-Authorization value, if any.
	authorization []byte
	hasAuth       bool
}

// target is host:port, IPv6 in brackets.
func (r *connectRequestHead) target() string {
	return net.JoinHostPort(r.host, fmt.Sprint(r.port))
}

// requestError is a request the server answers with an error status.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return "proxy: http connect: " + e.msg }
func (e *requestError) Unwrap() error { return ErrProtocol }

// readConnectRequest reads and parses one request head. A request the
// server must refuse gives a *requestError with the status to answer
// (400 for garbage, 405 for another method); a failed read gives the
// headReader's error.
func readConnectRequest(h *headReader) (*connectRequestHead, error) {
	line, err := h.line(checkRequestPrefix)
	if err != nil {
		return nil, err
	}
	method, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || !validToken(method) {
		return nil, &requestError{400, fmt.Sprintf("invalid request line %q", truncate(line, 64))}
	}
	target, version, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(version) != 8 || string(version[:7]) != "HTTP/1." || version[7] < '0' || version[7] > '9' {
		return nil, &requestError{400, fmt.Sprintf("invalid request line %q", truncate(line, 64))}
	}
	req := &connectRequestHead{}
	dup := false
	err = readHeaders(h, func(name, value []byte) error {
		if strings.EqualFold(string(name), "Proxy-Authorization") {
			dup = dup || req.hasAuth
			req.authorization, req.hasAuth = bytes.Clone(value), true
		}
		return nil
	})
	if err != nil {
		var he *httpConnectError
		if errors.As(err, &he) && errors.Is(err, ErrProtocol) {
			return nil, &requestError{400, he.msg}
		}
		return nil, err
	}
	if string(method) != "CONNECT" {
		return nil, &requestError{405, fmt.Sprintf("method %q is not CONNECT", truncate(method, 32))}
	}
	if dup {
		return nil, &requestError{400, "more than one Proxy-Authorization header"}
	}
	host, port, err := net.SplitHostPort(string(target))
	if err != nil || host == "" || !validHost(host) {
		return nil, &requestError{400, fmt.Sprintf("request target %q is not host:port", truncate(target, 64))}
	}
	if strings.IndexByte(host, ':') >= 0 && target[0] != '[' {
		return nil, &requestError{400, fmt.Sprintf("request target %q: an IPv6 address must be in brackets", truncate(target, 64))}
	}
	p, ok := parsePort(port)
	if !ok {
		return nil, &requestError{400, fmt.Sprintf("request target %q has an invalid port", truncate(target, 64))}
	}
	req.host, req.port = host, p
	return req, nil
}

// checkRequestPrefix fails a (partial) request line whose method is not
// a token or that holds control bytes: a client speaking another protocol
// (a SOCKS5 greeting, TLS) gets its 400 at once.
func checkRequestPrefix(partial []byte) error {
	method, _, _ := bytes.Cut(partial, []byte{' '})
	if len(partial) > 0 && !validToken(method) || !validFieldValue(partial) {
		return &requestError{400, fmt.Sprintf("invalid request line %q", truncate(partial, 64))}
	}
	return nil
}

// checkBasic reports whether a Proxy-Authorization value carries want's
// credentials, comparing in constant time (SHA-256 digests, so the
// lengths do not show either).
func checkBasic(value []byte, want *Auth) bool {
	scheme, cred, ok := bytes.Cut(value, []byte{' '})
	if !ok || !strings.EqualFold(string(scheme), "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(cred)))
	if err != nil {
		return false
	}
	user, pass, ok := bytes.Cut(raw, []byte{':'})
	if !ok {
		return false
	}
	gu, gp := sha256.Sum256(user), sha256.Sum256(pass)
	wu, wp := sha256.Sum256([]byte(want.Username)), sha256.Sum256([]byte(want.Password))
	return subtle.ConstantTimeCompare(gu[:], wu[:])&subtle.ConstantTimeCompare(gp[:], wp[:]) == 1
}

// statusResponses are the server's error responses.
var statusResponses = map[int]string{
	400: "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	403: "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	405: "HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	407: "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"conduit\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	502: "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	504: "HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
}

const connectEstablished = "HTTP/1.1 200 Connection established\r\n\r\n"

// ServeHTTPConnect serves one HTTP CONNECT client on conn, an accepted
// connection, and closes conn when done. It reads the request head (at
// most MaxHTTPHeadBytes) and answers 400 to a malformed one or to a
// target not in authority form (host:port), 405 (with "Allow: CONNECT")
// to any method but CONNECT; then it checks Basic
// Proxy-Authorization when s.Auth is set (407 with
// `Proxy-Authenticate: Basic realm="conduit"` when missing or wrong),
// asks s.Allow (403), and dials the target with s.Dial (502 when it
// fails, 504 when it times out). On success it answers
// "200 Connection established" and relays both ways until both sides
// have ended, passing each half-close on; bytes the client sent after its
// request head are forwarded first.
//
// s.HandshakeTimeout bounds the reading of the request, and separately
// the dial. ctx ending interrupts the handshake and ends the relay.
// s.Logger, when set, gets one record per connection.
//
// It returns nil when the tunnel ran and ended at EOF both ways; the
// error of a refused client (wrapping ErrProtocol for 400 and 405, ErrAuth,
// ErrNotAllowed, or the dial's error), or of the relay, otherwise.
// ServeHTTPConnect may be called from many goroutines at once.
func (s *Server) ServeHTTPConnect(ctx context.Context, conn net.Conn) (err error) {
	start := time.Now()
	var (
		target   string
		status   int
		up, down int64
	)
	defer func() {
		conn.Close()
		if s.Logger == nil {
			return
		}
		attrs := []slog.Attr{
			slog.String("client", conn.RemoteAddr().String()),
			slog.String("target", target),
			slog.Int("status", status),
			slog.Int64("up", up),
			slog.Int64("down", down),
			slog.Duration("duration", time.Since(start)),
		}
		level := slog.LevelInfo
		if err != nil {
			attrs = append(attrs, slog.String("err", err.Error()))
			level = slog.LevelWarn
		}
		s.Logger.LogAttrs(ctx, level, "proxy: http connect", attrs...)
	}()
	if s.Dial == nil {
		return errors.New("proxy: http connect: Server.Dial is nil")
	}
	timeout := s.handshakeTimeout()
	if timeout > 0 {
		conn.SetDeadline(time.Now().Add(timeout))
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(pastDeadline)
		close(interrupted)
	})
	stopped := false
	stopInterrupt := func() bool { // reports whether ctx had ended
		if stopped {
			return false
		}
		stopped = true
		if !stop() {
			<-interrupted
			return true
		}
		return false
	}
	defer stopInterrupt()
	respond := func(code int) {
		status = code
		if ctx.Err() != nil {
			return // shutting down: no answer
		}
		if timeout > 0 {
			// The dial may have used up the handshake's time: the answer
			// gets its own (a moment's race with ctx ending leaves it
			// bounded by this deadline).
			conn.SetWriteDeadline(time.Now().Add(timeout))
		}
		conn.Write([]byte(statusResponses[code]))
	}

	h := newHeadReader(conn, MaxHTTPHeadBytes)
	req, err := readConnectRequest(h)
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			respond(re.status)
			return err
		}
		if ctx.Err() != nil {
			return &httpConnectError{msg: "reading the request: " + ctx.Err().Error(), cause: ctx.Err()}
		}
		if errors.Is(err, ErrProtocol) {
			respond(400)
			return err
		}
		return &httpConnectError{msg: "reading the request: " + err.Error(), cause: err}
	}
	target = req.target()
	if s.Auth != nil && (!req.hasAuth || !checkBasic(req.authorization, s.Auth)) {
		respond(407)
		if !req.hasAuth {
			return &httpConnectError{msg: "no Proxy-Authorization from the client", cause: ErrAuth}
		}
		return &httpConnectError{msg: "wrong credentials from the client", cause: ErrAuth}
	}
	if s.Allow != nil && !s.Allow(req.host, req.port) {
		respond(403)
		return &httpConnectError{msg: "destination " + target + " not allowed", cause: ErrNotAllowed}
	}

	dctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		dctx, cancel = context.WithTimeout(ctx, timeout)
	}
	dest, err := s.Dial(dctx, target)
	cancel()
	if err != nil {
		if endpoint.HasCause(err, endpoint.ErrTimeout) {
			respond(504)
		} else {
			respond(502)
		}
		if dest != nil {
			dest.Close()
		}
		return &httpConnectError{msg: "dialing " + target + ": " + err.Error(), cause: err}
	}
	if timeout > 0 {
		conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	status = 200
	_, werr := conn.Write([]byte(connectEstablished))
	if stopInterrupt() || werr != nil {
		dest.Close()
		if ctx.Err() != nil {
			return &httpConnectError{msg: ctx.Err().Error(), cause: ctx.Err()}
		}
		return &httpConnectError{msg: "answering the client: " + werr.Error(), cause: werr}
	}
	conn.SetDeadline(time.Time{})
	client := conn
	if rest := h.rest(); len(rest) > 0 {
		client = newLeftoverConn(conn, rest)
	}
	up, down, err = relay(ctx, client, dest)
	if err != nil {
		return &httpConnectError{msg: "relaying " + target + ": " + err.Error(), cause: err}
	}
	return nil
}
