package conduit

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tlsflow"
	"github.com/conduit-go/conduit/vchan"
)

// DefaultFallbackDelay is the Happy Eyeballs attempt delay of RFC 8305:
// how long a dial waits for one endpoint before starting the next.
const DefaultFallbackDelay = 250 * time.Millisecond

// Config configures a Conduit. The zero value (and a nil *Config) is
// ready to use: the built-in transports over the kernel's TCP, Unix
// sockets, TLS with the system roots and vchan, and the default resolver.
// A Config must not be modified after it is passed to New.
type Config struct {
	// Registry holds the transports and custom schemes. Nil means a new
	// registry with the built-in transports (see NewDefaultRegistry),
	// configured from the fields below.
	Registry *Registry

	// Resolver turns URIs into endpoints. Nil means resolver.New with
	// only Clock set: the system's resolv.conf, hosts and services
	// files. If it also has a ResolveListen method (as
	// *resolver.URIResolver does), Listen uses it.
	Resolver resolver.Resolver

	// FallbackDelay is the Happy Eyeballs attempt delay: zero means
	// DefaultFallbackDelay; a negative value dials the endpoints one
	// after the other, each waiting for the previous one to fail.
	FallbackDelay time.Duration

	// ResolutionDelay is the Happy Eyeballs resolution delay (RFC 8305
	// §3): when the resolver streams its answers (resolver.Streamer) and
	// the first holds only IPv4 endpoints, how long a dial waits for the
	// IPv6 ones before it starts with what it has (IPv6 endpoints that
	// come later still join the race). Zero means
	// DefaultResolutionDelay; a negative value starts at once.
	ResolutionDelay time.Duration

	// FamilyMemory is how long the Conduit remembers, per host name, the
	// address family of the endpoint that won its last dial, and starts
	// the next dial of that host with that family (RFC 8305 §7's
	// suggestion, kept short-lived). Zero means DefaultFamilyMemory; a
	// negative value disables the memory.
	FamilyMemory time.Duration

	// SourceAddr returns the source address the system would use to
	// reach dst, or the invalid netip.Addr when it has no route to it:
	// a dial sorts IP endpoints by RFC 6724 with these sources. Nil
	// means asking the kernel, as Go's net package does (a UDP socket
	// "connected" to dst, which sends nothing). It may be called from
	// several dials at once.
	SourceAddr func(dst netip.Addr) netip.Addr

	// Clock times the Happy Eyeballs attempt and resolution delays and
	// the family memory, and is the default resolver's clock
	// (resolver.Config.Clock) when Resolver is nil. Nil means
	// clock.Real(). Tests inject a *clock.Manual to start the next
	// attempt without waiting.
	Clock clock.Clock

	// Keepalive, when non-nil, enables TCP keepalive on dialed flows.
	Keepalive *tcpflow.Keepalive

	// Stack is the TCP provider of the built-in tcp transport; nil means
	// the kernel's.
	Stack Stack

	// TLS configures the built-in TLS transport.
	TLS TLSConfig

	// Vchan configures the built-in vchan transport (the store directory,
	// ring sizes); nil means vchan's defaults.
	Vchan *vchan.Config

	// Logger, when non-nil, receives debug records of dial attempts and
	// server events. Nothing is logged otherwise.
	Logger *slog.Logger

	// Proxy, when non-nil, chooses the proxy chain of each dialed URI
	// that has no proxy query parameter of its own (docs/proxies.md):
	// the proxies' URLs, nearest first, or none for a direct connection.
	// ProxyFromEnvironment is one. Like http.Transport.Proxy, it is
	// called for every Dial and Resolve.
	Proxy ProxyFunc
}

// TLSConfig configures the built-in TLS transport.
type TLSConfig struct {
	// Client is the configuration for dials; nil means the defaults of
	// tlsflow (verification on, system roots, TLS 1.2 minimum).
	Client *tlsflow.Config
	// ByServerName overrides Client for endpoints with these server
	// names: a different CA or client certificate per host.
	ByServerName map[string]*tlsflow.Config
	// Server is the configuration for TLS listeners.
	Server *tlsflow.Config
}

