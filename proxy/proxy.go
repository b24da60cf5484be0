package proxy

import (
	"errors"
	"log/slog"
	"time"
)

// Auth is a username and password: SOCKS5's RFC 1929 authentication, or
// HTTP Basic proxy authentication.
type Auth struct {
	Username, Password string
}

var (
	// ErrAuth is wrapped by the errors of a proxy that refused the
	// credentials (RFC 1929 status not 0, HTTP 407), or that asked for
	// credentials when none were given.
	ErrAuth = errors.New("proxy: authentication failed")
	// ErrNotAllowed is wrapped by the errors of a proxy that refused the
	// destination by its rules (SOCKS5 reply 2, HTTP 403).
	ErrNotAllowed = errors.New("proxy: destination not allowed by the proxy")
	// ErrProtocol is wrapped by the errors of a peer that broke the
	// protocol: garbage, an unknown version, a truncated reply.
	ErrProtocol = errors.New("proxy: protocol violation")
)

// DefaultHandshakeTimeout bounds a Server's handshake with a client when
// Server.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 10 * time.Second

// Server serves SOCKS5 (ServeSOCKS5) or HTTP CONNECT (ServeHTTPConnect)
// on connections accepted by the caller. Its zero value is not usable:
// Dial is required. A Server is safe for concurrent use; it must not be
// modified while it serves.
type Server struct {
	// Dial connects to a client's destination, "host:port" (host an IP
	// address or a name). Required.
	Dial DialFunc
	// Auth, when non-nil, is required of every client: SOCKS5's
	// username/password method, or HTTP Basic Proxy-Authorization.
	// Nil: no authentication.
	Auth *Auth
	// Allow, when non-nil, decides whether a destination may be dialed
	// (host as the client gave it, an IP address or a name, and port);
	// a refused destination gets SOCKS5 reply 2 or HTTP 403.
	Allow func(host string, port uint16) bool
	// HandshakeTimeout bounds the client's handshake and the dial of its
	// destination: zero means DefaultHandshakeTimeout, negative none.
	HandshakeTimeout time.Duration
	// Logger, when non-nil, receives one record per connection: the
	// client, the destination, the bytes each way and how it ended.
	Logger *slog.Logger
}

func (s *Server) handshakeTimeout() time.Duration {
	switch {
	case s.HandshakeTimeout == 0:
		return DefaultHandshakeTimeout
	case s.HandshakeTimeout < 0:
		return 0
	}
	return s.HandshakeTimeout
}
