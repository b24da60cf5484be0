package tlsflow

import (
	"crypto/tls"
	"net"
)

// listener wraps accepted connections in lazily handshaking server Conns.
type listener struct {
	inner net.Listener
	tc    *tls.Config
	err   error
}

// NewListener returns a listener whose Accept wraps each connection of
// inner in a server *Conn. The handshake runs on the Conn's first Read,
// Write or Handshake call, so a slow client never blocks Accept. If cfg is
// not a valid server configuration, Accept returns that error. Closing the
// listener closes inner; accepted Conns belong to the caller.
func NewListener(inner net.Listener, cfg *Config) net.Listener {
	tc, err := cfg.serverConfig()
	return &listener{inner: inner, tc: tc, err: err}
}

func (l *listener) Accept() (net.Conn, error) {
	if l.err != nil {
		return nil, l.err
	}
	nc, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	return newTLSConn(nc, false, "", func(c net.Conn) *tls.Conn { return tls.Server(c, l.tc) }), nil
}

func (l *listener) Close() error   { return l.inner.Close() }
func (l *listener) Addr() net.Addr { return l.inner.Addr() }