// ListenResolver is implemented by resolvers that also resolve URIs to
// listen on (port 0 allowed, no service discovery).
type ListenResolver interface {
	ResolveListen(ctx context.Context, uri string) ([]endpoint.Endpoint, error)
}

// Conduit dials and listens on URIs. It is safe for concurrent use; the
// zero value is ready to use with the defaults of a zero Config.
type Conduit struct {
	cfg    Config
	once   sync.Once
	reg    *Registry
	res    resolver.Resolver
	resErr error
	closer func() error
	clock  clock.Clock  // cfg.Clock or the real one
	fam    familyMemory // the family that won each host's last dial
}

// New returns a Conduit configured by cfg; nil means the defaults.
func New(cfg *Config) *Conduit {
	c := &Conduit{}
	if cfg != nil {
		c.cfg = *cfg
	}
	return c
}

// init sets up the registry and resolver on first use.
func (c *Conduit) init() {
	c.once.Do(func() {
		c.reg = c.cfg.Registry
		if c.reg == nil {
			c.reg = NewDefaultRegistry(&c.cfg)
		}
		c.res = c.cfg.Resolver
		if c.res == nil {
			r, err := resolver.New(&resolver.Config{Clock: c.cfg.Clock})
			if err != nil {
				c.resErr = err
			} else {
				c.res = r
				c.closer = r.Close
			}
		}
		c.clock = orReal(c.cfg.Clock)
		c.res = c.withProxies(c.res)
	})
}

// Close releases the resources of the default resolver, if the Conduit
// created one. Flows and listeners already handed out stay open.
func (c *Conduit) Close() error {
	c.init()
	if c.closer != nil {
		return c.closer()
	}
	return nil
}

// Registry returns the registry the Conduit uses.
func (c *Conduit) Registry() *Registry {
	c.init()
	return c.reg
}

// Resolve resolves uri to the endpoints Dial would try, in the
// resolver's order: groups (SRV targets, HTTPS records) in priority
// order, each group's addresses as the lookups gave them. Dial then
// sorts each group by RFC 6724 and interleaves address families.
func (c *Conduit) Resolve(ctx context.Context, uri string) ([]endpoint.Endpoint, error) {
	c.init()
	trace := ContextTrace(ctx)
	trace.resolveStart(uri)
	eps, err := c.resolve(ctx, uri, false)
	trace.resolveDone(uri, eps, err)
	return eps, err
}

func (c *Conduit) resolve(ctx context.Context, uri string, listen bool) ([]endpoint.Endpoint, error) {
	op := "resolve"
	if listen {
		op = "listen"
	}
	fail := func(err error) ([]endpoint.Endpoint, error) {
		return nil, &OpError{Op: op, URI: uri, Err: err}
	}
	if scheme, _, ok := strings.Cut(uri, "://"); ok {
		if parse, ok := c.reg.Scheme(strings.ToLower(scheme)); ok {
			u, err := url.Parse(uri)
			if err != nil {
				return fail(err)
			}
			eps, err := parse(ctx, u)
			if err != nil {
				return fail(err)
			}
			if len(eps) == 0 {
				return fail(ErrNoEndpoints)
			}
			return eps, nil
		}
	}
	if c.res == nil {
		return fail(c.resErr)
	}
	var (
		eps []endpoint.Endpoint
		err error
	)
	if lr, ok := c.res.(ListenResolver); ok && listen {
		eps, err = lr.ResolveListen(ctx, uri)
	} else {
		eps, err = c.res.Resolve(ctx, uri)
	}
	if err != nil {
		return fail(err)
	}
	if len(eps) == 0 {
		return fail(ErrNoEndpoints)
	}
	return eps, nil
}

