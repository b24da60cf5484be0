package conduitgrpc

import (
	"context"
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
	return conduit.Nodelay(conduit.AsFlow(conn)), nil
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
			return conduit.Nodelay(conduit.AsFlow(f)), nil
		},
	})
	if err != nil {
		return nil, true, &conduit.OpError{Op: "dial", URI: uri, Endpoint: ep, Err: err}
	}
	return conduit.Nodelay(conduit.AsFlow(conn)), true, nil
}
