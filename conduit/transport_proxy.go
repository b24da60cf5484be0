package conduit

import (
	"context"
	"errors"
	"net"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/proxy"
)

// ProxyTransport is the built-in transport of endpoint.Proxy hops: it
// connects to the proxy (the hop's Via, through the same Conduit, so the
// proxy is reached over TCP, TLS, a Unix socket, vchan or the previous
// hop), then asks it for the hop's Target with SOCKS5 or HTTP CONNECT.
// Its flows are the tunnel through the proxy. It cannot listen: a proxy
// is served with a proxy.Server on an ordinary listener (ServeProxy).
type ProxyTransport struct{}

// Dial connects through the hop's proxy to its target.
func (ProxyTransport) Dial(ctx context.Context, ep endpoint.Endpoint, opts DialOptions) (net.Conn, error) {
	hop, ok := ep.(endpoint.Proxy)
	if !ok {
		return nil, errorf("proxy transport cannot dial a %q endpoint", ep.Kind())
	}
	if opts.Dial == nil {
		return nil, errorf("proxy transport: no dialer for the proxy's endpoint %s", hop.Via)
	}
	trace := ContextTrace(ctx)
	trace.proxyConnectStart(hop)
	conn, err := opts.Dial(ctx, hop.Via)
	trace.proxyConnectDone(hop, err)
	if err != nil {
		var pe *ProxyError
		if errors.As(err, &pe) {
			return nil, err // an earlier hop of the chain failed: it says which
		}
		return nil, &ProxyError{Hop: hop, Op: "connect", Err: err}
	}
	var auth *proxy.Auth
	if hop.Username != "" || hop.Password != "" {
		auth = &proxy.Auth{Username: hop.Username, Password: hop.Password}
	}
	trace.proxyHandshakeStart(hop)
	tunnel := conn
	switch hop.Protocol {
	case endpoint.ProxySOCKS5, endpoint.ProxySOCKS5H:
		err = proxy.SOCKS5(ctx, conn, hop.Target, auth)
	case endpoint.ProxyHTTP:
		tunnel, err = proxy.HTTPConnect(ctx, conn, hop.Target, auth)
	default:
		err = errorf("unknown proxy protocol %q", hop.Protocol)
	}
	trace.proxyHandshakeDone(hop, err)
	if err != nil {
		conn.Close()
		return nil, &ProxyError{Hop: hop, Op: "handshake", Err: err}
	}
	return tunnel, nil
}

// Listen fails: serve a proxy with ServeProxy.
func (ProxyTransport) Listen(ctx context.Context, ep endpoint.Endpoint, opts ListenOptions) (net.Listener, error) {
	return nil, errorf("cannot listen on the proxy hop %s: serve a proxy with ServeProxy", ep)
}

// A ProxyError is the failure of one proxy hop: connecting to its proxy
// (Op "connect") or the proxy's refusal or breach of protocol (Op
// "handshake"). In a chain it names the hop that failed. Err is a
// *proxy.SOCKSError or *proxy.HTTPError when the proxy refused, which
// unwrap to ErrRefused, ErrTimeout, proxy.ErrAuth or proxy.ErrNotAllowed.
type ProxyError struct {
	Hop endpoint.Proxy
	Op  string
	Err error
}

// Error reads "proxy socks5 127.0.0.1:1080 → example.com:443: cause"
// for a handshake, "proxy http 127.0.0.1:3128: cause" for a connect.
func (e *ProxyError) Error() string {
	s := "proxy " + e.Hop.Protocol + " " + proxyAddr(e.Hop.Via)
	if e.Op == "handshake" {
		s += " → " + e.Hop.Target
	}
	// The cause told once, without the layers that repeat the dial of
	// the proxy's endpoint or their package prefixes, as OpError does.
	return s + ": " + (&OpError{Op: "dial", Endpoint: e.Hop.Via, Err: e.Err}).cause()
}

// Unwrap returns the cause.
func (e *ProxyError) Unwrap() error { return e.Err }

// proxyAddr is a short name of a proxy's endpoint for messages: the
// target of a previous hop, the address of a TCP endpoint (under TLS for
// an https proxy), the endpoint itself otherwise.
func proxyAddr(ep endpoint.Endpoint) string {
	for {
		switch e := ep.(type) {
		case nil:
			return "<nil>"
		case endpoint.Proxy:
			return e.Target
		case endpoint.TCP:
			return e.Addr.String()
		case endpoint.TLS:
			if e.Inner != nil {
				ep = e.Inner
				continue
			}
		}
		return ep.String()
	}
}
