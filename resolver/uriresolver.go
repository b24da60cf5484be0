package resolver

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/internal/netaddr"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// A URIResolver resolves the URIs of docs/uris.md to endpoints. It is safe
// for concurrent use. Create it with New and Close it when done.
type URIResolver struct {
	hosts     map[string][]netip.Addr // Config.Hosts, normalised
	fileHosts map[string][]netip.Addr // the hosts file
	services  map[string]Service
	lookup    func(ctx context.Context, host string) ([]netip.Addr, time.Duration, error)
	lookupSRV func(ctx context.Context, name string) ([]dnsstub.SRV, error)
	// lookupFamilies is the DNS stub's LookupHostFamilies when the stub
	// looks up host names (nil otherwise: lookup answers at once).
	lookupFamilies func(ctx context.Context, host string, send func(dnsstub.FamilyAnswer)) (time.Duration, error)
	// lookupSVCB is Config.LookupSVCB or the stub's; nil: no SVCB.
	lookupSVCB func(ctx context.Context, name string, qtype uint16) ([]dnsstub.SVCB, error)
	stub       *dnsstub.Stub // nil when neither lookup uses it
	preferIPv4 bool
	rewrites   rewriteRules
	randMu     sync.Mutex
	rand       *rand.Rand    // nil: the global source
	clock      clock.Clock   // Config.Clock or the real one
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
		svcbAliasBroken                    atomic.Uint64
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
		clock:      cfg.Clock,
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
	if r.clock == nil {
		r.clock = clock.Real()
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
	r.now = r.clock.Now
	// Sorted, so that "Host" and "host" merge the same way every time.
	for _, name := range slices.Sorted(maps.Keys(cfg.Hosts)) {
		k := hostsKey(name)
		r.hosts[k] = netaddr.AppendUnique(r.hosts[k], cfg.Hosts[name]...)
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

// setLookups sets r.lookup and r.lookupSRV from cfg, creating the DNS
// stub when one of them needs it.
func (r *URIResolver) setLookups(cfg *Config) error {
	if cfg.LookupHost == nil || cfg.LookupSRV == nil {
		dnsCfg := cfg.DNS
		if dnsCfg == nil {
			dnsCfg, _ = dnsstub.ReadResolvConf(DefaultResolvConf) // nil when unreadable
		}
		if dnsCfg != nil && dnsCfg.Clock == nil && cfg.Clock != nil {
			c := *dnsCfg // the stub's clock is the resolver's
			c.Clock = cfg.Clock
			dnsCfg = &c
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
		r.lookupFamilies = r.stub.LookupHostFamilies
		r.cacheDNS = cfg.DNS == nil || cfg.DNS.Cache.MaxEntries >= 0
		if cfg.DNS != nil && cfg.DNS.Clock != nil {
			r.now = cfg.DNS.Clock.Now
		}
	default:
		r.lookup = func(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
			addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			return addrs, ttlUnknown, err
		}
	}
	switch {
	case cfg.LookupSVCB != nil:
		r.lookupSVCB = cfg.LookupSVCB
	case cfg.LookupHost == nil && r.stub != nil:
		r.lookupSVCB = r.stub.LookupSVCB
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

// errClosed is the error of a closed resolver.
var errClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string        { return "resolver is closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }
