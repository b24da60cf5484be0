package resolver

import "strings"

// A Target is what a host URI names before any lookup: what a proxy that
// resolves names itself (socks5h, HTTP CONNECT) is asked for.
type Target struct {
	// Scheme is the URI's lower-case scheme ("tcp", "tls", "https", …).
	Scheme string
	// Host is the lower-case host name without a trailing dot, or an IP
	// literal's text (without brackets).
	Host string
	// IsIP reports that Host is an IP literal.
	IsIP bool
	// Port is the URI's port, or the scheme's default from the services
	// table.
	Port uint16
	// TLS reports that the scheme is TLS, and ServerName is the name the
	// TLS endpoint would verify (the host, or the sni parameter).
	TLS        bool
	ServerName string
}

// Target parses a tcp, tls or service URI into what it names without
// looking anything up. ok is false for URIs that name no host and port
// (unix, vchan, SRV names): those have no target to give a proxy. The
// error is a *URIError for a malformed URI.
func (r *URIResolver) Target(uri string) (t Target, ok bool, err error) {
	p, err := parse(uri, r.knownService)
	if err != nil {
		return Target{}, false, err
	}
	switch p.kind {
	case schemeTCP, schemeTLS:
	case schemeService:
		if _, isService := r.services[p.scheme]; !isService {
			return Target{}, false, nil // SCHEME+srv, srv
		}
	default:
		return Target{}, false, nil
	}
	port, tls := r.hostPort(p)
	if port <= 0 {
		return Target{}, false, malformed(uri, "port 0 is only valid to listen on")
	}
	if p.host == "" {
		return Target{}, false, malformed(uri, "empty host")
	}
	host := strings.TrimSuffix(p.host, ".")
	t = Target{Scheme: p.scheme, Host: host, IsIP: p.addr.IsValid(), Port: uint16(port), TLS: tls}
	if t.IsIP {
		t.Host = p.addr.WithZone("").String()
	}
	if tls {
		t.ServerName = p.serverName(t.Host)
	}
	return t, true, nil
}
