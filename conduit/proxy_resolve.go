package conduit

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

// A ProxyFunc chooses the proxy chain of a destination: the proxies'
// URLs, nearest first (the first is dialed directly, each next one
// through the previous one), or none for a direct connection. It is
// called for host URIs (tcp, tls and service schemes such as https)
// without a proxy query parameter; SRV, Unix and vchan URIs are dialed
// directly unless their URI names proxies. ProxyFromEnvironment is one.
type ProxyFunc func(ctx context.Context, dst ProxyDestination) ([]*url.URL, error)

// ProxyDestination is what a ProxyFunc decides on.
type ProxyDestination struct {
	// URI is the URI being dialed or resolved.
	URI string
	// Scheme is its lower-case scheme ("tcp", "tls", "https", …), Host
	// its host name or IP literal, Port its port (the scheme's default
	// when the URI has none).
	Scheme string
	Host   string
	Port   uint16
}

// maxProxyEndpoints bounds the endpoints of one proxied resolution: the
// product of the addresses of each proxy and of the destination.
const maxProxyEndpoints = 16

// proxyParam is the query parameter of a URI that names its proxies.
const proxyParam = "proxy"

// withProxies wraps res so that URIs with proxies (their proxy query
// parameter, or Config.Proxy) resolve to proxy hops. A nil res stays nil.
func (c *Conduit) withProxies(res resolver.Resolver) resolver.Resolver {
	if res == nil {
		return nil
	}
	return &proxyResolver{inner: res, fn: c.cfg.Proxy}
}

// proxyResolver resolves URIs with proxies to chains of endpoint.Proxy
// hops, and every other URI through inner.
type proxyResolver struct {
	inner resolver.Resolver
	fn    ProxyFunc
}

// Resolve resolves uri, through its proxy chain if it has one.
func (r *proxyResolver) Resolve(ctx context.Context, uri string) ([]endpoint.Endpoint, error) {
	chain, target, err := r.chain(ctx, uri)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return r.inner.Resolve(ctx, target)
	}
	return r.resolveChain(ctx, chain, target)
}

// ResolveListen resolves a URI to listen on: proxies do not apply.
func (r *proxyResolver) ResolveListen(ctx context.Context, uri string) ([]endpoint.Endpoint, error) {
	if lr, ok := r.inner.(ListenResolver); ok {
		return lr.ResolveListen(ctx, uri)
	}
	return r.inner.Resolve(ctx, uri)
}

// ResolveStream streams the resolution of a URI without proxies when
// inner can; a proxied URI, or a resolver that cannot stream, gives one
// batch.
func (r *proxyResolver) ResolveStream(ctx context.Context, uri string, send func(resolver.Batch)) error {
	chain, target, err := r.chain(ctx, uri)
	if err != nil {
		return err
	}
	if s, ok := r.inner.(resolver.Streamer); ok && len(chain) == 0 {
		return s.ResolveStream(ctx, target, send)
	}
	var eps []endpoint.Endpoint
	if len(chain) == 0 {
		eps, err = r.inner.Resolve(ctx, target)
	} else {
		eps, err = r.resolveChain(ctx, chain, target)
	}
	if err != nil {
		return err
	}
	send(resolver.Batch{Endpoints: eps})
	return nil
}

// A hop is one proxy of a chain, parsed from its URL.
type hop struct {
	url      string // as given, without the password, for errors
	protocol string // endpoint.ProxySOCKS5, ProxySOCKS5H or ProxyHTTP
	tls      bool   // https: TLS to the proxy
	host     string // the proxy's host, for a transport over tcp
	port     uint16
	via      string // the URI of the proxy's own endpoint
	user     string
	pass     string
}

