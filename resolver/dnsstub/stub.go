package dnsstub

import (
	"context"
	"errors"
	"fmt"
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
		queries, dropped, truncated, hits, misses, shared, stale atomic.Uint64
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
	}
}

type cacheKey struct {
	name  string // lower case, fully qualified
	qtype uint16
}

// entry is a cached answer, positive (addrs or srvs) or negative (err).
type entry struct {
	addrs   []netip.Addr
	srvs    []SRV
	err     error     // ErrNXDomain or ErrNoData
	expires time.Time // fresh until then
	stale   time.Time // may be served stale until then

	// Guarded by Stub.mu.
	cached bool // stored in Stub.cache
	dead   bool // replaced in or evicted from Stub.cache
}

// hostEntry is a cached LookupHostTTL answer for a name as asked: the
// merged addresses of the entries it was built from (every entry the
// search list went through), valid while those are fresh and still in
// the cache. It is immutable but for the entries' dead flags.
type hostEntry struct {
	addrs   []netip.Addr // shared with callers: never modified
	expires time.Time    // the earliest expiry of deps
	deps    []*entry
}

// flight is a query in progress, shared by the lookups waiting for it.
type flight struct {
	done chan struct{}
	e    *entry
	err  *Error
}

// SRV is a service record (RFC 2782).
type SRV struct {
	Target   string // a fully qualified name, "." when the service is unavailable
	Port     uint16
	Priority uint16
	Weight   uint16
	TTL      time.Duration // how long the answer stays valid
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
		now:      cfg.Clock,
		log:      cfg.Logger,
		cache:    make(map[cacheKey]*entry),
		hosts:    make(map[string]*hostEntry),
		flights:  make(map[cacheKey]*flight),
	}
	if s.now == nil {
		s.now = time.Now
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

// LookupHost returns the IPv4 and IPv6 addresses of name (A records
// first, then AAAA), asked in parallel. A name without a trailing dot goes
// through the search list (see Config.Ndots). The error is an *Error.
// The returned slice may be shared with the cache, and with other
// callers: it must not be modified (copy it first, with slices.Clone).
func (s *Stub) LookupHost(ctx context.Context, name string) ([]netip.Addr, error) {
	addrs, _, err := s.LookupHostTTL(ctx, name)
	return addrs, err
}

// LookupHostTTL is LookupHost that also returns how long the answer stays
// valid: the lowest remaining TTL of the A and AAAA answers (30 s for a
// stale answer).
func (s *Stub) LookupHostTTL(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, &Error{Name: name, Type: "A/AAAA", Err: err}
	}
	hostKey := strings.ToLower(name) // no allocation when already lower case
	if addrs, ttl, ok := s.cachedHost(hostKey); ok {
		return addrs, ttl, nil
	}
	if err := checkName(name); err != nil {
		return nil, 0, &Error{Name: name, Type: "A/AAAA", Err: err}
	}
	var failure *Error
	notFound := ErrNoData
	var deps []*entry // the entries the answer depends on; nil after a failure
	cacheable := true
	for i := 0; ; i++ {
		fqdn, ok := s.candidate(name, i)
		if !ok {
			break
		}
		e4, f4, err4 := s.begin(fqdn, dns.TypeA)
		e6, f6, err6 := s.begin(fqdn, dns.TypeAAAA)
		if f4 != nil {
			e4, err4 = wait(ctx, f4)
		}
		if f6 != nil {
			e6, err6 = wait(ctx, f6)
		}
		if err4 != nil && !errors.Is(err4.Err, ErrNotFound) {
			failure = err4
		}
		if err6 != nil && !errors.Is(err6.Err, ErrNotFound) {
			failure = err6
		}
		if e4 == nil || e6 == nil {
			cacheable = false
		} else if cacheable {
			deps = append(deps, e4, e6)
		}
		if failure != nil && (errors.Is(failure.Err, context.Canceled) || errors.Is(failure.Err, context.DeadlineExceeded) || failure.Err == ErrClosed) {
			break
		}
		now := s.now()
		var addrs []netip.Addr
		if e4 != nil && e6 != nil {
			addrs = make([]netip.Addr, 0, len(e4.addrs)+len(e6.addrs))
		}
		ttl := time.Duration(-1)
		for _, e := range [2]*entry{e4, e6} {
			if e == nil {
				continue
			}
			if e.err == ErrNXDomain {
				notFound = ErrNXDomain
			}
			addrs = append(addrs, e.addrs...)
			if t := e.remaining(now); ttl < 0 || t < ttl {
				ttl = t
			}
		}
		if len(addrs) > 0 {
			if cacheable {
				s.storeHost(hostKey, addrs, deps, now)
			}
			return addrs, ttl, nil
		}
	}
	if failure != nil {
		return nil, 0, &Error{Name: name, Type: "A/AAAA", Err: failure.Err, Attempts: failure.Attempts}
	}
	return nil, 0, &Error{Name: name, Type: "A/AAAA", Err: notFound}
}

