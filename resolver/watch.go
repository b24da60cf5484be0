package resolver

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/endpoint"
)

// An Update is a change seen by Watch: the current endpoints, and the
// error of the last resolution (nil when it succeeded). When resolution
// fails, Endpoints is the last good set (nil if there was none).
type Update struct {
	Endpoints []endpoint.Endpoint
	Err       error
}

// Watch resolves uri now and again when its answer expires, and sends an
// Update when the set of endpoints changes or resolution starts or stops
// failing. The first Update is sent at once.
//
// The answer is refreshed after the shortest TTL of the DNS records used
// (Config.RefreshInterval when the lookup gives none), with ±10% jitter,
// and never sooner than Config.MinRefreshInterval (1 s), with 0 to 10%
// of jitter above it. A TTL of 0 means "do not cache" (RFC 1035; Consul
// answers so by default): such an answer is refreshed every
// MinRefreshInterval. After a failure, the refresh backs off
// exponentially from MinRefreshInterval to 2 min. A URI that needs no
// lookup (an IP address, a Unix socket, a static host) gets one Update.
//
// The channel is closed when ctx ends or the resolver is closed; the
// goroutine behind it is the resolver's and ends then. Receive from the
// channel until it is closed, or cancel ctx. Watch fails at once on a
// malformed URI, an unknown scheme or a closed resolver.
func (r *URIResolver) Watch(ctx context.Context, uri string) (<-chan Update, error) {
	if r.closed.Load() {
		return nil, &URIError{URI: uri, Err: errClosed}
	}
	if _, err := parse(uri, r.knownService); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.ctx, cancel)
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		stop()
		cancel()
		return nil, &URIError{URI: uri, Err: errClosed}
	}
	r.wg.Add(1)
	r.mu.Unlock()
	ch := make(chan Update, 1)
	go func() {
		defer r.wg.Done()
		defer close(ch)
		defer cancel()
		defer stop()
		r.watch(wctx, uri, ch)
	}()
	return ch, nil
}

const (
	defaultMinRefresh = time.Second // Config.MinRefreshInterval
	maxBackoff        = 2 * time.Minute
)

func (r *URIResolver) watch(ctx context.Context, uri string, ch chan<- Update) {
	var (
		last    []endpoint.Endpoint
		lastKey string
		failing bool
		first   = true
		backoff time.Duration
	)
	send := func(u Update) bool {
		select {
		case ch <- u:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		a, err := r.resolveFresh(ctx, uri, false)
		eps, ttl := a.eps, a.ttl
		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return
		}
		var delay time.Duration
		if err != nil {
			if (first || !failing) && !send(Update{Endpoints: last, Err: err}) {
				return
			}
			failing = true
			backoff = min(max(2*backoff, r.minRefresh), maxBackoff)
			delay = r.jitter(backoff)
		} else {
			key := endpointSetKey(eps)
			if (first || failing || key != lastKey) && !send(Update{Endpoints: eps}) {
				return
			}
			last, lastKey, failing, backoff = eps, key, false, 0
			switch ttl {
			case ttlForever:
				<-ctx.Done() // never changes
				return
			case ttlUnknown:
				ttl = r.refresh
			}
			delay = r.jitter(ttl) // TTL 0: the minimum interval
		}
		first = false
		fired, t := clock.After(r.clock, delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-fired:
		}
	}
}

// jitter returns d ±10%, or, when that is below the minimum interval,
// the minimum plus 0 to 10%: refreshes at the minimum (TTL 0) are spread
// too, never sooner.
func (r *URIResolver) jitter(d time.Duration) time.Duration {
	if j := time.Duration(int64(d) / 1000 * int64(900+r.intN(201))); j >= r.minRefresh {
		return j
	}
	return time.Duration(int64(r.minRefresh) / 1000 * int64(1000+r.intN(101)))
}

// endpointSetKey identifies a set of endpoints whatever their order (the
// SRV order is random).
func endpointSetKey(eps []endpoint.Endpoint) string {
	s := make([]string, len(eps))
	for i, e := range eps {
		s[i] = e.String()
	}
	slices.Sort(s)
	return strings.Join(s, "\n")
}
