package conduitgrpc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	gresolver "google.golang.org/grpc/resolver"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/conduit"
	cresolver "github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// DefaultScheme is the scheme of the gRPC targets a Builder resolves, as
// in "conduit:///https+srv://api.example.com".
const DefaultScheme = "conduit"

// DefaultResolveNowInterval is the shortest time between two resolutions
// that ResolveNow asks for (see Options.ResolveNowInterval).
const DefaultResolveNowInterval = 5 * time.Second

// A Watcher streams the endpoints of a URI as they change.
// *resolver.URIResolver is one.
type Watcher interface {
	Watch(ctx context.Context, uri string) (<-chan cresolver.Update, error)
}

// TLSMode says which side runs TLS for the TLS endpoints of a URI
// (tls://, https+srv://, tls+unix://, …).
type TLSMode int

const (
	// TLSByGRPC, the default, hands gRPC the raw flow under each TLS
	// endpoint (TCP, Unix socket, vchan) with the endpoint's server name
	// in resolver.Address.ServerName, and leaves the handshake to the
	// channel's transport credentials (credentials.NewTLS): gRPC offers
	// ALPN h2, verifies the certificate against that name, and knows the
	// connection is secure (per-RPC credentials, peer.AuthInfo, channelz).
	TLSByGRPC TLSMode = iota
	// TLSByConduit dials TLS endpoints through the Conduit's TLS
	// transport, with its configuration (conduit.Config.TLS: roots,
	// client certificates per server name, SPKI pins), which must offer
	// ALPN "h2" (NextProtos). Use it with Credentials(), which checks
	// that the flow is TLS with h2 to the expected name and tells gRPC
	// it is secure.
	TLSByConduit
)

// Options configures a Builder. The zero value (and nil) works: scheme
// "conduit", a resolver of the system's resolv.conf, hosts and services
// files, and a Conduit dialing through it.
type Options struct {
	// Scheme is the scheme of the targets; empty means DefaultScheme.
	// It must be lower case.
	Scheme string

	// Resolver is the resolver the Builder watches URIs with. Nil means
	// one the Builder creates from ResolverConfig and closes in Close;
	// only that one gives endpoints their SRV priorities and weights
	// (SRVOf), as it sees the SRV records themselves.
	Resolver Watcher

	// ResolverConfig configures the resolver the Builder creates when
	// Resolver is nil; nil means the zero Config. The Builder copies it.
	ResolverConfig *cresolver.Config

	// Conduit dials the addresses (Dial, DialOptions). Nil means
	// conduit.New with the Builder's resolver (Resolver, when it is also
	// a resolver.Resolver).
	Conduit *conduit.Conduit

	// TLS says who runs the TLS handshakes of TLS endpoints; the zero
	// value is TLSByGRPC.
	TLS TLSMode

	// ResolveNowInterval is the shortest time between two resolutions
	// started by ResolveNow, which gRPC calls whenever a connection
	// fails: a ResolveNow resolves at once, and those within the
	// interval after it are merged into one at its end. Refreshes driven
	// by TTLs (Watch) do not wait for it. Zero means
	// DefaultResolveNowInterval.
	ResolveNowInterval time.Duration

	// Clock times the ResolveNow rate limit; nil means clock.Real().
	// Tests pass a clock.Manual.
	Clock clock.Clock

	// Logger receives debug records of resolution updates and errors;
	// nil means none.
	Logger *slog.Logger
}

// A Builder is a gRPC resolver.Builder for conduit URIs: the target
// "conduit:///URI" resolves URI with conduit's resolver and follows its
// changes (Watch). Its Dial method is the matching context dialer. Pass
// both to grpc.NewClient with DialOptions; there is no global
// registration.
//
// A Builder is safe for concurrent use. Close it when its channels are
// closed.
type Builder struct {
	scheme   string
	watcher  Watcher
	conduit  *conduit.Conduit
	tap      *srvTap // nil unless the Builder made the resolver
	tlsMode  TLSMode
	interval time.Duration
	clock    clock.Clock
	log      *slog.Logger
	closers  []func() error

	closeOnce sync.Once
}

var (
	_ gresolver.Builder            = (*Builder)(nil)
	_ gresolver.AuthorityOverrider = (*Builder)(nil)
)

