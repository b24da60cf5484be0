package resolver

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"time"
)

// An Update is a change seen by Watch: the current endpoints, and the
// error of the last resolution (nil when it succeeded). When resolution
// fails, Endpoints is the last good set (nil if there was none).
type Update struct {
	Endpoints []Endpoint
	Err       error
}

// Watch resolves uri now and again when its answer expires, and sends an
// Update when the set of endpoints changes or resolution starts or stops
// failing. The first Update is sent at once.
//
// The answer is refreshed after the shortest TTL of the DNS records used
// (Config.RefreshInterval when the lookup gives none), with ±10% jitter
// and at least 1 s apart; after a failure, with exponential backoff from
// 1 s to 2 min. A URI that needs no lookup (an IP address, a Unix
// socket, a static host) gets one Update.
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
	minRefresh = time.Second
	maxBackoff = 2 * time.Minute
)

func (r *URIResolver) watch(ctx context.Context, uri string, ch chan<- Update) {
	var (
		last    []Endpoint
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
		eps, ttl, err := r.resolveTTL(ctx, uri, false)
		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return
		}
		var delay time.Duration
		if err != nil {
			if (first || !failing) && !send(Update{Endpoints: last, Err: err}) {
				return
			}
			failing = true
			backoff = min(max(2*backoff, minRefresh), maxBackoff)
			delay = r.jitter(backoff)
		} else {
			key := endpointSetKey(eps)
			if (first || failing || key != lastKey) && !send(Update{Endpoints: eps}) {
				return
			}
			last, lastKey, failing, backoff = eps, key, false, 0
			if ttl < 0 {
				<-ctx.Done() // never changes
				return
			}
			if ttl == 0 {
				ttl = r.refresh
			}
			delay = r.jitter(ttl)
		}
		first = false
		select {
		case <-ctx.Done():
			return
		case <-r.after(delay):
		}
	}
}

// jitter returns d ±10%, at least minRefresh.
func (r *URIResolver) jitter(d time.Duration) time.Duration {
	j := time.Duration(int64(d) / 1000 * int64(900+r.intN(201)))
	return max(j, minRefresh)
}

// endpointSetKey identifies a set of endpoints whatever their order (the
// SRV order is random).
func endpointSetKey(eps []Endpoint) string {
	s := make([]string, len(eps))
	for i, e := range eps {
		s[i] = e.String()
	}
	slices.Sort(s)
	return strings.Join(s, "\n")
}
