package conduit

import (
	"context"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/proxy"
)

// The schemes of proxy listeners: ListenProxy parses them.
const (
	// ProxySchemeSOCKS5 serves SOCKS5 (RFC 1928), CONNECT only.
	ProxySchemeSOCKS5 = "socks5"
	// ProxySchemeConnect serves HTTP CONNECT (RFC 9110 §9.3.6).
	ProxySchemeConnect = "connect"
)

// A ProxyListen is a proxy listener's URI, parsed by ParseProxyListen:
// socks5://[USER:PASS@]HOST:PORT serves SOCKS5 and
// connect://[USER:PASS@]HOST:PORT HTTP CONNECT, on TCP at HOST:PORT;
// PROTO+TRANSPORT serves over another transport (socks5+unix:///PATH,
// connect+tls://HOST:PORT for CONNECT over TLS, socks5+vchan://0/PORT).
type ProxyListen struct {
	// Protocol is ProxySchemeSOCKS5 or ProxySchemeConnect.
	Protocol string
	// URI is the URI to listen on (tcp://HOST:PORT, unix:///PATH…).
	URI string
	// Auth is the user information of the URI, nil without one.
	Auth *proxy.Auth
}

// IsProxyListenURI reports whether uri has the scheme of a proxy
// listener.
func IsProxyListenURI(uri string) bool {
	scheme, _, ok := strings.Cut(uri, "://")
	if !ok {
		return false
	}
	proto, _, _ := strings.Cut(strings.ToLower(scheme), "+")
	return proto == ProxySchemeSOCKS5 || proto == ProxySchemeConnect
}

// ParseProxyListen parses the URI of a proxy listener.
func ParseProxyListen(uri string) (ProxyListen, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return ProxyListen{}, errorf("proxy listener %q: %v", uri, err)
	}
	proto, transport, _ := strings.Cut(strings.ToLower(u.Scheme), "+")
	if proto != ProxySchemeSOCKS5 && proto != ProxySchemeConnect {
		return ProxyListen{}, errorf("proxy listener %s: the scheme is socks5 or connect (with +TRANSPORT)", uri)
	}
	if transport == "" {
		transport = "tcp"
	}
	pl := ProxyListen{Protocol: proto}
	if u.User != nil {
		pass, _ := u.User.Password()
		pl.Auth = &proxy.Auth{Username: u.User.Username(), Password: pass}
		if pl.Auth.Username == "" {
			return ProxyListen{}, errorf("proxy listener: an empty user name")
		}
	}
	rest := *u
	rest.Scheme, rest.User = transport, nil
	pl.URI = rest.String()
	return pl, nil
}

// ServeProxy serves the proxy protocol on ln until ctx ends, then waits
// up to grace for open connections, as ServeListener. Each accepted
// client gets srv's handshake; its destination is dialed through c by
// default (srv.Dial nil): as tcp://HOST:PORT, so a name resolves through
// c's resolver, whose hosts, rewrite rules and SRV apply (a rewrite rule
// can send a name to a Unix socket or vchan).
//
// Safe by default: a proxy whose listener can be reached from other
// machines (anything but a loopback address or a Unix socket,
// endpoint.IsLocal) and has neither srv.Auth nor srv.Allow is refused,
// since it would relay for anyone who reaches it.
func (c *Conduit) ServeProxy(ctx context.Context, ln *Listener, protocol string, srv *proxy.Server, grace time.Duration) error {
	c.init()
	if srv == nil {
		srv = &proxy.Server{}
	}
	s := *srv
	if err := CheckProxyExposure(ln.Endpoint(), &s); err != nil {
		ln.Close()
		return &OpError{Op: "serve", URI: ln.URI(), Err: err}
	}
	if s.Dial == nil {
		s.Dial = func(ctx context.Context, target string) (net.Conn, error) {
			f, err := c.Dial(ctx, "tcp://"+target)
			if err != nil {
				return nil, err
			}
			return f, nil
		}
	}
	var serve func(context.Context, net.Conn) error
	switch protocol {
	case ProxySchemeSOCKS5:
		serve = s.ServeSOCKS5
	case ProxySchemeConnect:
		serve = s.ServeHTTPConnect
	default:
		ln.Close()
		return &OpError{Op: "serve", URI: ln.URI(), Err: errorf("unknown proxy protocol %q", protocol)}
	}
	return ServeListener(ctx, ln, HandlerFunc(func(ctx context.Context, f Flow) {
		serve(ctx, f) // logged by srv; it closes f
	}), grace)
}

// CheckProxyExposure returns an error when a proxy listening on ep would
// relay for anyone: ep can be reached from other machines (it is not
// endpoint.IsLocal) and srv has neither Auth nor Allow. ServeProxy checks
// it; a caller can check it before announcing the listener.
func CheckProxyExposure(ep endpoint.Endpoint, srv *proxy.Server) error {
	if srv.Auth != nil || srv.Allow != nil || endpoint.IsLocal(ep) {
		return nil
	}
	return errorf("a proxy on %s, which other machines can reach, needs authentication or a destination allow-list", endpoint.URI(ep))
}
