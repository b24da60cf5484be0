package dnsstub

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// A Stub is a DNS stub resolver: it asks recursive nameservers, caches
// their answers and shares concurrent queries. It is safe for concurrent
// use. Create it with New; Close it to stop its queries.
type Stub struct {
	servers  []netip.AddrPort
	pools    []*udpPool // UDP sockets, one pool per server
	search   []string   // without a trailing dot
	ndots    int
	timeout  time.Duration
	attempts int
	udpSize  uint16
	maxCNAME int
	cachecfg CacheConfig
	now      func() time.Time
	log      *slog.Logger

	// ctx is the context of every query goroutine; Close cancels it and
	// waits for them through wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.RWMutex
	closed  bool
	cache   map[cacheKey]*entry
	hosts   map[string]*hostEntry // LookupHost answers by name as asked (lower case)
	flights map[cacheKey]*flight

	stats struct {
		queries, dropped, truncated, hits, misses, shared, stale, svcbDropped atomic.Uint64
	}
}

// Stats are a Stub's counters since New.
type Stats struct {
	Queries     uint64 // queries sent to servers (each attempt, UDP or TCP)
	Dropped     uint64 // responses dropped: wrong ID, question or flags, or unparsable
	Truncated   uint64 // truncated UDP answers retried over TCP
	CacheHits   uint64 // lookups answered by the cache
	CacheMisses uint64 // lookups that started a query
	Shared      uint64 // lookups that joined a query already in flight
	Stale       uint64 // stale answers served because every server failed
	// SVCBDropped counts SVCB and HTTPS records dropped: malformed, or
	// with a mandatory key this package does not support (RFC 9460 §8).
	SVCBDropped uint64
}

// Stats returns the Stub's counters.
func (s *Stub) Stats() Stats {
	return Stats{
		Queries:     s.stats.queries.Load(),
		Dropped:     s.stats.dropped.Load(),
		Truncated:   s.stats.truncated.Load(),
		CacheHits:   s.stats.hits.Load(),
		CacheMisses: s.stats.misses.Load(),
		Shared:      s.stats.shared.Load(),
		Stale:       s.stats.stale.Load(),
		SVCBDropped: s.stats.svcbDropped.Load(),
	}
}

// New returns a Stub configured by cfg (nil means the zero Config).
func New(cfg *Config) (*Stub, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	s := &Stub{
		ndots:    cfg.ndots(),
		timeout:  cfg.timeout(),
		attempts: cfg.attempts(),
		udpSize:  cfg.udpSize(),
		maxCNAME: cfg.maxCNAME(),
		cachecfg: cfg.Cache,
		now:      time.Now,
		log:      cfg.Logger,
		cache:    make(map[cacheKey]*entry),
		hosts:    make(map[string]*hostEntry),
		flights:  make(map[cacheKey]*flight),
	}
	if cfg.Clock != nil {
		s.now = cfg.Clock.Now
	}
	for _, ns := range cfg.Nameservers {
		if !ns.Addr().IsValid() {
			return nil, errors.New("dns: invalid nameserver address")
		}
		if ns.Port() == 0 {
			ns = netip.AddrPortFrom(ns.Addr(), 53)
		}
		s.servers = append(s.servers, netip.AddrPortFrom(ns.Addr().Unmap(), ns.Port()))
	}
	if len(s.servers) == 0 {
		s.servers = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}
	}
	for _, d := range cfg.Search {
		d = strings.Trim(d, ".")
		if d == "" {
			continue
		}
		if _, ok := dns.IsDomainName(d); !ok {
			return nil, errors.New("dns: invalid search domain " + d)
		}
		s.search = append(s.search, d)
	}
	for _, ns := range s.servers {
		s.pools = append(s.pools, newUDPPool(s, ns))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Close cancels the queries in flight, closes the UDP sockets, waits for
// every goroutine of the Stub to end, and makes later lookups fail with
// ErrClosed. It is idempotent.
func (s *Stub) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	for _, p := range s.pools {
		p.close()
	}
	s.wg.Wait()
	return nil
}