// Dial resolves uri and connects to one of its endpoints, racing them
// with Happy Eyeballs v2 (RFC 8305; docs/architecture.md tells the order
// of events). When the resolver streams its answers (resolver.Streamer),
// the race starts with the first usable answer, after the resolution
// delay when it holds only IPv4 endpoints, and the endpoints of later
// answers join it. The endpoints of each group (an SRV target, an HTTPS
// record) are sorted by RFC 6724 and alternate between address
// families, starting with the family that last won for the host
// (Config.FamilyMemory); groups are tried in order. ctx governs the
// resolution and the connection setup (including a TLS handshake), not
// the returned flow.
//
// On failure the error is an *OpError; when several endpoints were
// tried, every endpoint's error is kept.
func (c *Conduit) Dial(ctx context.Context, uri string) (Flow, error) {
	c.init()
	return c.dialURI(ctx, uri, "")
}

// DialEndpoints connects to one of the given endpoints with Happy
// Eyeballs, as Dial does after resolution.
func (c *Conduit) DialEndpoints(ctx context.Context, eps []endpoint.Endpoint) (Flow, error) {
	c.init()
	if len(eps) == 0 {
		return nil, &OpError{Op: "dial", Err: ErrNoEndpoints}
	}
	return c.race(ctx, "", "", eps, nil)
}

// DialContext dials network and address the way net.Dialer.DialContext
// does, so a Conduit plugs into http.Transport.DialContext and gRPC's
// context dialer. An address that is a URI ("unix:///run/app.sock",
// "vchan://7/web") is dialed as it is, whatever network says;
// otherwise network "tcp", "tcp4" or "tcp6" with "host:port" dials
// tcp://host:port, and "unix" with a path dials that socket. As with
// net.Dialer (TCP_NODELAY), writes are pushed at once: the flow is
// Nodelay's. As with net.Dialer, "tcp4" and "tcp6" dial only the
// endpoints of that family; a host without any fails with an error
// matching ErrNoSuitableAddress.
func (c *Conduit) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var (
		uri    string
		family familyFilter
	)
	switch {
	case strings.Contains(address, "://"):
		uri = address
	case network == "tcp" || network == "tcp4" || network == "tcp6":
		uri = "tcp://" + address
		family = familyFilter(strings.TrimPrefix(network, "tcp"))
	case network == "unix":
		uri = "unix://" + (&url.URL{Path: address}).EscapedPath()
	default:
		return nil, &OpError{Op: "dial", URI: network + ":" + address,
			Err: errorf("network %q is not supported by DialContext", network)}
	}
	c.init()
	f, err := c.dialURI(ctx, uri, family)
	if err != nil {
		return nil, err // not a typed nil inside net.Conn
	}
	return Nodelay(f), nil
}

// dialOne validates an endpoint, with the endpoints it wraps, and dials
// it through its transport.
func (c *Conduit) dialOne(ctx context.Context, ep endpoint.Endpoint) (Flow, error) {
	if err := endpoint.Validate(ep); err != nil {
		return nil, err
	}
	return c.dialValid(ctx, ep)
}

// dialValid dials an endpoint that was validated: the transports of
// wrapping kinds dial their inner endpoints through it, not validated
// again.
func (c *Conduit) dialValid(ctx context.Context, ep endpoint.Endpoint) (Flow, error) {
	t, ok := c.reg.Transport(ep.Kind())
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrNoTransport, ep.Kind())
	}
	conn, err := t.Dial(ctx, ep, DialOptions{
		Keepalive: c.cfg.Keepalive,
		Dial: func(ctx context.Context, inner endpoint.Endpoint) (net.Conn, error) {
			return c.dialValid(ctx, inner)
		},
	})
	if err != nil {
		return nil, err
	}
	return AsFlow(conn), nil
}

func (c *Conduit) logDebug(msg string, args ...any) {
	if c.cfg.Logger != nil {
		c.cfg.Logger.Debug(msg, args...)
	}
}
