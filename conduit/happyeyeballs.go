package conduit

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/addrselect"
	"github.com/conduit-go/conduit/resolver"
)

// DefaultResolutionDelay is the Happy Eyeballs resolution delay of RFC
// 8305 §3 (Config.ResolutionDelay): how long a dial whose first answer
// holds only IPv4 endpoints waits for the IPv6 ones.
const DefaultResolutionDelay = 50 * time.Millisecond

// dialURI resolves uri and races its endpoints. When the resolver
// streams (resolver.Streamer) and uri is not of a custom scheme of the
// registry, the race runs while the resolution does; otherwise it starts
// once the resolution is complete.
func (c *Conduit) dialURI(ctx context.Context, uri string, family familyFilter) (Flow, error) {
	if st, ok := c.streamer(uri); ok {
		return c.race(ctx, uri, family, nil, st)
	}
	trace := ContextTrace(ctx)
	trace.resolveStart(uri)
	eps, err := c.resolve(ctx, uri, false)
	trace.resolveDone(uri, eps, err)
	if err != nil {
		if oe, ok := err.(*OpError); ok {
			oe.Op = "dial"
		}
		return nil, err
	}
	return c.race(ctx, uri, family, eps, nil)
}

// streamer returns the resolver as a Streamer, if it is one, uri is its
// to resolve (not of a custom scheme) and has something to look up.
func (c *Conduit) streamer(uri string) (resolver.Streamer, bool) {
	st, ok := c.res.(resolver.Streamer)
	if !ok {
		return nil, false
	}
	scheme, rest, found := strings.Cut(uri, "://")
	if !found {
		return st, true // the resolver says what is wrong
	}
	if _, custom := c.reg.Scheme(strings.ToLower(scheme)); custom {
		return nil, false
	}
	if !needsLookup(rest) {
		return nil, false
	}
	return st, true
}

// needsLookup reports whether the part of a URI after "://" names a
// host to look up: not an IP address, nor empty (a Unix path). The
// others resolve at once, so a streamed resolution would only cost its
// goroutine (which is as much as a loopback connect).
func needsLookup(rest string) bool {
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	host := rest
	if h, _, err := net.SplitHostPort(rest); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if host == "" {
		return false
	}
	_, err := netip.ParseAddr(host)
	return err != nil
}

// heResult is the outcome of one attempt.
type heResult struct {
	ep   endpoint.Endpoint
	flow Flow
	err  error
}

// heDial is the state of one race, owned by the goroutine of Dial: the
// endpoints waiting (heOrder), the attempts in flight, the timers.
type heDial struct {
	c      *Conduit
	ctx    context.Context // the attempts', cancelled when the race ends
	uri    string
	family familyFilter
	trace  *Trace
	order  heOrder

	arrived  []endpoint.Endpoint // every endpoint the resolution gave
	seen     map[string]bool     // endpoints pending or started, by String
	filtered int                 // endpoints not of family
	errs     []error             // attempts' errors, skipped endpoints' causes
	resErr   error               // the resolution's error

	// open is set when the race may start: at once for a complete
	// resolution; for a streamed one when an answer with other than
	// IPv4 endpoints arrives, the resolution completes, or the
	// resolution delay (gate) has passed since an IPv4 answer.
	open     bool
	gate     <-chan struct{}
	gateStop func() bool

	delay     time.Duration // the attempt delay; negative: one at a time
	inflight  int
	started   int
	lastStart time.Time
	due       bool // an attempt failed, or the attempt delay passed
	next      <-chan struct{}
	nextStop  func() bool

	results  chan heResult
	returned chan struct{} // closed when the race returns
}

