package conduithttp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/endpoint"
)

// TransportOptions configures NewTransport. The zero value (and nil)
// works: HTTP/2 by ALPN, the system roots.
type TransportOptions struct {
	// TLSClientConfig is the base of the TLS configuration of HTTPS
	// connections (roots, client certificates); the server name is set
	// per connection unless it sets one, and NextProtos is "h2" and
	// "http/1.1" (or only "http/1.1" with DisableHTTP2) unless it sets
	// them. Nil means the defaults of crypto/tls. It is not modified.
	TLSClientConfig *tls.Config
	// TLSHandshakeTimeout bounds each TLS handshake; 0 means 10 s.
	TLSHandshakeTimeout time.Duration
	// DisableHTTP2 keeps to HTTP/1.1.
	DisableHTTP2 bool
}

// altSchemes are the request URL schemes the transport rewrites.
var altSchemes = [...]string{"http+unix", "https+unix", "http+vchan", "https+vchan", "http+srv", "https+srv"}

// NewTransport returns an *http.Transport whose connections are flows
// of c: every dial goes through c (its resolver, Happy Eyeballs, its
// transports), for the request URLs of the package documentation. It
// pools connections as any http.Transport does, HTTP/1.1 and HTTP/2
// (over TLS, chosen by ALPN). Its Proxy is nil: proxies are conduit's
// business. The result may be tuned (idle limits, timeouts) before use;
// its DialContext and DialTLSContext must be left alone.
func NewTransport(c *conduit.Conduit, opts *TransportOptions) *http.Transport {
	if opts == nil {
		opts = &TransportOptions{}
	}
	d := &dialer{c: c, base: opts.TLSClientConfig, timeout: opts.TLSHandshakeTimeout, http2: !opts.DisableHTTP2}
	if d.timeout <= 0 {
		d.timeout = 10 * time.Second
	}
	t := &http.Transport{
		DialContext:           d.dial,
		DialTLSContext:        d.dialTLS,
		ForceAttemptHTTP2:     !opts.DisableHTTP2,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	rt := &altRoundTripper{t: t}
	for _, s := range altSchemes {
		t.RegisterProtocol(s, rt)
	}
	return t
}

// altRoundTripper rewrites a request of an alternative scheme into an
// http or https request to a host that encodes the conduit URI (see
// encodeKey), and hands it back to the transport, which pools its
// connections by that host.
type altRoundTripper struct {
	t *http.Transport
}

func (rt *altRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	r, err := route(req.URL, req.Host)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host = r.scheme, encodeKey(r.uri)
	out.URL.Path, out.URL.RawPath = r.path, r.rawPath
	out.Host = r.host
	resp, err := rt.t.RoundTrip(out)
	if resp != nil {
		resp.Request = req // redirects resolve against the URL the caller wrote
	}
	return resp, err
}

// A routed request: the conduit URI its connection dials, the scheme
// net/http speaks over it, its Host header and its HTTP path.
type routed struct {
	uri, scheme, host string
	path, rawPath     string
}

// route maps a request URL of an alternative scheme to a conduit URI.
func route(u *url.URL, reqHost string) (routed, error) {
	base, ok := strings.CutSuffix(u.Scheme, "+unix")
	kind := "unix"
	if !ok {
		if base, ok = strings.CutSuffix(u.Scheme, "+vchan"); ok {
			kind = "vchan"
		} else if base, ok = strings.CutSuffix(u.Scheme, "+srv"); ok {
			kind = "srv"
		}
	}
	if !ok || base != "http" && base != "https" {
		return routed{}, &urlError{u.String(), "unsupported scheme " + u.Scheme}
	}
	r := routed{scheme: base, path: u.Path, rawPath: u.RawPath}
	if kind != "srv" && reqHost == u.Host {
		reqHost = "" // http.NewRequest copied the URL's host: a socket or a domain, not a name
	}
	host := reqHost
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	switch kind {
	case "unix":
		if !strings.HasPrefix(u.Host, "/") {
			return routed{}, &urlError{u.String(), "want a socket path as the host (parse the URL with ParseURL)"}
		}
		if host == "" {
			host = "localhost"
		}
		r.uri = "unix://" + (&url.URL{Path: u.Host}).EscapedPath()
		if base == "https" {
			r.uri = "tls+" + r.uri + "?sni=" + url.QueryEscape(host)
		}
	case "vchan":
		if u.Port() != "" {
			return routed{}, &urlError{u.String(), "the vchan port is the first segment of the path, not a :port"}
		}
		port, rest, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if !endpoint.ValidVchanPort(port) {
			return routed{}, &urlError{u.String(), fmt.Sprintf("invalid vchan port %q (want %s://DOMAIN/PORT/PATH)", port, u.Scheme)}
		}
		r.path = "/" + rest
		if r.rawPath != "" {
			_, rawRest, _ := strings.Cut(strings.TrimPrefix(u.RawPath, "/"), "/")
			r.rawPath = "/" + rawRest
		}
		if host == "" {
			host = "localhost"
		}
		r.uri = "vchan://" + u.Host + "/" + port
		if base == "https" {
			r.uri = "tls+" + r.uri + "?sni=" + url.QueryEscape(host)
		}
	case "srv":
		if u.Port() != "" {
			return routed{}, &urlError{u.String(), "no port in an SRV URL: the SRV records give the ports"}
		}
		if host == "" {
			host = u.Hostname()
		}
		r.uri = u.Scheme + "://" + u.Host
	}
	r.host = host
	if reqHost != "" {
		r.host = reqHost
	}
	return r, nil
}

// dialer dials the transport's connections through a Conduit.
type dialer struct {
	c       *conduit.Conduit
	base    *tls.Config
	timeout time.Duration
	http2   bool
}

// uri returns the conduit URI of a dial address: the URI a rewritten
// request's host encodes, else tcp:// or tls:// to the address.
func uri(scheme, addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err == nil {
		if u, ok := decodeKey(host); ok {
			return u
		}
	}
	// An IPv6 zone ("[fe80::1%eth0]:80"): a conduit URI writes it %25.
	return scheme + "://" + strings.Replace(addr, "%", "%25", 1)
}

func (d *dialer) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	f, err := d.c.Dial(ctx, uri("tcp", addr))
	if err != nil {
		return nil, err
	}
	return conduit.Nodelay(conduit.AsFlow(f)), nil
}

