package tcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/conduit-go/conduit/tcpflow"
)

// listener is a port accepting connections: either running process for
// each (Listen, SetListeners) or queueing them for Accept (ListenFlows).
type listener struct {
	p         *Protocol
	port      uint16
	process   func(tcpflow.Flow)
	ka        *tcpflow.Keepalive
	transient bool // made for one SYN from the listeners function

	// Guarded by p.mu.
	pending    int // half-open connections (SYN-RECEIVED)
	closed     bool
	cookieSlot uint32 // time slot of the last SYN cookie sent, plus one; 0 for none

	accept    chan *endpoint // ListenFlows: established, not yet accepted
	done      chan struct{}  // closed when the listener closes
	closeOnce sync.Once
}

// closeLocked marks the listener closed; p.mu is held.
func (l *listener) closeLocked() {
	l.closed = true
	if l.done != nil {
		l.closeOnce.Do(func() { close(l.done) })
	}
}

// Listen installs a listener running l.Process for each connection.
func (p *Protocol) Listen(port uint16, l tcpflow.Listener) error {
	addr := netip.AddrPortFrom(p.o.Addr, port)
	if l.Process == nil {
		return &tcpflow.Error{Op: "listen", Addr: addr, Err: errors.New("listener without Process")}
	}
	if port == 0 {
		return &tcpflow.Error{Op: "listen", Addr: addr, Err: errors.New("port 0")}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return &tcpflow.Error{Op: "listen", Addr: addr, Err: net.ErrClosed}
	}
	if p.listeners[port] != nil {
		return &tcpflow.Error{Op: "listen", Addr: addr, Err: fmt.Errorf("port %d already has a listener", port)}
	}
	p.listeners[port] = &listener{p: p, port: port, process: l.Process, ka: l.Keepalive}
	return nil
}

// Unlisten removes the listener on port; accepted connections carry on.
func (p *Protocol) Unlisten(port uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.listeners[port]; l != nil && l.accept == nil {
		l.closeLocked()
		delete(p.listeners, port)
	}
}

// SetListeners installs the listeners function; nil removes it.
func (p *Protocol) SetListeners(fn tcpflow.Listeners) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.listenFn = fn
		// The old function's listeners are forgotten; their half-open
		// connections complete with them.
		p.transient = map[uint16]*listener{}
	}
}

// ListenFlows listens on addr (our address or unspecified; port 0 picks
// a free port) and queues connections for AcceptFlow.
func (p *Protocol) ListenFlows(ctx context.Context, addr netip.AddrPort, ka *tcpflow.Keepalive) (tcpflow.FlowListener, error) {
	if a := addr.Addr(); a.IsValid() && !a.IsUnspecified() && a.Unmap() != p.o.Addr {
		return nil, &tcpflow.Error{Op: "listen", Addr: addr, Err: fmt.Errorf("%v is not our address %v", a, p.o.Addr)}
	}
	if err := ctx.Err(); err != nil {
		return nil, &tcpflow.Error{Op: "listen", Addr: addr, Err: err}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, &tcpflow.Error{Op: "listen", Addr: addr, Err: net.ErrClosed}
	}
	port := addr.Port()
	if port == 0 {
		for c := uint32(0); c < ephemeralMax-ephemeralMin+1; c++ {
			cand := uint16(ephemeralMin + (p.nextEph+c)%(ephemeralMax-ephemeralMin+1))
			if p.listeners[cand] == nil {
				port = cand
				break
			}
		}
		p.nextEph++
		if port == 0 {
			return nil, &tcpflow.Error{Op: "listen", Addr: addr, Err: errors.New("no free port")}
		}
	}
	if p.listeners[port] != nil {
		return nil, &tcpflow.Error{Op: "listen", Addr: addr, Err: fmt.Errorf("port %d already has a listener", port)}
	}
	l := &listener{
		p: p, port: port, ka: ka,
		accept: make(chan *endpoint, p.o.SYNBacklog),
		done:   make(chan struct{}),
	}
	p.listeners[port] = l
	return &flowListener{l: l, addr: netip.AddrPortFrom(p.o.Addr, port)}, nil
}

// flowListener is the FlowListener of ListenFlows.
type flowListener struct {
	l    *listener
	addr netip.AddrPort
}

var _ tcpflow.FlowListener = (*flowListener)(nil)

// AcceptFlow waits for the next connection.
func (fl *flowListener) AcceptFlow() (tcpflow.Flow, error) {
	select {
	case e := <-fl.l.accept:
		return e, nil
	case <-fl.l.done:
		// Prefer connections already queued? No: closed means closed.
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: net.TCPAddrFromAddrPort(fl.addr), Err: net.ErrClosed}
	}
}

// Accept is AcceptFlow as a net.Listener.
func (fl *flowListener) Accept() (net.Conn, error) {
	f, err := fl.AcceptFlow()
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Close stops accepting and resets the connections not yet accepted.
func (fl *flowListener) Close() error {
	p := fl.l.p
	p.mu.Lock()
	if fl.l.closed {
		p.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Addr: net.TCPAddrFromAddrPort(fl.addr), Err: net.ErrClosed}
	}
	fl.l.closeLocked()
	if p.listeners[fl.l.port] == fl.l {
		delete(p.listeners, fl.l.port)
	}
	p.mu.Unlock()
	for {
		select {
		case e := <-fl.l.accept:
			e.discard()
		default:
			return nil
		}
	}
}

// Addr returns the listening address.
func (fl *flowListener) Addr() net.Addr { return net.TCPAddrFromAddrPort(fl.addr) }

// listenerFor returns the listener for port, consulting the listeners
// function for ports without one. p.mu is held.
func (p *Protocol) listenerForLocked(port uint16) *listener {
	if l := p.lookupListenerLocked(port); l != nil {
		return l
	}
	if p.listenFn == nil {
		return nil
	}
	fl := p.listenFn(port)
	if fl == nil || fl.Process == nil {
		return nil
	}
	l := &listener{p: p, port: port, process: fl.Process, ka: fl.Keepalive, transient: true}
	p.transient[port] = l
	return l
}

// forgetTransientLocked drops a listeners function's listener from the
// cache once it has no half-open connection and sent no cookie in the
// last two slots. p.mu is held.
func (p *Protocol) forgetTransientLocked(l *listener) {
	if !l.transient || l.pending > 0 || p.transient[l.port] != l {
		return
	}
	if l.cookieSlot != 0 && cookieSlot(p.clk.Now())-(l.cookieSlot-1) <= 1 {
		return
	}
	delete(p.transient, l.port)
}

// lookupListenerLocked returns the listener of port, if any, without
// consulting the listeners function. p.mu is held.
func (p *Protocol) lookupListenerLocked(port uint16) *listener {
	if l := p.listeners[port]; l != nil {
		return l
	}
	return p.transient[port]
}

// established is called (without e.mu) when a passive connection is
// established: it goes to its listener.
func (p *Protocol) established(e *endpoint) {
	p.mu.Lock()
	l := e.listener
	if l == nil {
		p.mu.Unlock()
		return
	}
	e.delivered = true
	l.pending--
	p.forgetTransientLocked(l)
	if p.closed || l.closed {
		p.mu.Unlock()
		e.discard()
		return
	}
	if l.process != nil {
		p.mu.Unlock()
		if !p.handlers.Go(e, l.process) {
			e.discard() // Close has begun
		}
		return
	}
	p.mu.Unlock()
	select {
	case l.accept <- e:
	default:
		e.discard() // the accept queue is full
	}
}
