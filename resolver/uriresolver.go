package resolver

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
)

// Config configures a URIResolver. The zero value (or a nil *Config) is
// valid: the system's hosts file and resolver, and the built-in services.
// New copies what it needs; the Config may be reused afterwards.
type Config struct {
	// Hosts is a static hosts table, consulted before the hosts file and
	// the system. Keys are host names (matched case-insensitively and
	// without a trailing dot); invalid addresses are ignored.
	Hosts map[string][]netip.Addr

	// HostsFile is a hosts(5) file read once by New and consulted after
	// Hosts. Empty means DefaultHostsFile; "-" disables it. A missing file
	// is an empty table; any other read error makes New fail.
	HostsFile string

	// Services adds service schemes to the built-in table (http 80, https
	// 443 TLS, ssh 22, …; see docs/uris.md) or overrides its entries.
	// Scheme names are case-insensitive; the transport schemes (tcp, tls,
	// unix, tls+unix, vchan, tls+vchan) cannot be overridden and a port
	// must be non-zero.
	Services map[string]Service

	// LookupHost looks up the addresses of a host name that is neither
	// "localhost" nor in the static tables. Nil means
	// net.DefaultResolver.LookupNetIP(ctx, "ip", host). It must honour
	// ctx, and should return a *net.DNSError with IsNotFound set (or an
	// error wrapping ErrNotFound) when the name does not exist. It may be
	// called concurrently.
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)

	// PreferIPv4 puts the IPv4 addresses of a name before its IPv6 ones,
	// keeping the order within each family. By default the order of the
	// lookup is kept. (conduit's Happy Eyeballs interleaves the families
	// either way; this decides which goes first.)
	PreferIPv4 bool
}

// A URIResolver resolves the URIs of docs/uris.md to endpoints. It is safe
// for concurrent use. Create it with New and Close it when done.
type URIResolver struct {
	hosts      map[string][]netip.Addr // Config.Hosts, normalised
	fileHosts  map[string][]netip.Addr // the hosts file
	services   map[string]Service
	lookup     func(ctx context.Context, host string) ([]netip.Addr, error)
	preferIPv4 bool
	closed     atomic.Bool
}

var _ Resolver = (*URIResolver)(nil)

// New returns a resolver configured by cfg (nil means the zero Config). It
// reads the hosts file once. It fails on an invalid Services entry or an
// unreadable (but existing) hosts file.
func New(cfg *Config) (*URIResolver, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	services, err := serviceTable(cfg.Services)
	if err != nil {
		return nil, err
	}
	r := &URIResolver{
		hosts:      make(map[string][]netip.Addr, len(cfg.Hosts)),
		services:   services,
		lookup:     cfg.LookupHost,
		preferIPv4: cfg.PreferIPv4,
	}
	// Sorted, so that "Host" and "host" merge the same way every time.
	for _, name := range slices.Sorted(maps.Keys(cfg.Hosts)) {
		k := hostsKey(name)
		r.hosts[k] = appendUnique(r.hosts[k], cfg.Hosts[name]...)
	}
	if r.lookup == nil {
		r.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	switch path := cfg.HostsFile; path {
	case "-":
	case "":
		path = DefaultHostsFile
		fallthrough
	default:
		if r.fileHosts, err = readHostsFile(path); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Resolve returns the endpoints of uri in dial order, or a *URIError.
// A host name yields one endpoint per address (deduplicated, in lookup
// order unless Config.PreferIPv4). The port must be 1-65535 and the host
// non-empty. ctx bounds the host lookup; it does not outlive the call.
func (r *URIResolver) Resolve(ctx context.Context, uri string) ([]Endpoint, error) {
	return r.resolve(ctx, uri, false)
}

// ResolveListen is Resolve for a URI to listen on: port 0 (any port) and
// an empty host (tcp://:0, the IPv4 unspecified address 0.0.0.0) are
// allowed.
func (r *URIResolver) ResolveListen(ctx context.Context, uri string) ([]Endpoint, error) {
	return r.resolve(ctx, uri, true)
}

// Close releases the resolver's resources. It is idempotent; Resolve and
// ResolveListen fail afterwards with an error matching net.ErrClosed.
func (r *URIResolver) Close() error {
	r.closed.Store(true)
	return nil
}

// knownService reports whether scheme is in the service table.
func (r *URIResolver) knownService(scheme string) bool {
	_, ok := r.services[scheme]
	return ok
}

func (r *URIResolver) resolve(ctx context.Context, uri string, listen bool) ([]Endpoint, error) {
	if r.closed.Load() {
		return nil, &URIError{URI: uri, Err: errClosed}
	}
	p, err := parse(uri, r.knownService)
	if err != nil {
		return nil, err
	}
	switch p.kind {
	case schemeUnix:
		return []Endpoint{Unix{Path: p.path}}, nil
	case schemeTLSUnix:
		return []Endpoint{TLS{ServerName: p.serverName("localhost"), Inner: Unix{Path: p.path}}}, nil
	case schemeVchan:
		return []Endpoint{p.vchan()}, nil
	case schemeTLSVchan:
		return []Endpoint{TLS{ServerName: p.serverName("localhost"), Inner: p.vchan()}}, nil
	}

	port, tls := p.port, p.kind == schemeTLS
	if p.kind == schemeService {
		svc := r.services[p.scheme]
		tls = svc.TLS
		if port < 0 {
			port = int(svc.Port)
		}
	}
	if port == 0 && !listen {
		return nil, malformed(uri, "port 0 is only valid to listen on")
	}
	var addrs []netip.Addr
	switch {
	case p.addr.IsValid():
		addrs = []netip.Addr{p.addr}
	case p.host == "" && listen:
		addrs = []netip.Addr{netip.IPv4Unspecified()}
	case p.host == "":
		return nil, malformed(uri, "empty host")
	default:
		if addrs, err = r.lookupHost(ctx, p.host); err != nil {
			return nil, &URIError{URI: uri, Err: err}
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
	return eps, nil
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

// isLocalhost reports whether name is "localhost" or under it (RFC 6761
// §6.3): loopback without asking the system.
func isLocalhost(key string) bool {
	return key == "localhost" || strings.HasSuffix(key, ".localhost")
}

// lookupHost returns the addresses of a host name: from Config.Hosts, the
// hosts file, the loopback addresses for localhost, or LookupHost, first
// match wins. The result is non-empty, deduplicated, IPv4-mapped addresses
// unmapped, and ordered by Config.PreferIPv4.
func (r *URIResolver) lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	key := hostsKey(host)
	var addrs []netip.Addr
	if a, ok := r.hosts[key]; ok && len(a) > 0 {
		addrs = a
	} else if a, ok := r.fileHosts[key]; ok && len(a) > 0 {
		addrs = a
	} else if isLocalhost(key) {
		addrs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
	} else {
		if err := ctx.Err(); err != nil {
			return nil, &lookupError{host: host, err: err}
		}
		found, err := r.lookup(ctx, host)
		if err != nil {
			return nil, &lookupError{host: host, err: err}
		}
		for _, a := range found {
			if a.Is4In6() {
				a = a.Unmap()
			}
			addrs = appendUnique(addrs, a)
		}
		if len(addrs) == 0 {
			return nil, &lookupError{host: host, err: ErrNotFound}
		}
	}
	if r.preferIPv4 {
		v4 := make([]netip.Addr, 0, len(addrs))
		var v6 []netip.Addr
		for _, a := range addrs {
			if a.Is4() {
				v4 = append(v4, a)
			} else {
				v6 = append(v6, a)
			}
		}
		addrs = append(v4, v6...)
	}
	return addrs, nil
}

// A lookupError is a failed host lookup. It matches ErrNotFound when the
// name does not exist, and unwraps to the lookup's error (a *net.DNSError
// from the system resolver).
type lookupError struct {
	host string
	err  error
}

func (e *lookupError) Error() string {
	var dnsErr *net.DNSError
	if errors.As(e.err, &dnsErr) && dnsErr.Name != "" {
		return e.err.Error() // "lookup HOST on SERVER: …" already names the host
	}
	return "lookup " + e.host + ": " + e.err.Error()
}

func (e *lookupError) Unwrap() error { return e.err }

func (e *lookupError) Is(target error) bool {
	if target != ErrNotFound {
		return false
	}
	var dnsErr *net.DNSError
	return errors.As(e.err, &dnsErr) && dnsErr.IsNotFound
}

// errClosed is the error of a closed resolver.
var errClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string        { return "resolver is closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }
