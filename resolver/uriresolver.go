package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// DefaultResolvConf is the resolv.conf(5) file a resolver reads when
// Config.DNS is nil.
const DefaultResolvConf = "/etc/resolv.conf"

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

	// DNS configures the DNS stub resolver (package dnsstub) used for
	// host names when LookupHost is nil and for SRV records when LookupSRV
	// is nil. Nil means DefaultResolvConf read by dnsstub.ReadResolvConf,
	// or, when it cannot be read, the system resolver
	// (net.DefaultResolver). New copies it.
	DNS *dnsstub.Config

	// LookupSRV looks up the SRV records of a name such as
	// "_http._tcp.example.com" (srv:// and SCHEME+srv:// URIs). Nil means
	// the DNS stub (or net.DefaultResolver.LookupSRV without one). A name
	// without records should give an error matching ErrNotFound. It may be
	// called concurrently.
	LookupSRV func(ctx context.Context, name string) ([]dnsstub.SRV, error)

	// Rand is the random source for the weighted order of SRV targets
	// (RFC 2782) and the jitter of Watch. Nil means math/rand/v2's global
	// source. New wraps it with a lock: it need not be safe for
	// concurrent use, but must not be used elsewhere.
	Rand rand.Source

	// After is the resolver's timer: Watch's refreshes and the deadline
	// of each SRV target lookup. Nil means time.After. Tests replace it
	// to advance time without sleeping. It may be called concurrently.
	After func(d time.Duration) <-chan time.Time

	// RefreshInterval is how often Watch re-resolves a name whose lookup
	// gives no TTL (LookupHost, the system resolver, a LookupSRV whose
	// records have TTL 0). 0 means 30 s.
	RefreshInterval time.Duration

	// MinRefreshInterval is the shortest time between two resolutions by
	// Watch, and how often it re-resolves an answer whose DNS TTL is 0
	// ("do not cache", Consul's default), with 0 to 10% of jitter above
	// it. 0 means 1 s.
	MinRefreshInterval time.Duration

	// SRVConcurrency is how many targets of one SRV answer are looked up
	// at once, per resolution. 0 means 8.
	SRVConcurrency int

	// MaxSRVTargets is the most records of one SRV answer that are used:
	// the first ones in RFC 2782 order (priority, then weighted random
	// choice within a priority, drawn again on each resolution), their
	// targets looked up; the others are dropped, counted in Stats and
	// logged (Logger, debug level). 0 means 32.
	MaxSRVTargets int

	// SRVTargetTimeout bounds the address lookup of each SRV target
	// (within the caller's context): a target that does not resolve in
	// time is skipped, as one that fails, and the targets after it
	// proceed. 0 means 2 s.
	SRVTargetTimeout time.Duration

	// Logger receives debug records (SRV answers capped at
	// MaxSRVTargets). Nil means none.
	Logger *slog.Logger

	// PreferIPv4 puts the IPv4 addresses of a name before its IPv6 ones,
	// keeping the order within each family. By default the order of the
	// lookup is kept. (conduit's Happy Eyeballs interleaves the families
	// either way; this decides which goes first.)
	PreferIPv4 bool

	// ServicesFile is a services(5) file whose TCP entries add service
	// schemes (TLS for the implicit-TLS services IANA lists, such as
	// ftps or submissions). The built-in table and Services take
	// precedence. Empty means DefaultServicesFile; "-" reads none; a
	// missing file is no error.
	ServicesFile string

	// Rewrites map the host names under domain suffixes to endpoints of
	// their own, before the hosts tables and DNS: see Rewrite.
	Rewrites []Rewrite
}

// A URIResolver resolves the URIs of docs/uris.md to endpoints. It is safe
// for concurrent use. Create it with New and Close it when done.
type URIResolver struct {
	hosts      map[string][]netip.Addr // Config.Hosts, normalised
	fileHosts  map[string][]netip.Addr // the hosts file
	services   map[string]Service
	lookup     func(ctx context.Context, host string) ([]netip.Addr, time.Duration, error)
	lookupSRV  func(ctx context.Context, name string) ([]dnsstub.SRV, error)
	stub       *dnsstub.Stub // nil when neither lookup uses it
	preferIPv4 bool
	rewrites   rewriteRules
	randMu     sync.Mutex
	rand       *rand.Rand // nil: the global source
	after      func(d time.Duration) <-chan time.Time
	refresh    time.Duration // Config.RefreshInterval
	minRefresh time.Duration // Config.MinRefreshInterval
	log        *slog.Logger

	// The SRV fan-out (Config.SRVConcurrency, MaxSRVTargets,
	// SRVTargetTimeout), and whether LookupSRV's TTLs are real (the DNS
	// stub's: a TTL of 0 is "do not cache", not "unknown").
	concurrency   int
	maxTargets    int
	targetTimeout time.Duration
	srvTTLKnown   bool

	stats struct {
		srvCapped, srvDropped, srvTimeouts atomic.Uint64
	}

	cache    uriCache
	now      func() time.Time // the DNS stub's clock
	cacheDNS bool             // answers from the stub may be cached (its cache is on)

	// ctx ends every Watch goroutine; Close cancels it and waits for them
	// (wg), so that none outlives the resolver or uses the closed stub.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // orders wg.Add in Watch before Close's wg.Wait
	closed atomic.Bool
}

var _ Resolver = (*URIResolver)(nil)

// New returns a resolver configured by cfg (nil means the zero Config). It
// reads the hosts file once. It fails on an invalid Services entry or an
// unreadable (but existing) hosts file.
func New(cfg *Config) (*URIResolver, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	fileServices, err := readServicesFile(cfg.ServicesFile)
	if err != nil {
		return nil, err
	}
	services, err := serviceTable(fileServices, cfg.Services)
	if err != nil {
		return nil, err
	}
	r := &URIResolver{
		hosts:      make(map[string][]netip.Addr, len(cfg.Hosts)),
		services:   services,
		lookupSRV:  cfg.LookupSRV,
		preferIPv4: cfg.PreferIPv4,
		after:      cfg.After,
		refresh:    cfg.RefreshInterval,
		minRefresh: cfg.MinRefreshInterval,
		log:        cfg.Logger,

		concurrency:   cfg.SRVConcurrency,
		maxTargets:    cfg.MaxSRVTargets,
		targetTimeout: cfg.SRVTargetTimeout,
	}
	if r.rewrites, err = compileRewrites(cfg.Rewrites); err != nil {
		return nil, err
	}
	if cfg.Rand != nil {
		r.rand = rand.New(cfg.Rand)
	}
	if r.after == nil {
		r.after = time.After
	}
	if r.refresh <= 0 {
		r.refresh = 30 * time.Second
	}
	if r.minRefresh <= 0 {
		r.minRefresh = defaultMinRefresh
	}
	if r.concurrency <= 0 {
		r.concurrency = defaultSRVConcurrency
	}
	if r.maxTargets <= 0 {
		r.maxTargets = defaultMaxSRVTargets
	}
	if r.targetTimeout <= 0 {
		r.targetTimeout = defaultSRVTargetTimeout
	}
	r.now = time.Now
	// Sorted, so that "Host" and "host" merge the same way every time.
	for _, name := range slices.Sorted(maps.Keys(cfg.Hosts)) {
		k := hostsKey(name)
		r.hosts[k] = appendUnique(r.hosts[k], cfg.Hosts[name]...)
	}
	if err := r.setLookups(cfg); err != nil {
		return nil, err
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	switch path := cfg.HostsFile; path {
	case "-":
	case "":
		path = DefaultHostsFile
		fallthrough
	default:
		if r.fileHosts, err = readHostsFile(path); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

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

// setLookups sets r.lookup and r.lookupSRV from cfg, creating the DNS
// stub when one of them needs it.
func (r *URIResolver) setLookups(cfg *Config) error {
	if cfg.LookupHost == nil || cfg.LookupSRV == nil {
		dnsCfg := cfg.DNS
		if dnsCfg == nil {
			dnsCfg, _ = dnsstub.ReadResolvConf(DefaultResolvConf) // nil when unreadable
		}
		if dnsCfg != nil {
			stub, err := dnsstub.New(dnsCfg)
			if err != nil {
				return fmt.Errorf("resolver: %w", err)
			}
			r.stub = stub
		}
	}
	switch {
	case cfg.LookupHost != nil:
		r.lookup = func(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
			addrs, err := cfg.LookupHost(ctx, host)
			return addrs, ttlUnknown, err
		}
	case r.stub != nil:
		r.lookup = r.stub.LookupHostTTL
		r.cacheDNS = cfg.DNS == nil || cfg.DNS.Cache.MaxEntries >= 0
		if cfg.DNS != nil && cfg.DNS.Clock != nil {
			r.now = cfg.DNS.Clock
		}
	default:
		r.lookup = func(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
			addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			return addrs, ttlUnknown, err
		}
	}
	switch {
	case r.lookupSRV != nil:
	case r.stub != nil:
		r.lookupSRV = r.stub.LookupSRV
		r.srvTTLKnown = true
	default:
		r.lookupSRV = systemLookupSRV
	}
	return nil
}

// systemLookupSRV is LookupSRV through net.DefaultResolver (no TTL).
func systemLookupSRV(ctx context.Context, name string) ([]dnsstub.SRV, error) {
	_, recs, err := net.DefaultResolver.LookupSRV(ctx, "", "", name)
	if err != nil {
		return nil, err
	}
	out := make([]dnsstub.SRV, len(recs))
	for i, r := range recs {
		out[i] = dnsstub.SRV{Target: r.Target, Port: r.Port, Priority: r.Priority, Weight: r.Weight}
	}
	return out, nil
}

// Close stops the Watch goroutines (closing their channels), releases
// the DNS stub, and makes Resolve and ResolveListen fail with an error
// matching net.ErrClosed. It is idempotent.
func (r *URIResolver) Close() error {
	r.mu.Lock()
	already := r.closed.Swap(true)
	r.mu.Unlock()
	if already {
		return nil
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	if r.stub != nil {
		r.stub.Close()
	}
	return nil
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

// isLocalhost reports whether name is "localhost" or under it (RFC 6761
// §6.3): loopback without asking the system.
func isLocalhost(key string) bool {
	return key == "localhost" || strings.HasSuffix(key, ".localhost")
}

// lookupHost returns the addresses of a host name: from Config.Hosts, the
// hosts file, the loopback addresses for localhost, or LookupHost, first
// match wins. The result is non-empty, deduplicated, IPv4-mapped addresses
// unmapped, and ordered by Config.PreferIPv4.
//
// The TTL is ttlForever for the static tables, ttlUnknown when the
// lookup gives none.
func (r *URIResolver) lookupHost(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
	key := hostsKey(host)
	var addrs []netip.Addr
	ttl := ttlForever
	if a, ok := r.hosts[key]; ok && len(a) > 0 {
		addrs = a
	} else if a, ok := r.fileHosts[key]; ok && len(a) > 0 {
		addrs = a
	} else if isLocalhost(key) {
		addrs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
	} else {
		if err := ctx.Err(); err != nil {
			return nil, 0, &lookupError{host: host, err: err}
		}
		found, t, err := r.lookup(ctx, host)
		if err != nil {
			return nil, 0, &lookupError{host: host, err: err}
		}
		ttl = t
		for _, a := range found {
			if a.Is4In6() {
				a = a.Unmap()
			}
			addrs = appendUnique(addrs, a)
		}
		if len(addrs) == 0 {
			return nil, 0, &lookupError{host: host, err: ErrNotFound}
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
	return addrs, ttl, nil
}

// isStatic reports whether lookupHost answers host from the static
// tables (Config.Hosts, the hosts file, localhost), without a lookup.
func (r *URIResolver) isStatic(host string) bool {
	key := hostsKey(host)
	return len(r.hosts[key]) > 0 || len(r.fileHosts[key]) > 0 || isLocalhost(key)
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
	var stubErr *dnsstub.Error
	if errors.As(e.err, &stubErr) {
		return e.err.Error() // "dns: lookup NAME TYPE: …"
	}
	return "lookup " + e.host + ": " + e.err.Error()
}

func (e *lookupError) Unwrap() error { return e.err }

func (e *lookupError) Is(target error) bool {
	if target != ErrNotFound {
		return false
	}
	if errors.Is(e.err, dnsstub.ErrNotFound) {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(e.err, &dnsErr) && dnsErr.IsNotFound
}

// errClosed is the error of a closed resolver.
var errClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string        { return "resolver is closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }
