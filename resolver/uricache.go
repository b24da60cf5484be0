package resolver

import (
	"sync"
	"time"

	"github.com/conduit-go/conduit/endpoint"
)

// uriCacheSize bounds a URIResolver's cache of answers.
const uriCacheSize = 4096

// A uriCache holds the answers of Resolve and ResolveListen by URI, so
// that a repeated resolution neither parses the URI nor builds endpoints
// again. An answer from DNS is kept until the lowest TTL of the records
// it comes from; one that never changes (an IP literal, a Unix path, a
// static host) until evicted. Answers without a TTL (Config.LookupHost,
// the system resolver) and SRV answers (whose order is random on each
// resolution, RFC 2782) are not kept. The cached slices are shared with
// callers, who must not modify them.
type uriCache struct {
	mu sync.RWMutex
	m  map[uriKey]uriEntry
}

type uriKey struct {
	uri    string
	listen bool
}

type uriEntry struct {
	eps     []endpoint.Endpoint
	groups  []int     // each endpoint's Batch.Group; nil: all 0
	expires time.Time // zero: never
}

// get returns the cached answer for (uri, listen), if fresh at now().
// It does not allocate.
func (c *uriCache) get(uri string, listen bool, now func() time.Time) ([]endpoint.Endpoint, bool) {
	e, ok := c.entry(uri, listen, now)
	return e.eps, ok
}

// entry is get returning the whole entry (with the endpoints' groups).
func (c *uriCache) entry(uri string, listen bool, now func() time.Time) (uriEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[uriKey{uri, listen}]
	c.mu.RUnlock()
	if !ok || !e.expires.IsZero() && !now().Before(e.expires) {
		return uriEntry{}, false
	}
	return e, true
}

// put caches eps (with their groups, nil for all 0) for (uri, listen)
// until expires (zero: never).
func (c *uriCache) put(uri string, listen bool, eps []endpoint.Endpoint, groups []int, expires time.Time, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[uriKey]uriEntry)
	}
	k := uriKey{uri, listen}
	if _, ok := c.m[k]; !ok && len(c.m) >= uriCacheSize {
		for k, e := range c.m {
			if !e.expires.IsZero() && !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < uriCacheSize {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[k] = uriEntry{eps: eps, groups: groups, expires: expires}
}
