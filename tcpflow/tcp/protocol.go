package tcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/internal/listeners"
)

// connID identifies a connection: local and remote address and port.
type connID struct {
	local, remote netip.AddrPort
}

// Protocol is the TCP layer of one stack: it demultiplexes segments to
// connections and listeners. It is safe for concurrent use.
type Protocol struct {
	o      Options
	clk    clock.Clock
	epoch  time.Time // the origin of since
	keys   keys
	stats  counters
	budget budget
	paths  pathCache // what connections learned about their paths (metrics.go)

	mu        sync.Mutex
	closed    bool
	conns     map[connID]*endpoint
	listeners map[uint16]*listener
	// transient holds the listeners function's listeners while they
	// have half-open connections or recently sent cookies, so that a
	// port it accepts has a backlog, and SYN cookies, like any other.
	transient map[uint16]*listener
	listenFn  tcpflow.Listeners
	nextEph   uint32 // RFC 6056 algorithm 3 counter

	handlers listeners.Handlers[tcpflow.Flow] // Process calls

	fineMu   sync.Mutex
	fine     *clock.Fine // the delayed-ACK timers' clock on the real clock, made on first use
	fineDone bool        // Close closed fine (or there is none to make)
}

// ackClock returns the clock of the delayed-ACK timers, which also hold
// compressed SACKs for a few hundred microseconds (ackcomp.go): on the
// real clock a clock.Fine, made on first use and closed by Close, where
// the system has one; otherwise the protocol's clock.
func (p *Protocol) ackClock() clock.Clock {
	if p.clk != clock.Real() {
		return p.clk
	}
	p.fineMu.Lock()
	defer p.fineMu.Unlock()
	if p.fine == nil && !p.fineDone {
		f, err := clock.NewFine()
		if err != nil {
			p.fineDone = true // the runtime's timers, then
		} else {
			p.fine = f
		}
	}
	if p.fine == nil {
		return p.clk
	}
	return p.fine
}

// New returns a Protocol.
func New(o Options) (*Protocol, error) {
	if o.Output == nil {
		return nil, errors.New("tcp: Options.Output is nil")
	}
	if !o.Addr.Is4() {
		return nil, fmt.Errorf("tcp: Options.Addr %v is not an IPv4 address", o.Addr)
	}
	if o.CongestionControl > NewReno {
		return nil, fmt.Errorf("tcp: unknown Options.CongestionControl %v", o.CongestionControl)
	}
	o.setDefaults()
	p := &Protocol{
		o:         o,
		clk:       o.Clock,
		epoch:     o.Clock.Now(),
		conns:     map[connID]*endpoint{},
		listeners: map[uint16]*listener{},
		transient: map[uint16]*listener{},
	}
	p.keys = newKeys(o.ISNSecret)
	p.budget.init(o.BufferBudget)
	return p, nil
}

// since is t on the protocol's own time line, which the connections'
// timers use: the time since the protocol was made (monotonic with the
// real clock).
func (p *Protocol) since(t time.Time) time.Duration { return t.Sub(p.epoch) }

// NumConnections returns the number of connections the protocol tracks,
// TIME-WAIT included.
func (p *Protocol) NumConnections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close removes every listener, closes the flows whose Process is still
// running, waits for those Process calls, and aborts every connection
// (their flows fail with net.ErrClosed): a userspace stack cannot carry
// connections on without itself.
func (p *Protocol) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for port, l := range p.listeners {
		l.closeLocked()
		delete(p.listeners, port)
	}
	p.listenFn = nil
	p.mu.Unlock()
	p.handlers.Close()
	p.budget.close()
	p.mu.Lock()
	var all []*endpoint
	for _, e := range p.conns {
		all = append(all, e)
	}
	p.mu.Unlock()
	for _, e := range all {
		e.abort(net.ErrClosed)
	}
	p.fineMu.Lock()
	f := p.fine
	p.fine, p.fineDone = nil, true
	p.fineMu.Unlock()
	if f != nil {
		f.Close()
	}
	return nil
}
