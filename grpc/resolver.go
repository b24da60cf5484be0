package conduitgrpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	gresolver "google.golang.org/grpc/resolver"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/endpoint"
	cresolver "github.com/conduit-go/conduit/resolver"
)

// errWatchEnded: the Watch of a channel's URI ended before the channel
// closed it, because the resolver was closed.
var errWatchEnded = errors.New("conduitgrpc: the resolver was closed; keeping the last endpoints")

// ccResolver resolves one target for one gRPC channel. Its goroutine
// (run) owns the Watch of the URI and is the only one to call cc; Close
// stops it and waits for it.
type ccResolver struct {
	b       *Builder
	uri     string
	name    string // logical name
	srvName string // the SRV name of an SRV URI, else ""
	cc      gresolver.ClientConn

	ctx    context.Context
	cancel context.CancelFunc
	now    chan struct{} // ResolveNow requests, one pending at most
	done   chan struct{} // closed when run returns
}

// startResolver starts watching uri for cc.
func startResolver(b *Builder, uri, name, srvName string, cc gresolver.ClientConn) (*ccResolver, error) {
	r := &ccResolver{b: b, uri: uri, name: name, srvName: srvName, cc: cc,
		now: make(chan struct{}, 1), done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	ch, stop, err := r.watch()
	if err != nil {
		r.cancel()
		return nil, err
	}
	go r.run(ch, stop)
	return r, nil
}

// watch starts a Watch of the URI under a context of its own; stop
// cancels it.
func (r *ccResolver) watch() (<-chan cresolver.Update, context.CancelFunc, error) {
	ctx, stop := context.WithCancel(r.ctx)
	ch, err := r.b.watcher.Watch(ctx, r.uri)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return ch, stop, nil
}

// ResolveNow asks for a resolution now. gRPC calls it when connections
// fail; the resolutions it starts are at most one per
// Options.ResolveNowInterval (the first at once, the others merged at the
// end of the interval). It does not block.
func (r *ccResolver) ResolveNow(gresolver.ResolveNowOptions) {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

// Close stops the resolver and waits for its goroutine and its Watch to
// end.
func (r *ccResolver) Close() {
	r.cancel()
	<-r.done
}

// run follows the Watch until Close. A ResolveNow restarts the Watch,
// whose first Update is a fresh resolution (Watch has no other way to
// refresh on demand); the old Watch is drained until its goroutine has
// closed its channel, so no two run at once.
func (r *ccResolver) run(ch <-chan cresolver.Update, stop context.CancelFunc) {
	defer close(r.done)
	defer func() {
		stop()
		drain(ch)
	}()
	var (
		last     string        // key of the last state pushed
		errored  bool          // an error was reported since
		pending  bool          // a ResolveNow waits for the interval's end
		cooldown chan struct{} // the interval since the last ResolveNow resolution
		timer    clock.Timer   // ends it
	)
	startCooldown := func() {
		ch := make(chan struct{}, 1)
		cooldown, timer = ch, r.b.clock.AfterFunc(r.b.interval, func() { ch <- struct{}{} })
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-r.ctx.Done():
			return
		case u, ok := <-ch:
			if !ok {
				if r.ctx.Err() == nil {
					r.cc.ReportError(errWatchEnded)
				}
				ch = nil // nothing more to follow; wait for Close
				continue
			}
			if u.Err != nil {
				// The last good state stays with gRPC: report, do not push.
				r.b.debug("conduitgrpc: resolution failed", "uri", r.uri, "err", u.Err)
				r.cc.ReportError(fmt.Errorf("conduitgrpc: %w", u.Err))
				errored = true
				continue
			}
			st, key := r.state(u.Endpoints)
			if key == last && !errored {
				continue
			}
			r.b.debug("conduitgrpc: endpoints", "uri", r.uri, "n", len(u.Endpoints))
			// An error means the balancer rejected the state; Watch
			// resolves again when the TTL ends, which is the back-off.
			_ = r.cc.UpdateState(st)
			last, errored = key, false
		case <-r.now:
			if cooldown != nil {
				pending = true
				continue
			}
			ch, stop = r.restart(ch, stop)
			startCooldown()
		case <-cooldown:
			cooldown, timer = nil, nil
			if pending {
				pending = false
				ch, stop = r.restart(ch, stop)
				startCooldown()
			}
		}
	}
}

// restart ends the current Watch and starts another, which answers
// every ResolveNow made so far.
func (r *ccResolver) restart(ch <-chan cresolver.Update, stop context.CancelFunc) (<-chan cresolver.Update, context.CancelFunc) {
	select {
	case <-r.now:
	default:
	}
	stop()
	drain(ch)
	nch, nstop, err := r.watch()
	if err != nil {
		r.cc.ReportError(fmt.Errorf("conduitgrpc: %w", err))
		return nil, func() {}
	}
	return nch, nstop
}

// drain reads a cancelled Watch's channel until its goroutine closes it
// (nil: there is none).
func drain(ch <-chan cresolver.Update) {
	if ch == nil {
		return
	}
	for range ch {
	}
}

// state turns endpoints into a gRPC state, and a key that identifies it.
// The addresses of one SRV record (a target with IPv4 and IPv6
// addresses) make one gRPC endpoint, with the record's priority and
// weight; every other endpoint is a gRPC endpoint of its own.
func (r *ccResolver) state(eps []endpoint.Endpoint) (gresolver.State, string) {
	var (
		out   []gresolver.Endpoint
		addrs []gresolver.Address
		keys  []string
		byRec map[SRV]int // SRV record → index in out
	)
	for _, ep := range eps {
		addr := r.b.address(ep)
		addrs = append(addrs, addr)
		srv, ok := r.srvOf(ep)
		if ok {
			if i, seen := byRec[srv]; seen {
				out[i].Addresses = append(out[i].Addresses, addr)
				keys[i] += " " + addr.Addr
				continue
			}
			if byRec == nil {
				byRec = make(map[SRV]int)
			}
			byRec[srv] = len(out)
		}
		var sp *SRV
		key := addr.Addr + "|" + addr.ServerName
		if ok {
			sp = &srv
			key = fmt.Sprintf("%d/%d|%s|%s", srv.Priority, srv.Weight, addr.ServerName, addr.Addr)
		}
		out = append(out, gresolver.Endpoint{
			Addresses:  []gresolver.Address{addr},
			Attributes: endpointAttributes(r.name, sp),
		})
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return gresolver.State{Endpoints: out, Addresses: addrs}, strings.Join(keys, "\n")
}

// srvOf returns the SRV record an endpoint of an SRV URI came from.
func (r *ccResolver) srvOf(ep endpoint.Endpoint) (SRV, bool) {
	if r.srvName == "" || r.b.tap == nil {
		return SRV{}, false
	}
	tcp, ok := endpoint.Innermost(ep).(endpoint.TCP)
	if !ok || tcp.Host == "" {
		return SRV{}, false
	}
	return r.b.tap.find(r.srvName, tcp.Host, tcp.Addr.Port())
}

// address returns the gRPC address of a conduit endpoint: under
// TLSByGRPC a TLS endpoint gives its inner endpoint, with its server
// name; a TCP endpoint is "host:port", any other its conduit URI, which
// Dial dials.
func (b *Builder) address(ep endpoint.Endpoint) gresolver.Address {
	a := gresolver.Address{Attributes: gresolverAttrs(ep)}
	dialed := ep
	if t, ok := ep.(endpoint.TLS); ok && b.tlsMode == TLSByGRPC {
		dialed, a.ServerName = t.Inner, t.ServerName
	}
	if t, ok := dialed.(endpoint.TCP); ok {
		a.Addr = t.Addr.String()
	} else {
		a.Addr = endpoint.URI(dialed)
	}
	return a
}