// race dials the endpoints of a URI with Happy Eyeballs v2 (RFC 8305):
// eps when the resolution is complete, else those st streams. The first
// attempt starts when the race opens (see heDial.open), each next one
// when an attempt fails or the attempt delay has passed since the last
// one started, whichever comes first; the order is heOrder's, and
// endpoints that arrive later are inserted into it. The first flow to
// connect wins; the other attempts are cancelled and any flow they still
// produce is closed by the attempt itself. When race returns, the
// streamed resolution has been cancelled and has returned.
func (c *Conduit) race(ctx context.Context, uri string, family familyFilter, eps []endpoint.Endpoint, st resolver.Streamer) (Flow, error) {
	if st == nil && len(eps) == 1 && eps[0] != nil && family.allows(eps[0]) && c.cannotDial(eps[0]) == nil {
		// Nothing to race, order or remember (one endpoint): dial it in
		// the caller's goroutine and context, without the race's state.
		return c.dialSingle(ctx, uri, eps[0])
	}
	d := &heDial{
		c: c, ctx: ctx, uri: uri, family: family, trace: ContextTrace(ctx),
		seen:     map[string]bool{},
		delay:    c.cfg.FallbackDelay,
		results:  make(chan heResult),
		returned: make(chan struct{}),
	}
	if d.delay == 0 {
		d.delay = DefaultFallbackDelay
	}
	d.order.source = c.cfg.SourceAddr
	if d.order.source == nil {
		d.order.source = addrselect.Source
	}
	if ttl := c.familyMemoryTTL(); ttl > 0 {
		d.order.remembered = func(host string) string { return c.fam.get(host, c.clock.Now(), ttl) }
	}
	if st == nil {
		d.open = true // the resolution is complete
		d.add(resolver.Batch{Endpoints: eps})
		if len(d.order.groups) == 1 && len(d.order.groups[0].pending) == 1 {
			// No race: the caller's context as it is (one that cannot
			// be cancelled spares net's connect its watching goroutine).
			return d.dialAlone(d.order.next())
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.ctx = ctx
	defer close(d.returned)
	defer d.stopTimers()

	var (
		batches  <-chan resolver.Batch
		resolved <-chan error
	)
	if st != nil {
		d.trace.resolveStart(uri)
		bc, rc := make(chan resolver.Batch), make(chan error, 1)
		rctx, rcancel := context.WithCancel(ctx)
		go func() {
			rc <- st.ResolveStream(rctx, uri, func(b resolver.Batch) {
				select {
				case bc <- b:
				case <-rctx.Done():
				}
			})
		}()
		batches, resolved = bc, rc
		defer func() {
			rcancel()
			if resolved != nil { // still running: wait for it
				d.resolveDone(<-rc)
			}
		}()
	}

	for {
		if err := ctx.Err(); err != nil {
			// Ended while another event was ready (the resolution
			// returning the same error): nothing more starts.
			return d.abandon(err)
		}
		d.startReady()
		if resolved == nil && d.inflight == 0 && !d.order.pending() {
			return nil, d.failure()
		}
		select {
		case b := <-batches:
			d.add(b)
		case err := <-resolved:
			batches, resolved = nil, nil
			d.resolveDone(err)
			d.openRace()
		case r := <-d.results:
			d.inflight--
			if r.err == nil {
				d.won(r.ep)
				return r.flow, nil
			}
			d.errs = append(d.errs, r.err)
			d.due = true
		case <-d.next:
			d.next, d.nextStop = nil, nil
			d.due = true
		case <-d.gate:
			d.gate, d.gateStop = nil, nil
			d.openRace()
		case <-ctx.Done():
			return d.abandon(ctx.Err())
		}
	}
}

// abandon ends a race whose context ended: the attempts in flight, which
// share the context, are waited for, so that their errors (which tell
// the cause: a SYN never answered, a handshake that stalled) are kept;
// with none in flight, the context's error is the cause. A flow that
// connected at the last moment is closed.
func (d *heDial) abandon(cause error) (Flow, error) {
	if d.inflight == 0 {
		d.errs = append(d.errs, &OpError{Op: "dial", URI: d.uri, Err: cause})
	}
	for ; d.inflight > 0; d.inflight-- {
		r := <-d.results
		if r.err != nil {
			d.errs = append(d.errs, r.err)
		} else {
			r.flow.Close()
			d.errs = append(d.errs, &OpError{Op: "dial", URI: d.uri, Endpoint: r.ep, Err: cause})
		}
	}
	return nil, combineDialErrors(d.uri, d.errs)
}

// add takes a batch of endpoints into the race: those of another family
// than the dial's are counted and dropped, those no transport can dial
// are dropped with their cause kept, and the others join their group's
// pending endpoints. A Replaces batch first removes the group's pending
// endpoints that came before it (hints).
func (d *heDial) add(b resolver.Batch) {
	d.arrived = append(d.arrived, b.Endpoints...)
	g := d.order.group(b.Group)
	if b.Replaces && !g.replaced {
		g.replaced = true
		for _, ep := range g.pending {
			delete(d.seen, ep.String())
		}
		g.pending = nil
	}
	usable, notIPv4 := 0, false
	for _, ep := range b.Endpoints {
		if ep == nil || d.seen[ep.String()] {
			continue
		}
		if !d.family.allows(ep) {
			d.filtered++
			continue
		}
		usable++
		notIPv4 = notIPv4 || endpoint.Family(ep) != "4"
		if err := d.c.cannotDial(ep); err != nil {
			d.errs = append(d.errs, &OpError{Op: "dial", URI: d.uri, Endpoint: ep, Err: err})
			continue
		}
		d.seen[ep.String()] = true
		g.pending = append(g.pending, ep)
	}
	switch {
	case d.open || usable == 0:
	case notIPv4 || d.family == "4":
		d.openRace()
	case d.gate == nil:
		delay := d.c.cfg.ResolutionDelay
		if delay == 0 {
			delay = DefaultResolutionDelay
		}
		if delay < 0 {
			d.openRace()
			break
		}
		d.gate, d.gateStop = after(d.c.clock, delay)
	}
}

// openRace lets the attempts start.
func (d *heDial) openRace() {
	d.open = true
	if d.gateStop != nil {
		d.gateStop()
		d.gate, d.gateStop = nil, nil
	}
}

// startReady starts the attempts that may start, and arms the attempt
// delay's timer when an endpoint waits for it.
func (d *heDial) startReady() {
	if !d.open {
		return
	}
	for d.order.pending() && d.mayStart() {
		d.start(d.order.next())
	}
	if d.order.pending() && d.delay > 0 && d.next == nil {
		d.next, d.nextStop = after(d.c.clock, d.lastStart.Add(d.delay).Sub(d.c.clock.Now()))
	}
}

// mayStart reports whether the next attempt may start now: none is in
// flight, one failed since the last start, or the attempt delay has
// passed since then.
func (d *heDial) mayStart() bool {
	if d.inflight == 0 || d.due {
		return true
	}
	return d.delay > 0 && !d.c.clock.Now().Before(d.lastStart.Add(d.delay))
}

// start starts an attempt at ep in its own goroutine, which hands its
// result to the race or, once the race has returned, closes the flow it
// still made.
func (d *heDial) start(ep endpoint.Endpoint) {
	d.inflight++
	d.started++
	d.due = false
	d.lastStart = d.c.clock.Now()
	if d.nextStop != nil {
		d.nextStop()
		d.next, d.nextStop = nil, nil
	}
	d.trace.connectStart(ep)
	go func() {
		f, err := d.attempt(ep)
		select {
		case d.results <- heResult{ep, f, err}:
		case <-d.returned:
			if f != nil {
				f.Close()
			}
		}
	}()
}

// attempt dials ep; connectStart has been traced.
func (d *heDial) attempt(ep endpoint.Endpoint) (Flow, error) {
	f, err := d.c.dialOne(d.ctx, ep)
	d.trace.connectDone(ep, err)
	if err != nil {
		d.c.logDebug("dial attempt failed", "uri", d.uri, "endpoint", ep.String(), "err", err)
		return nil, &OpError{Op: "dial", URI: d.uri, Endpoint: ep, Err: err}
	}
	return f, nil
}

// dialSingle dials the one endpoint of a resolution that gave only it.
func (c *Conduit) dialSingle(ctx context.Context, uri string, ep endpoint.Endpoint) (Flow, error) {
	trace := ContextTrace(ctx)
	trace.connectStart(ep)
	f, err := c.dialOne(ctx, ep)
	trace.connectDone(ep, err)
	if err != nil {
		c.logDebug("dial attempt failed", "uri", uri, "endpoint", ep.String(), "err", err)
		return nil, &OpError{Op: "dial", URI: uri, Endpoint: ep, Err: err}
	}
	return f, nil
}

// dialAlone dials the only endpoint of a complete resolution, in the
// caller's goroutine.
func (d *heDial) dialAlone(ep endpoint.Endpoint) (Flow, error) {
	d.trace.connectStart(ep)
	f, err := d.attempt(ep)
	if err != nil {
		d.errs = append(d.errs, err)
		return nil, combineDialErrors(d.uri, d.errs)
	}
	d.won(ep)
	return f, nil
}

// won remembers the family of the winner for its host.
func (d *heDial) won(ep endpoint.Endpoint) {
	d.c.fam.put(hostOf(ep), endpoint.Family(ep), d.c.clock.Now(), d.c.familyMemoryTTL())
}

// resolveDone records the end of a streamed resolution and traces it
// with every endpoint that arrived; its error counts only when none did.
func (d *heDial) resolveDone(err error) {
	var traced error
	switch {
	case len(d.arrived) > 0:
	case err != nil:
		d.resErr = err
		traced = &OpError{Op: "resolve", URI: d.uri, Err: err}
	default:
		traced = &OpError{Op: "resolve", URI: d.uri, Err: ErrNoEndpoints}
	}
	d.trace.resolveDone(d.uri, d.arrived, traced)
}

// failure is the error of a race that ran out of endpoints.
func (d *heDial) failure() error {
	switch {
	case len(d.errs) > 0:
		return combineDialErrors(d.uri, d.errs)
	case d.filtered > 0:
		return &OpError{Op: "dial", URI: d.uri, Err: d.family.noneError()}
	case d.resErr != nil:
		return &OpError{Op: "dial", URI: d.uri, Err: d.resErr}
	}
	return &OpError{Op: "dial", URI: d.uri, Err: ErrNoEndpoints}
}

// stopTimers releases the race's timers.
func (d *heDial) stopTimers() {
	if d.nextStop != nil {
		d.nextStop()
	}
	if d.gateStop != nil {
		d.gateStop()
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