// NewBuilder returns a Builder configured by opts (nil means the zero
// Options). It fails when the resolver it would create cannot be (an
// invalid ResolverConfig).
func NewBuilder(opts *Options) (*Builder, error) {
	if opts == nil {
		opts = &Options{}
	}
	b := &Builder{
		scheme:   opts.Scheme,
		watcher:  opts.Resolver,
		conduit:  opts.Conduit,
		tlsMode:  opts.TLS,
		interval: opts.ResolveNowInterval,
		clock:    opts.Clock,
		log:      opts.Logger,
	}
	if b.scheme == "" {
		b.scheme = DefaultScheme
	}
	if b.interval <= 0 {
		b.interval = DefaultResolveNowInterval
	}
	if b.clock == nil {
		b.clock = clock.Real()
	}
	if b.watcher == nil {
		r, tap, closeStub, err := newTappedResolver(opts.ResolverConfig)
		if err != nil {
			return nil, err
		}
		b.watcher, b.tap = r, tap
		b.closers = append(b.closers, r.Close, closeStub)
	}
	if b.conduit == nil {
		var cfg conduit.Config
		if r, ok := b.watcher.(cresolver.Resolver); ok {
			cfg.Resolver = r
		}
		b.conduit = conduit.New(&cfg)
		b.closers = append(b.closers, b.conduit.Close)
	}
	return b, nil
}

// newTappedResolver creates a URIResolver from cfg whose SRV lookups go
// through a srvTap, over cfg.LookupSRV or a DNS stub of its own (closed
// by the returned function).
func newTappedResolver(cfg *cresolver.Config) (*cresolver.URIResolver, *srvTap, func() error, error) {
	var c cresolver.Config
	if cfg != nil {
		c = *cfg
	}
	tap := &srvTap{lookup: c.LookupSRV}
	closeStub := func() error { return nil }
	if tap.lookup == nil {
		dnsCfg := c.DNS
		if dnsCfg == nil {
			dnsCfg, _ = dnsstub.ReadResolvConf(cresolver.DefaultResolvConf) // nil when unreadable
		}
		if dnsCfg != nil {
			if dnsCfg.Clock == nil && c.Clock != nil {
				// As the resolver's own stub: its clock unless DNS.Clock.
				dnsCfg = dnsCfg.Clone()
				dnsCfg.Clock = c.Clock
			}
			stub, err := dnsstub.New(dnsCfg)
			if err != nil {
				return nil, nil, nil, errors.New("conduitgrpc: " + err.Error())
			}
			tap.lookup, tap.realTTL = stub.LookupSRV, true
			closeStub = func() error { stub.Close(); return nil }
		} else {
			tap.lookup = systemLookupSRV
		}
	}
	c.LookupSRV = tap.LookupSRV
	r, err := cresolver.New(&c)
	if err != nil {
		closeStub()
		return nil, nil, nil, err
	}
	return r, tap, closeStub, nil
}

// systemLookupSRV looks SRV records up through net.DefaultResolver (no
// TTLs), as the resolver does without resolv.conf.
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

// Scheme returns the scheme of the targets the Builder resolves.
func (b *Builder) Scheme() string { return b.scheme }

// OverrideAuthority returns the :authority of a channel to target: the
// logical name of its conduit URI (see LogicalNameOf).
func (b *Builder) OverrideAuthority(t gresolver.Target) string { return authority(t) }

// Build starts resolving target for a channel: it watches the conduit
// URI and pushes every change to cc. It fails at once on a target
// without a valid conduit URI, an unknown scheme or a closed resolver.
func (b *Builder) Build(t gresolver.Target, cc gresolver.ClientConn, _ gresolver.BuildOptions) (gresolver.Resolver, error) {
	uri, err := targetURI(t)
	if err != nil {
		return nil, err
	}
	name, srvName, err := uriNames(uri)
	if err != nil {
		return nil, err
	}
	return startResolver(b, uri, name, srvName, cc)
}

// Dial dials a gRPC address through the Builder's Conduit: a conduit
// URI ("unix:///run/app.sock", "vchan://7/grpc", "tls://…") as it is, a
// "host:port" as tcp://host:port. It is the dialer of DialOptions.
func (b *Builder) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return dial(ctx, b.conduit, addr)
}

// DialOptions returns the options that make a channel use the Builder:
// its resolver (grpc.WithResolvers) and its dialer
// (grpc.WithContextDialer). Add transport credentials and, for SRV
// semantics, grpc.WithDefaultServiceConfig(ServiceConfig).
func (b *Builder) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithResolvers(b), grpc.WithContextDialer(b.Dial)}
}

// Close closes what NewBuilder created (the resolver, its DNS stub, the
// Conduit): the resolvers of channels still open report an error and
// keep their last endpoints. Close is idempotent.
func (b *Builder) Close() error {
	var errs []error
	b.closeOnce.Do(func() {
		for _, c := range b.closers {
			errs = append(errs, c())
		}
	})
	return errors.Join(errs...)
}

func (b *Builder) debug(msg string, args ...any) {
	if b.log != nil {
		b.log.Debug(msg, args...)
	}
}