// chain returns uri's proxies and the URI to resolve without them: the
// proxy query parameters (proxy=direct for none), else Config.Proxy's
// choice for a host URI.
func (r *proxyResolver) chain(ctx context.Context, uri string) ([]hop, string, error) {
	if strings.Contains(uri, proxyParam+"=") {
		if urls, target, ok := splitProxyParams(uri); ok {
			if len(urls) == 1 && urls[0] == "direct" {
				return nil, target, nil
			}
			hops := make([]hop, 0, len(urls))
			for _, s := range urls {
				h, err := parseHop(s)
				if err != nil {
					return nil, "", &OpError{Op: "resolve", URI: uri, Err: err}
				}
				hops = append(hops, h)
			}
			return hops, target, nil
		}
	}
	if r.fn == nil {
		return nil, uri, nil
	}
	t, ok := r.target(uri)
	if !ok {
		return nil, uri, nil
	}
	urls, err := r.fn(ctx, ProxyDestination{URI: uri, Scheme: t.Scheme, Host: t.Host, Port: t.Port})
	if err != nil {
		return nil, "", &OpError{Op: "resolve", URI: uri, Err: err}
	}
	hops := make([]hop, 0, len(urls))
	for _, pu := range urls {
		h, err := parseHopURL(pu)
		if err != nil {
			return nil, "", &OpError{Op: "resolve", URI: uri, Err: err}
		}
		hops = append(hops, h)
	}
	return hops, uri, nil
}

// splitProxyParams takes the proxy parameters out of uri's query: their
// values, unescaped (a "+" stays a "+", so socks5+unix:// needs no
// escaping), and uri without them, the other parameters as they were.
func splitProxyParams(uri string) (proxies []string, rest string, ok bool) {
	base, query, found := strings.Cut(uri, "?")
	if !found {
		return nil, uri, false
	}
	query, fragment, hasFragment := strings.Cut(query, "#")
	var kept []string
	for _, param := range strings.Split(query, "&") {
		key, value, _ := strings.Cut(param, "=")
		if key != proxyParam {
			if param != "" {
				kept = append(kept, param)
			}
			continue
		}
		v, err := url.PathUnescape(value)
		if err != nil {
			v = value // parseHop reports it
		}
		proxies = append(proxies, v)
	}
	if len(proxies) == 0 {
		return nil, uri, false
	}
	rest = base
	if len(kept) > 0 {
		rest += "?" + strings.Join(kept, "&")
	}
	if hasFragment {
		rest += "#" + fragment
	}
	return proxies, rest, true
}

// target parses a host URI without a lookup, when inner can.
func (r *proxyResolver) target(uri string) (resolver.Target, bool) {
	tp, ok := r.inner.(interface {
		Target(string) (resolver.Target, bool, error)
	})
	if !ok {
		return resolver.Target{}, false
	}
	t, ok, err := tp.Target(uri)
	return t, ok && err == nil
}

// resolveChain resolves target through the chain: the first proxy's
// endpoints, each next proxy reached through the previous one, then the
// destination through the last one.
func (r *proxyResolver) resolveChain(ctx context.Context, chain []hop, target string) ([]endpoint.Endpoint, error) {
	fail := func(err error) ([]endpoint.Endpoint, error) {
		return nil, &OpError{Op: "resolve", URI: target, Err: err}
	}
	vias, err := r.inner.Resolve(ctx, chain[0].via)
	if err != nil {
		return nil, err
	}
	vias = capEndpoints(vias)
	for i := 1; i < len(chain); i++ {
		next := chain[i]
		viaURI := "tcp://" + net.JoinHostPort(next.host, strconv.Itoa(int(next.port)))
		if next.host == "" {
			return fail(errorf("proxy %s cannot be reached through another proxy: it is not at a HOST:PORT", next.url))
		}
		vias, err = r.through(ctx, chain[i-1], vias, viaURI)
		if err != nil {
			return nil, err
		}
		if next.tls {
			for j, v := range vias {
				vias[j] = endpoint.TLS{ServerName: next.host, Inner: v}
			}
		}
	}
	eps, err := r.through(ctx, chain[len(chain)-1], vias, target)
	if err != nil {
		return nil, err
	}
	return eps, nil
}

