package resolver

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/conduit-go/conduit/endpoint"
)

// Resolve returns the endpoints of uri in dial order, or a *URIError.
// A host name yields one endpoint per address (deduplicated, in lookup
// order unless Config.PreferIPv4). The port must be 1-65535 and the host
// non-empty. ctx bounds the host lookup; it does not outlive the call.
//
// Answers are cached (until the lowest TTL of their DNS records; static
// ones for good) and the returned slice may be shared with the cache and
// other callers: it must not be modified (copy it first, with
// slices.Clone).
func (r *URIResolver) Resolve(ctx context.Context, uri string) ([]endpoint.Endpoint, error) {
	return r.resolve(ctx, uri, false)
}

// ResolveListen is Resolve for a URI to listen on: port 0 (any port), an
// empty host (tcp://:0, the IPv4 unspecified address 0.0.0.0) and vchan
// domain id 0 (any free domain id, vchan://0/PORT) are allowed.
func (r *URIResolver) ResolveListen(ctx context.Context, uri string) ([]endpoint.Endpoint, error) {
	return r.resolve(ctx, uri, true)
}

// knownService reports whether scheme is in the service table, or is srv
// or SCHEME+srv for a service SCHEME.
func (r *URIResolver) knownService(scheme string) bool {
	if _, ok := r.services[scheme]; ok {
		return true
	}
	_, ok := r.srvScheme(scheme)
	return ok
}

// An answer is what one resolution gives: the endpoints in dial order,
// how long they are valid (ttlForever, ttlUnknown or the lowest DNS TTL,
// see ttl.go), and whether the cache must not keep them even that long.
type answer struct {
	eps []endpoint.Endpoint
	// groups are the endpoints' Batch.Group (nil: all 0): an SRV
	// record's or HTTPS/SVCB record's rank.
	groups []int
	ttl    time.Duration
	// volatile: an SRV answer (its order is drawn again on each
	// resolution, RFC 2782) or a rewrite rule's (which may change at any
	// time). Watch still refreshes it by its TTL.
	volatile bool
}

// resolve is Resolve and ResolveListen: the cached answer for uri, or a
// fresh one, cached for as long as it is valid.
func (r *URIResolver) resolve(ctx context.Context, uri string, listen bool) ([]endpoint.Endpoint, error) {
	if r.closed.Load() {
		return nil, &URIError{URI: uri, Err: errClosed}
	}
	if eps, ok := r.cache.get(uri, listen, r.now); ok {
		return eps, nil
	}
	a, err := r.resolveURI(ctx, uri, listen, nil)
	if err != nil {
		return nil, err
	}
	r.remember(uri, listen, a)
	return a.eps, nil
}

// resolveFresh is an uncached resolution, for Watch and for the rewrite
// rules' own resolutions.
func (r *URIResolver) resolveFresh(ctx context.Context, uri string, listen bool) (answer, error) {
	if r.closed.Load() {
		return answer{}, &URIError{URI: uri, Err: errClosed}
	}
	return r.resolveURI(ctx, uri, listen, nil)
}

// remember caches a for (uri, listen): for good when it never changes,
// until its TTL when it comes from the DNS stub and the stub caches;
// never when it is volatile or has no TTL (0 or unknown).
func (r *URIResolver) remember(uri string, listen bool, a answer) {
	switch {
	case a.volatile:
	case a.ttl == ttlForever:
		r.cache.put(uri, listen, a.eps, a.groups, time.Time{}, r.now())
	case a.ttl > 0 && r.cacheDNS:
		now := r.now()
		r.cache.put(uri, listen, a.eps, a.groups, now.Add(a.ttl), now)
	}
}

// resolveURI parses uri and resolves it by its kind: a Unix path or a
// vchan (which never change), an SRV name, or a host. When out is not
// nil (ResolveStream), the lookups that answer in parts deliver them to
// out as they come; an answer known at once is only returned.
func (r *URIResolver) resolveURI(ctx context.Context, uri string, listen bool, out *collector) (answer, error) {
	p, err := parse(uri, r.knownService)
	if err != nil {
		return answer{}, err
	}
	switch p.kind {
	case schemeUnix:
		return answer{eps: []endpoint.Endpoint{endpoint.Unix{Path: p.path}}, ttl: ttlForever}, nil
	case schemeTLSUnix:
		return answer{eps: []endpoint.Endpoint{endpoint.TLS{ServerName: p.serverName("localhost"), Inner: endpoint.Unix{Path: p.path}}}, ttl: ttlForever}, nil
	case schemeVchan, schemeTLSVchan:
		eps, err := p.vchanEndpoints(uri, listen)
		return answer{eps: eps, ttl: ttlForever}, err
	}
	if _, isService := r.services[p.scheme]; !isService && p.kind == schemeService {
		if base, ok := r.srvScheme(p.scheme); ok {
			a, err := r.resolveSRV(ctx, uri, p, base, listen, out)
			a.volatile = true
			return a, err
		}
	}
	return r.resolveHost(ctx, uri, p, listen, out)
}

// resolveHost resolves a tcp, tls or service URI: by a rewrite rule if
// one answers for its host, else one endpoint per address of the host.
func (r *URIResolver) resolveHost(ctx context.Context, uri string, p *parsedURI, listen bool, out *collector) (answer, error) {
	port, tls := r.hostPort(p)
	if a, ok, err := r.rewriteHost(ctx, uri, p, port, tls, listen); ok || err != nil {
		return a, err
	}
	if port == 0 && !listen {
		return answer{}, malformed(uri, "port 0 is only valid to listen on")
	}
	if a, ok, err := r.resolveSVCB(ctx, uri, p, port, tls, listen, out); ok {
		return a, err
	}
	addrs, ttl, err := r.hostAddrs(ctx, uri, p, listen, out.hostSink(p, uint16(port), tls, 0))
	if err != nil {
		return answer{}, err
	}
	return answer{eps: p.hostEndpoints(addrs, uint16(port), tls), ttl: ttl}, nil
}

// hostPort returns the port of a tcp, tls or service URI (for a service
// without one, the service's) and whether it is dialled through TLS.
func (r *URIResolver) hostPort(p *parsedURI) (port int, tls bool) {
	if p.kind != schemeService {
		return p.port, p.kind == schemeTLS
	}
	svc := r.services[p.scheme]
	if p.port < 0 {
		return int(svc.Port), svc.TLS
	}
	return p.port, svc.TLS
}

// rewriteHost offers the host of a URI to the rewrite rules; ok reports
// that one answered. Such an answer is volatile.
func (r *URIResolver) rewriteHost(ctx context.Context, uri string, p *parsedURI, port int, tls, listen bool) (a answer, ok bool, err error) {
	if len(r.rewrites) == 0 || p.addr.IsValid() || p.host == "" {
		return answer{}, false, nil
	}
	host := strings.TrimSuffix(p.host, ".")
	q := RewriteRequest{
		URI: uri, Scheme: p.scheme, Host: host, Port: uint16(max(port, 0)),
		TLS: tls, ServerName: p.serverName(host), Listen: listen,
		resolve: func(ctx context.Context, uri string) ([]endpoint.Endpoint, error) {
			a, err := r.resolveFresh(ctx, uri, listen)
			return a.eps, err
		},
	}
	eps, ok, err := r.rewrites.rewrite(ctx, q)
	if err != nil {
		return answer{}, false, &URIError{URI: uri, Err: err}
	}
	return answer{eps: eps, ttl: ttlForever, volatile: true}, ok, nil
}

// hostAddrs returns the addresses of the host of a URI and how long they
// are valid: an IP literal, the IPv4 unspecified address for an empty
// host to listen on, or the host name's (lookupHost; lookupHostStream
// when found is not nil).
func (r *URIResolver) hostAddrs(ctx context.Context, uri string, p *parsedURI, listen bool, found func([]netip.Addr)) ([]netip.Addr, time.Duration, error) {
	switch {
	case p.addr.IsValid():
		return []netip.Addr{p.addr}, ttlForever, nil
	case p.host == "" && listen:
		return []netip.Addr{netip.IPv4Unspecified()}, ttlForever, nil
	case p.host == "":
		return nil, 0, malformed(uri, "empty host")
	}
	addrs, ttl, err := r.lookupHostStream(ctx, p.host, found)
	if err != nil {
		return nil, 0, &URIError{URI: uri, Err: err}
	}
	return addrs, ttl, nil
}

// hostEndpoints returns a TCP endpoint for each address of the host of
// p, each inside a TLS endpoint when tls (the server name is the host
// name or IP literal, or the sni parameter).
func (p *parsedURI) hostEndpoints(addrs []netip.Addr, port uint16, tls bool) []endpoint.Endpoint {
	name, serverName := p.host, p.host
	if p.addr.IsValid() {
		name, serverName = "", p.addr.WithZone("").String()
	}
	serverName = p.serverName(strings.TrimSuffix(serverName, "."))
	eps := make([]endpoint.Endpoint, 0, len(addrs))
	for _, a := range addrs {
		var ep endpoint.Endpoint = endpoint.TCP{Host: name, Addr: netip.AddrPortFrom(a, port)}
		if tls {
			ep = endpoint.TLS{ServerName: serverName, Inner: ep}
		}
		eps = append(eps, ep)
	}
	return eps
}

// serverName returns the sni query parameter, or def.
func (p *parsedURI) serverName(def string) string {
	if p.sni != "" {
		return p.sni
	}
	return def
}

// vchan returns the vchan endpoint of a vchan URI.
func (p *parsedURI) vchan() endpoint.Endpoint {
	if p.domid >= 0 {
		return endpoint.VchanDirect{Domid: p.domid, Port: p.vport}
	}
	return endpoint.VchanNamed{Name: p.host, Port: p.vport}
}
