package resolver

import (
	"context"
	"net/netip"
	"strings"
	"time"
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
func (r *URIResolver) Resolve(ctx context.Context, uri string) ([]Endpoint, error) {
	return r.resolve(ctx, uri, false)
}

// ResolveListen is Resolve for a URI to listen on: port 0 (any port), an
// empty host (tcp://:0, the IPv4 unspecified address 0.0.0.0) and vchan
// domain id 0 (any free domain id, vchan://0/PORT) are allowed.
func (r *URIResolver) ResolveListen(ctx context.Context, uri string) ([]Endpoint, error) {
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

func (r *URIResolver) resolve(ctx context.Context, uri string, listen bool) ([]Endpoint, error) {
	if r.closed.Load() {
		return nil, &URIError{URI: uri, Err: errClosed}
	}
	if eps, ok := r.cache.get(uri, listen, r.now); ok {
		return eps, nil
	}
	eps, ttl, cacheable, err := r.resolveURI(ctx, uri, listen)
	if err != nil || !cacheable {
		return eps, err
	}
	switch {
	case ttl == ttlForever:
		r.cache.put(uri, listen, eps, time.Time{}, r.now())
	case ttl > 0 && r.cacheDNS:
		now := r.now()
		r.cache.put(uri, listen, eps, now.Add(ttl), now)
	}
	return eps, nil
}

// resolveTTL is resolve, uncached, that also says how long the answer is
// valid: ttlForever for an answer that never changes, ttlUnknown when no
// lookup said, else the lowest DNS TTL (0: do not cache).
func (r *URIResolver) resolveTTL(ctx context.Context, uri string, listen bool) ([]Endpoint, time.Duration, error) {
	eps, ttl, _, err := r.resolveURI(ctx, uri, listen)
	return eps, ttl, err
}

// resolveURI is resolveTTL that also says whether the answer may be
// cached for its TTL (SRV answers, randomly ordered, may not).
func (r *URIResolver) resolveURI(ctx context.Context, uri string, listen bool) (eps []Endpoint, ttl time.Duration, cacheable bool, err error) {
	if r.closed.Load() {
		return nil, 0, false, &URIError{URI: uri, Err: errClosed}
	}
	eps, ttl, err = r.resolveHost(ctx, uri, listen, &cacheable)
	return eps, ttl, cacheable, err
}

// resolveHost resolves uri, setting *cacheable unless it is an SRV URI.
func (r *URIResolver) resolveHost(ctx context.Context, uri string, listen bool, cacheable *bool) ([]Endpoint, time.Duration, error) {
	*cacheable = true
	p, err := parse(uri, r.knownService)
	if err != nil {
		return nil, 0, err
	}
	switch p.kind {
	case schemeUnix:
		return []Endpoint{Unix{Path: p.path}}, ttlForever, nil
	case schemeTLSUnix:
		return []Endpoint{TLS{ServerName: p.serverName("localhost"), Inner: Unix{Path: p.path}}}, ttlForever, nil
	case schemeVchan, schemeTLSVchan:
		eps, err := p.vchanEndpoints(uri, listen)
		return eps, ttlForever, err
	}
	if _, isService := r.services[p.scheme]; !isService && p.kind == schemeService {
		if base, ok := r.srvScheme(p.scheme); ok {
			*cacheable = false
			return r.resolveSRV(ctx, uri, p, base, listen)
		}
	}

	port, tls := p.port, p.kind == schemeTLS
	if p.kind == schemeService {
		svc := r.services[p.scheme]
		tls = svc.TLS
		if port < 0 {
			port = int(svc.Port)
		}
	}
	if len(r.rewrites) > 0 && !p.addr.IsValid() && p.host != "" {
		host := strings.TrimSuffix(p.host, ".")
		q := RewriteRequest{
			URI: uri, Scheme: p.scheme, Host: host, Port: uint16(max(port, 0)),
			TLS: tls, ServerName: p.serverName(host), Listen: listen,
			resolve: func(ctx context.Context, uri string) ([]Endpoint, error) {
				eps, _, err := r.resolveTTL(ctx, uri, listen)
				return eps, err
			},
		}
		eps, ok, err := r.rewrites.rewrite(ctx, q)
		if err != nil {
			return nil, 0, &URIError{URI: uri, Err: err}
		}
		if ok {
			// A rule's answer may change at any time: never cached.
			*cacheable = false
			return eps, ttlForever, nil
		}
	}
	if port == 0 && !listen {
		return nil, 0, malformed(uri, "port 0 is only valid to listen on")
	}
	var addrs []netip.Addr
	ttl := ttlForever
	switch {
	case p.addr.IsValid():
		addrs = []netip.Addr{p.addr}
	case p.host == "" && listen:
		addrs = []netip.Addr{netip.IPv4Unspecified()}
	case p.host == "":
		return nil, 0, malformed(uri, "empty host")
	default:
		if addrs, ttl, err = r.lookupHost(ctx, p.host); err != nil {
			return nil, 0, &URIError{URI: uri, Err: err}
		}
	}
	serverName := p.host
	if p.addr.IsValid() {
		serverName = p.addr.WithZone("").String()
	}
	serverName = p.serverName(strings.TrimSuffix(serverName, "."))
	name := p.host
	if p.addr.IsValid() {
		name = ""
	}
	eps := make([]Endpoint, 0, len(addrs))
	for _, a := range addrs {
		var ep Endpoint = TCP{Host: name, Addr: netip.AddrPortFrom(a, uint16(port))}
		if tls {
			ep = TLS{ServerName: serverName, Inner: ep}
		}
		eps = append(eps, ep)
	}
	return eps, ttl, nil
}

// serverName returns the sni query parameter, or def.
func (p *parsedURI) serverName(def string) string {
	if p.sni != "" {
		return p.sni
	}
	return def
}

// vchan returns the vchan endpoint of a vchan URI.
func (p *parsedURI) vchan() Endpoint {
	if p.domid >= 0 {
		return VchanDirect{Domid: p.domid, Port: p.vport}
	}
	return VchanNamed{Name: p.host, Port: p.vport}
}
