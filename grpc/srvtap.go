package conduitgrpc

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// srvTap sits in a resolver's Config.LookupSRV and remembers the SRV
// records of each name, so that the endpoints a Watch reports can be
// given their records' priorities and weights: resolver.Update does not
// carry them (yet).
//
// It keeps the last two answers of each name: a Watch may look the name
// up again before the Update of the previous lookup has been read, and
// the endpoints of that Update are then found in the older answer.
type srvTap struct {
	lookup  func(ctx context.Context, name string) ([]dnsstub.SRV, error)
	realTTL bool // lookup gives DNS TTLs, where 0 means "do not cache"

	mu      sync.Mutex
	answers map[string][2][]dnsstub.SRV // newest first
}

// LookupSRV is the resolver's Config.LookupSRV.
func (t *srvTap) LookupSRV(ctx context.Context, name string) ([]dnsstub.SRV, error) {
	recs, err := t.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	if t.realTTL {
		// The resolver takes a zero TTL from a LookupSRV hook for "no TTL"
		// (it refreshes after RefreshInterval, 30 s), but from its own DNS
		// stub for "do not cache" (refreshed every MinRefreshInterval, as
		// Consul needs). These records come from a DNS stub: keep the
		// second meaning with the smallest TTL the resolver reads as one.
		fixed := make([]dnsstub.SRV, len(recs))
		for i, r := range recs {
			if r.TTL == 0 {
				r.TTL = time.Nanosecond
			}
			fixed[i] = r
		}
		recs = fixed
	}
	key := srvKeyName(name)
	t.mu.Lock()
	if t.answers == nil {
		t.answers = make(map[string][2][]dnsstub.SRV)
	}
	t.answers[key] = [2][]dnsstub.SRV{recs, t.answers[key][0]}
	t.mu.Unlock()
	return recs, nil
}

// find returns the record of name that has the given target and port.
func (t *srvTap) find(name, target string, port uint16) (SRV, bool) {
	t.mu.Lock()
	answers := t.answers[srvKeyName(name)]
	t.mu.Unlock()
	for _, recs := range answers {
		for _, r := range recs {
			if r.Port == port && srvKeyName(r.Target) == target {
				return SRV{Target: target, Port: port, Priority: r.Priority, Weight: r.Weight}, true
			}
		}
	}
	return SRV{}, false
}

// srvKeyName normalises a DNS name as the resolver does for SRV targets:
// ASCII lower case, no trailing dot.
func srvKeyName(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}
