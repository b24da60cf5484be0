package dnsstub

import (
	"net/netip"
	"time"
)

type cacheKey struct {
	name  string // lower case, fully qualified
	qtype uint16
}

// entry is a cached answer, positive (addrs or srvs) or negative (err).
type entry struct {
	addrs   []netip.Addr
	srvs    []SRV
	svcbs   []SVCB
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
	if _, ok := s.hosts[key]; !ok {
		makeRoom(s.hosts, s.cachecfg.maxEntries(), func(h *hostEntry) bool { return h.stale(now) }, nil)
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

// remaining returns how long e stays fresh at now (0 when expired).
func (e *entry) remaining(now time.Time) time.Duration {
	return max(e.expires.Sub(now), 0)
}

// staleTTL is the TTL of a stale answer, and the time before the servers
// are asked again (RFC 8767 §5 recommends 30 s).
const staleTTL = 30 * time.Second

// store caches e, evicting entries when the cache is full. s.mu is held.
func (s *Stub) store(key cacheKey, e *entry, now time.Time) {
	limit := s.cachecfg.maxEntries()
	if limit == 0 || !e.expires.After(now) && s.cachecfg.staleTTL() == 0 {
		return
	}
	if _, ok := s.cache[key]; !ok {
		makeRoom(s.cache, limit, func(e *entry) bool { return !now.Before(e.stale) }, func(e *entry) { e.dead = true })
	}
	if old := s.cache[key]; old != nil {
		old.dead = true
	}
	e.cached = true
	s.cache[key] = e
}

// makeRoom makes room for one more entry in a cache map of at most limit
// entries: when it is full, it deletes every entry that useless reports,
// then arbitrary ones until there is room, calling drop (if not nil) on
// each. Stub.mu is held.
func makeRoom[K comparable, V any](m map[K]V, limit int, useless func(V) bool, drop func(V)) {
	if len(m) < limit {
		return
	}
	for k, v := range m {
		if useless(v) {
			if drop != nil {
				drop(v)
			}
			delete(m, k)
		}
	}
	for k, v := range m {
		if len(m) < limit {
			break
		}
		if drop != nil {
			drop(v)
		}
		delete(m, k)
	}
}