// dialTLS resolves the address to TLS endpoints, dials their raw flows
// (Happy Eyeballs) and runs crypto/tls over the one that answers, with
// the endpoints' server name.
func (d *dialer) dialTLS(ctx context.Context, _, addr string) (net.Conn, error) {
	u := uri("tls", addr)
	eps, err := d.c.Resolve(ctx, u)
	if err != nil {
		return nil, err
	}
	inner := make([]endpoint.Endpoint, len(eps))
	name := ""
	for i, ep := range eps {
		t, ok := ep.(endpoint.TLS)
		if !ok {
			return nil, fmt.Errorf("conduithttp: %s gives %s, not a TLS endpoint, for an HTTPS request", u, ep)
		}
		if name == "" {
			name = t.ServerName
		}
		inner[i] = t.Inner
	}
	raw, err := d.c.DialEndpoints(ctx, inner)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	tc := tls.Client(conduit.Nodelay(conduit.AsFlow(raw)), d.config(name))
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("conduithttp: TLS handshake with %s (%s): %w", name, u, err)
	}
	return tc, nil
}

// config returns the TLS configuration of a connection to serverName.
func (d *dialer) config(serverName string) *tls.Config {
	var cfg *tls.Config
	if d.base != nil {
		cfg = d.base.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = serverName
	}
	if len(cfg.NextProtos) == 0 {
		if d.http2 {
			cfg.NextProtos = []string{"h2", "http/1.1"}
		} else {
			cfg.NextProtos = []string{"http/1.1"}
		}
	}
	return cfg
}