// through returns the endpoints of the host URI dst reached through the
// proxy h at each of vias: dst resolved here for socks5 (or when it names
// no host and port, as an SRV name), its name given to the proxy
// otherwise.
func (r *proxyResolver) through(ctx context.Context, h hop, vias []endpoint.Endpoint, dst string) ([]endpoint.Endpoint, error) {
	hopTo := func(target, host string, via endpoint.Endpoint) endpoint.Proxy {
		return endpoint.Proxy{Protocol: h.protocol, Target: target, Host: host,
			Username: h.user, Password: h.pass, Via: via}
	}
	var out []endpoint.Endpoint
	if t, ok := r.target(dst); ok && h.protocol != endpoint.ProxySOCKS5 {
		target := net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port)))
		for _, v := range vias {
			var ep endpoint.Endpoint = hopTo(target, "", v)
			if t.TLS {
				ep = endpoint.TLS{ServerName: t.ServerName, Inner: ep}
			}
			out = append(out, ep)
		}
		return capEndpoints(out), nil
	}
	dsts, err := r.inner.Resolve(ctx, dst)
	if err != nil {
		return nil, err
	}
	for _, d := range dsts {
		for _, v := range vias {
			var bad error
			ep, ok := endpoint.ReplaceInnermost(d, func(in endpoint.Endpoint) endpoint.Endpoint {
				tcp, isTCP := in.(endpoint.TCP)
				if !isTCP {
					bad = errorf("%s cannot be reached through a proxy: proxies connect to TCP destinations", in)
					return in
				}
				host := tcp.Host
				if host == tcp.Addr.Addr().String() {
					host = ""
				}
				return hopTo(tcp.Addr.String(), host, v)
			})
			if !ok {
				bad = errorf("%s cannot be reached through a proxy", d)
			}
			if bad != nil {
				return nil, &OpError{Op: "resolve", URI: dst, Err: bad}
			}
			out = append(out, ep)
		}
	}
	return capEndpoints(out), nil
}

func capEndpoints(eps []endpoint.Endpoint) []endpoint.Endpoint {
	if len(eps) > maxProxyEndpoints {
		return eps[:maxProxyEndpoints:maxProxyEndpoints]
	}
	return eps
}

// parseHop parses a proxy URL of a URI's proxy parameter or a command
// line: socks5://, socks5h://, http://, https://, with user:pass@, over
// TCP at HOST[:PORT], or over another transport as PROTOCOL+TRANSPORT
// (socks5+unix:///run/socks.sock, http+vchan://7/proxy).
func parseHop(s string) (hop, error) {
	u, err := url.Parse(s)
	if err != nil {
		return hop{}, errorf("proxy %q: %v", s, err)
	}
	return parseHopURL(u)
}

// defaultProxyPorts are the ports of proxies whose URL has none: 1080
// for SOCKS (RFC 1928), 80 and 443 for HTTP proxies (net/http's rule).
var defaultProxyPorts = map[string]uint16{"socks5": 1080, "socks5h": 1080, "http": 80, "https": 443}

// parseHopURL is parseHop for a parsed URL.
func parseHopURL(u *url.URL) (hop, error) {
	shown := *u
	shown.User = nil
	if u.User != nil {
		shown.User = url.User(u.User.Username())
	}
	h := hop{url: shown.String()}
	if u.User != nil {
		h.user = u.User.Username()
		h.pass, _ = u.User.Password()
	}
	proto, transport, _ := strings.Cut(strings.ToLower(u.Scheme), "+")
	switch proto {
	case "socks5", "socks5h":
		h.protocol = proto
	case "http":
		h.protocol = endpoint.ProxyHTTP
	case "https":
		h.protocol, h.tls = endpoint.ProxyHTTP, true
	default:
		return hop{}, errorf("proxy %s: unknown proxy scheme %q (socks5, socks5h, http, https)", h.url, u.Scheme)
	}
	if len(h.user) > 255 || len(h.pass) > 255 {
		return hop{}, errorf("proxy %s: user name and password are at most 255 bytes", h.url)
	}
	if transport == "" || transport == "tcp" {
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return hop{}, errorf("proxy %s: no host", h.url)
		}
		h.host = host
		h.port = defaultProxyPorts[proto]
		if port != "" {
			p, err := strconv.ParseUint(port, 10, 16)
			if err != nil || p == 0 {
				return hop{}, errorf("proxy %s: port must be 1-65535", h.url)
			}
			h.port = uint16(p)
		}
		scheme := "tcp"
		if h.tls {
			scheme = "tls"
		}
		h.via = scheme + "://" + net.JoinHostPort(host, strconv.Itoa(int(h.port)))
		return h, nil
	}
	s, ok := endpoint.LookupScheme(transport)
	if !ok || s.TLS {
		return hop{}, errorf("proxy %s: unknown transport %q after %q+ (unix, vchan)", h.url, transport, proto)
	}
	scheme := s.Name
	if h.tls {
		t, _ := endpoint.TLSSchemeOf(s.Base)
		scheme = t.Name
	}
	rest := *u
	rest.Scheme, rest.User = scheme, nil
	h.via = rest.String()
	return h, nil
}
