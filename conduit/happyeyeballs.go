package conduit

import (
	"context"
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/conduit-go/conduit/endpoint"
)

// dialEndpoints races the endpoints with Happy Eyeballs v2 (RFC 8305 §5):
// the endpoints are interleaved by address family, the first attempt
// starts at once and each next one when the previous attempt fails or
// after the fallback delay, whichever comes first. The first flow to
// connect wins; the other attempts are cancelled and any flow they
// still produce is closed by the attempt itself.
func (c *Conduit) dialEndpoints(ctx context.Context, uri string, eps []endpoint.Endpoint) (Flow, error) {
	eps = interleaveFamilies(eps)
	trace := ContextTrace(ctx)
	attempt := func(ctx context.Context, ep endpoint.Endpoint) (Flow, error) {
		trace.connectStart(ep)
		f, err := c.dialOne(ctx, ep)
		trace.connectDone(ep, err)
		if err != nil {
			c.logDebug("dial attempt failed", "uri", uri, "endpoint", ep.String(), "err", err)
			return nil, &OpError{Op: "dial", URI: uri, Endpoint: ep, Err: err}
		}
		return f, nil
	}
	if len(eps) == 1 {
		return attempt(ctx, eps[0])
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		flow Flow
		err  error
	}
	results := make(chan result)
	returned := make(chan struct{})
	defer close(returned)

	next, inflight := 0, 0
	start := func() {
		ep := eps[next]
		next++
		inflight++
		go func() {
			f, err := attempt(ctx, ep)
			select {
			case results <- result{f, err}:
			case <-returned:
				if f != nil {
					f.Close()
				}
			}
		}()
	}

	delay := c.cfg.FallbackDelay
	if delay == 0 {
		delay = DefaultFallbackDelay
	}
	var errs []error
	start()
	for {
		var (
			timerC <-chan struct{}
			stop   = func() bool { return false }
		)
		if next < len(eps) && delay > 0 {
			timerC, stop = after(c.clock, delay)
		}
		select {
		case r := <-results:
			stop()
			inflight--
			if r.err == nil {
				return r.flow, nil
			}
			errs = append(errs, r.err)
			if next < len(eps) {
				start()
			} else if inflight == 0 {
				return nil, combineDialErrors(uri, errs)
			}
		case <-timerC:
			start()
		case <-ctx.Done():
			stop()
			errs = append(errs, &OpError{Op: "dial", URI: uri, Err: ctx.Err()})
			return nil, combineDialErrors(uri, errs)
		}
	}
}

// combineDialErrors keeps every attempt's error.
func combineDialErrors(uri string, errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return &OpError{Op: "dial", URI: uri, Err: &multierror.Error{
		Errors: errs,
		ErrorFormat: func(es []error) string {
			parts := make([]string, len(es))
			for i, e := range es {
				parts[i] = strings.TrimPrefix(e.Error(), "conduit: ")
			}
			return "all " + strconv.Itoa(len(es)) + " attempts failed: " + strings.Join(parts, "; ")
		},
	}}
}

// interleaveFamilies reorders endpoints so that address families
// alternate (RFC 8305 §4), keeping the order within each family and
// starting with the family of the first endpoint.
func interleaveFamilies(eps []endpoint.Endpoint) []endpoint.Endpoint {
	if len(eps) < 2 {
		return eps
	}
	var order []string
	groups := map[string][]endpoint.Endpoint{}
	for _, ep := range eps {
		f := endpoint.Family(ep)
		if _, ok := groups[f]; !ok {
			order = append(order, f)
		}
		groups[f] = append(groups[f], ep)
	}
	if len(order) == 1 {
		return eps
	}
	out := make([]endpoint.Endpoint, 0, len(eps))
	for len(out) < len(eps) {
		for _, f := range order {
			if g := groups[f]; len(g) > 0 {
				out = append(out, g[0])
				groups[f] = g[1:]
			}
		}
	}
	return out
}
