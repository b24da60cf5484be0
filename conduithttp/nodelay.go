package conduithttp

import (
	"errors"
	"net"
)

// nodelay returns conn writing with its WriteNodelay when it has one:
// conduit's TCP flows run Nagle's algorithm for plain writes, which
// holds small HTTP/2 frames and chunks back behind the peer's delayed
// acknowledgements. Other connections are returned as they are.
func nodelay(conn net.Conn) net.Conn {
	if nd, ok := conn.(nodelayWriter); ok {
		return &nodelayConn{Conn: conn, nd: nd}
	}
	return conn
}

type nodelayWriter interface {
	WriteNodelay(b []byte) (int, error)
}

// nodelayConn is a flow whose writes are pushed at once.
type nodelayConn struct {
	net.Conn
	nd nodelayWriter
}

func (c *nodelayConn) Write(b []byte) (int, error) { return c.nd.WriteNodelay(b) }

// CloseWrite half-closes the flow.
func (c *nodelayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return &net.OpError{Op: "close", Net: c.LocalAddr().Network(), Addr: c.RemoteAddr(), Err: errors.ErrUnsupported}
}

// NetConn returns the flow.
func (c *nodelayConn) NetConn() net.Conn { return c.Conn }