// LookupSRV returns the SRV records of name (for example
// "_http._tcp.example.com"), in the order received: see RFC 2782 for the
// order to try them in. Each record's TTL is the answer's remaining TTL.
func (s *Stub) LookupSRV(ctx context.Context, name string) ([]SRV, error) {
	if err := checkName(name); err != nil {
		return nil, &Error{Name: name, Type: "SRV", Err: err}
	}
	var failure *Error
	notFound := ErrNoData
	for i := 0; ; i++ {
		fqdn, ok := s.candidate(name, i)
		if !ok {
			break
		}
		e, f, err := s.begin(fqdn, dns.TypeSRV)
		if f != nil {
			e, err = wait(ctx, f)
		}
		if err != nil {
			if errors.Is(err.Err, ErrNotFound) {
				if err.Err == ErrNXDomain {
					notFound = ErrNXDomain
				}
				continue
			}
			failure = err
			if errors.Is(err.Err, context.Canceled) || errors.Is(err.Err, context.DeadlineExceeded) || err.Err == ErrClosed {
				break
			}
			continue
		}
		if e.err != nil {
			if e.err == ErrNXDomain {
				notFound = ErrNXDomain
			}
			continue
		}
		ttl := e.remaining(s.now())
		out := make([]SRV, len(e.srvs))
		for i, r := range e.srvs {
			r.TTL = ttl
			out[i] = r
		}
		return out, nil
	}
	if failure != nil {
		return nil, &Error{Name: name, Type: "SRV", Err: failure.Err, Attempts: failure.Attempts}
	}
	return nil, &Error{Name: name, Type: "SRV", Err: notFound}
}

// cachedHost returns the cached LookupHostTTL answer for key (a name as
// asked, in lower case), if any is fresh. It does not allocate.
func (s *Stub) cachedHost(key string) ([]netip.Addr, time.Duration, bool) {
	s.mu.RLock()
	h := s.hosts[key]
	ok := h != nil && !s.closed
	if ok {
		for _, e := range h.deps {
			if e.dead {
				ok = false
				break
			}
		}
	}
	s.mu.RUnlock()
	if !ok {
		return nil, 0, false
	}
	now := s.now()
	if !now.Before(h.expires) {
		return nil, 0, false
	}
	s.stats.hits.Add(uint64(len(h.deps)))
	return h.addrs, h.expires.Sub(now), true
}

// storeHost caches a LookupHostTTL answer for key, if every entry it
// depends on is in the cache (none is when caching is off).
func (s *Stub) storeHost(key string, addrs []netip.Addr, deps []*entry, now time.Time) {
	h := &hostEntry{addrs: addrs, deps: deps}
	for i, e := range deps {
		if i == 0 || e.expires.Before(h.expires) {
			h.expires = e.expires
		}
	}
	if !h.expires.After(now) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range deps {
		if !e.cached || e.dead {
			return
		}
	}
	if _, ok := s.hosts[key]; !ok && len(s.hosts) >= s.cachecfg.maxEntries() {
		for k, old := range s.hosts {
			if old.stale(now) {
				delete(s.hosts, k)
			}
		}
		for k := range s.hosts {
			if len(s.hosts) < s.cachecfg.maxEntries() {
				break
			}
			delete(s.hosts, k)
		}
	}
	s.hosts[key] = h
}

// stale reports whether h can no longer be used. Stub.mu is held.
func (h *hostEntry) stale(now time.Time) bool {
	if !now.Before(h.expires) {
		return true
	}
	for _, e := range h.deps {
		if e.dead {
			return true
		}
	}
	return false
}

// checkName rejects names that cannot be asked.
func checkName(name string) error {
	if name == "" || name == "." {
		return ErrInvalidName
	}
	if _, ok := dns.IsDomainName(name); !ok || len(strings.TrimSuffix(name, ".")) > 253 {
		return ErrInvalidName
	}
	return nil
}

// ErrInvalidName: the name is not a valid domain name. It matches
// ErrNotFound, as no such name can exist.
var ErrInvalidName error = &notFoundError{"invalid domain name"}

// candidate returns the i-th fully qualified name to try for name: name
// itself when it ends in a dot; otherwise name then the search list
// when it has at least ndots dots, the search list then name if not.
func (s *Stub) candidate(name string, i int) (string, bool) {
	if strings.HasSuffix(name, ".") {
		return name, i == 0
	}
	n := len(s.search)
	if strings.Count(name, ".") >= s.ndots {
		switch {
		case i == 0:
			return name + ".", true
		case i <= n:
			return name + "." + s.search[i-1] + ".", true
		}
		return "", false
	}
	switch {
	case i < n:
		return name + "." + s.search[i] + ".", true
	case i == n:
		return name + ".", true
	}
	return "", false
}

// remaining returns how long e stays fresh at now (0 when expired).
func (e *entry) remaining(now time.Time) time.Duration {
	return max(e.expires.Sub(now), 0)
}

// begin returns the fresh cached entry for (fqdn, qtype), or the flight
// to wait for (starting one if none is in progress).
func (s *Stub) begin(fqdn string, qtype uint16) (*entry, *flight, *Error) {
	key := cacheKey{strings.ToLower(fqdn), qtype}
	now := s.now()
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: ErrClosed}
	}
	if e := s.cache[key]; e != nil && now.Before(e.expires) {
		s.mu.RUnlock()
		s.stats.hits.Add(1)
		return e.result(fqdn, qtype)
	}
	s.mu.RUnlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: ErrClosed}
	}
	if e := s.cache[key]; e != nil && now.Before(e.expires) {
		s.stats.hits.Add(1)
		return e.result(fqdn, qtype)
	}
	if f := s.flights[key]; f != nil {
		s.stats.shared.Add(1)
		return nil, f, nil
	}
	s.stats.misses.Add(1)
	f := &flight{done: make(chan struct{})}
	s.flights[key] = f
	s.wg.Add(1) // under mu, before Close can see closed and Wait
	go s.fly(key, fqdn, qtype, f)
	return nil, f, nil
}

// result returns a cached entry as begin does: a negative entry as its
// error too.
func (e *entry) result(fqdn string, qtype uint16) (*entry, *flight, *Error) {
	if e.err != nil {
		return e, nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: e.err}
	}
	return e, nil, nil
}

// wait waits for a flight, or for ctx.
func wait(ctx context.Context, f *flight) (*entry, *Error) {
	select {
	case <-f.done:
		return f.e, f.err
	case <-ctx.Done():
		return nil, &Error{Err: ctx.Err()}
	}
}

// staleTTL is the TTL of a stale answer, and the time before the servers
// are asked again (RFC 8767 §5 recommends 30 s).
const staleTTL = 30 * time.Second

// fly runs a query for (fqdn, qtype), caches the answer and completes f.
func (s *Stub) fly(key cacheKey, fqdn string, qtype uint16, f *flight) {
	defer s.wg.Done()
	e, err := s.resolve(s.ctx, fqdn, qtype)
	if err != nil && s.ctx.Err() != nil {
		err.Err = ErrClosed
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.store(key, e, now)
		if e.err != nil {
			err = &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: e.err}
		}
	case errors.Is(err.Err, ErrTimeout) || errors.Is(err.Err, ErrRefused):
		if old := s.cache[key]; old != nil && now.Before(old.stale) {
			// RFC 8767: serve stale, and do not ask again for a while.
			s.stats.stale.Add(1)
			fresh := &entry{addrs: old.addrs, srvs: old.srvs, err: old.err, expires: now.Add(staleTTL), stale: old.stale, cached: true}
			old.dead = true
			s.cache[key] = fresh
			e, err = fresh, nil
			if fresh.err != nil {
				err = &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: fresh.err}
			}
		}
	}
	delete(s.flights, key)
	f.e, f.err = e, err
	close(f.done)
}

// store caches e, evicting entries when the cache is full. s.mu is held.
func (s *Stub) store(key cacheKey, e *entry, now time.Time) {
	limit := s.cachecfg.maxEntries()
	if limit == 0 || !e.expires.After(now) && s.cachecfg.staleTTL() == 0 {
		return
	}
	if _, ok := s.cache[key]; !ok && len(s.cache) >= limit {
		for k, old := range s.cache {
			if !now.Before(old.stale) {
				old.dead = true
				delete(s.cache, k)
			}
		}
		for k, old := range s.cache {
			if len(s.cache) < limit {
				break
			}
			old.dead = true
			delete(s.cache, k)
		}
	}
	if old := s.cache[key]; old != nil {
		old.dead = true
	}
	e.cached = true
	s.cache[key] = e
}

// resolve asks the servers for (fqdn, qtype), following CNAME chains
// that the servers did not follow, and returns a positive or negative
// entry, or the error of a failure.
func (s *Stub) resolve(ctx context.Context, fqdn string, qtype uint16) (*entry, *Error) {
	name, hops := fqdn, 0
	ttl := uint32(1<<32 - 1)
	for {
		m, attempts, err := s.ask(ctx, name, qtype)
		if err != nil {
			return nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: err, Attempts: attempts}
		}
		a := extract(m, name, qtype, s.maxCNAME-hops)
		hops += a.hops
		if a.err == ErrCNAMELoop || a.follow && hops >= s.maxCNAME {
			return nil, &Error{Name: fqdn, Type: dns.TypeToString[qtype], Err: ErrCNAMELoop}
		}
		if a.follow {
			ttl = min(ttl, a.ttl)
			name = a.cname
			continue
		}
		now := s.now()
		e := &entry{err: a.err}
		if a.err != nil {
			d := min(secs(a.negTTL), s.cachecfg.negativeTTL())
			e.expires = now.Add(d)
			e.stale = e.expires.Add(s.cachecfg.staleTTL())
			return e, nil
		}
		ttl = min(ttl, a.ttl)
		for _, rr := range a.rrs {
			switch r := rr.(type) {
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(r.A.To4()); ok {
					e.addrs = appendUnique(e.addrs, ip)
				}
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(r.AAAA); ok {
					e.addrs = appendUnique(e.addrs, ip)
				}
			case *dns.SRV:
				e.srvs = append(e.srvs, SRV{Target: r.Target, Port: r.Port, Priority: r.Priority, Weight: r.Weight})
			}
		}
		d := min(max(secs(ttl), s.cachecfg.MinTTL), s.cachecfg.maxTTL())
		e.expires = now.Add(d)
		e.stale = e.expires.Add(s.cachecfg.staleTTL())
		return e, nil
	}
}

// secs converts a TTL to a duration; a TTL with the high bit set is 0
// (RFC 2181 §8).
func secs(ttl uint32) time.Duration {
	if ttl > 1<<31-1 {
		return 0
	}
	return time.Duration(ttl) * time.Second
}

func appendUnique(s []netip.Addr, a netip.Addr) []netip.Addr {
	for _, b := range s {
		if a == b {
			return s
		}
	}
	return append(s, a)
}

// ask sends the query to each server in turn, Attempts times through the
// list, until one answers NOERROR or NXDOMAIN. It returns that response,
// or the reason for failing (ErrTimeout when every attempt timed out,
// else ErrRefused, or ctx's error) with every attempt's error.
func (s *Stub) ask(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, []error, error) {
	var errs []error
	for range s.attempts {
		for i, ns := range s.servers {
			if err := ctx.Err(); err != nil {
				return nil, errs, err
			}
			q := newQuery(fqdn, qtype, s.udpSize)
			s.stats.queries.Add(1)
			m, err := s.exchange(ctx, i, q, s.timeout)
			if err != nil {
				if ctx.Err() != nil {
					return nil, errs, ctx.Err()
				}
				cls := ErrRefused
				if errors.Is(err, ErrTimeout) {
					cls = ErrTimeout
				}
				if !errors.Is(err, cls) {
					err = fmt.Errorf("%w: %w", cls, err)
				}
				errs = append(errs, &ServerError{Server: ns.String(), Rcode: -1, Err: err})
				continue
			}
			switch m.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return m, errs, nil
			}
			if s.log != nil {
				s.log.Debug("dns: server failed", "server", ns, "name", fqdn, "rcode", dns.RcodeToString[m.Rcode])
			}
			errs = append(errs, &ServerError{Server: ns.String(), Rcode: m.Rcode, Err: ErrRefused})
		}
	}
	reason := ErrTimeout
	for _, e := range errs {
		if !errors.Is(e, ErrTimeout) {
			reason = ErrRefused
		}
	}
	return nil, errs, reason
}
