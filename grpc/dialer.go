package conduitgrpc

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/endpoint"
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
	if strings.HasPrefix(addr, "tls") && strings.Contains(addr, "://") {
		if conn, ok, err := dialTLS(ctx, c, addr); ok {
			return conn, err
		}
	}
	conn, err := c.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return nodelay(conn), nil
}

// dialTLS dials the TLS endpoint of a URI (TLSByConduit) through the
// Conduit's TLS transport, over an inner flow that pushes every write:
// the TLS transport writes its records to the inner flow with Write,
// which on conduit's TCP flows runs Nagle's algorithm and holds each
// record of a request behind the peer's delayed ACK. ok is false when
// the URI is not one TLS endpoint of the built-in TLS transport; the
// caller then dials it as it is.
func dialTLS(ctx context.Context, c *conduit.Conduit, uri string) (net.Conn, bool, error) {
	eps, err := c.Resolve(ctx, uri)
	if err != nil {
		return nil, true, err
	}
	if len(eps) != 1 {
		return nil, false, nil
	}
	ep, isTLS := eps[0].(endpoint.TLS)
	t, ok := c.Registry().Transport(endpoint.KindTLS)
	if !isTLS || !ok {
		return nil, false, nil
	}
	conn, err := t.Dial(ctx, ep, conduit.DialOptions{
		Dial: func(ctx context.Context, inner endpoint.Endpoint) (net.Conn, error) {
			f, err := c.DialEndpoints(ctx, []endpoint.Endpoint{inner})
			if err != nil {
				return nil, err
			}
			return nodelay(f), nil
		},
	})
	if err != nil {
		return nil, true, &conduit.OpError{Op: "dial", URI: uri, Endpoint: ep, Err: err}
	}
	return nodelay(conn), true, nil
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
