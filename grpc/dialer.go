package conduitgrpc

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/conduit-go/conduit/conduit"
)

// Dialer returns a gRPC context dialer (grpc.WithContextDialer) that
// dials through c: an address that is a conduit URI as it is, a
// "host:port" as tcp://host:port (resolved by c). The flows it returns
// push every write at once (TCP_NODELAY), as gRPC expects.
func Dialer(c *conduit.Conduit) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) { return dial(ctx, c, addr) }
}

func dial(ctx context.Context, c *conduit.Conduit, addr string) (net.Conn, error) {
	if !strings.Contains(addr, "://") && strings.Contains(addr, "%") {
		// An IPv6 zone ("[fe80::1%eth0]:443"): a conduit URI writes it %25.
		addr = "tcp://" + strings.Replace(addr, "%", "%25", 1)
	}
	conn, err := c.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return nodelay(conn), nil
}

// nodelay returns conn writing with its WriteNodelay when it has one:
// conduit's TCP flows run Nagle's algorithm for plain writes, which
// holds the small frames of HTTP/2 back behind the peer's delayed
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
