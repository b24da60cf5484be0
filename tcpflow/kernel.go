package tcpflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/conduit-go/conduit/tcpflow/internal/listeners"
)

// KernelConfig configures the kernel backend. The zero value (and nil)
// is ready to use.
type KernelConfig struct {
	// Addr is the local address the Listen and SetListeners listeners
	// bind; the zero value means every IPv4 address (0.0.0.0).
	Addr netip.Addr

	// Ports are the ports bound for the listeners function of
	// SetListeners: the kernel accepts on a port only once something is
	// bound to it, so the function is consulted for connections to these
	// ports (and to ports with a Listen listener). A connection to one of
	// them for which the function returns nil is reset.
	Ports []uint16

	// Logger, when non-nil, receives debug records of accept failures.
	Logger *slog.Logger
}

// Kernel is the kernel's TCP as a Stack. Its flows are *KernelFlow.
// It is safe for concurrent use.
type Kernel struct {
	cfg KernelConfig

	mu       sync.Mutex
	closed   bool
	ports    map[uint16]*portListener // bound by Listen or for SetListeners
	listenFn Listeners
	handlers listeners.Handlers[Flow] // Process calls
	wg       sync.WaitGroup           // accept loops
}

var _ Stack = (*Kernel)(nil)

// NewKernel returns the kernel backend; cfg may be nil.
func NewKernel(cfg *KernelConfig) *Kernel {
	k := &Kernel{
		ports: map[uint16]*portListener{},
	}
	if cfg != nil {
		k.cfg = *cfg
		k.cfg.Ports = append([]uint16(nil), cfg.Ports...)
	}
	if !k.cfg.Addr.IsValid() {
		k.cfg.Addr = netip.IPv4Unspecified()
	}
	return k
}

func network(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return "tcp4"
	}
	return "tcp6"
}

// CreateConnection connects to dst. ctx governs the connection setup
// only. Errors are *Error values matching ErrRefused when nothing listens
// and ErrTimeout when ctx's deadline passed first.
func (k *Kernel) CreateConnection(ctx context.Context, dst netip.AddrPort, opts DialOptions) (Flow, error) {
	if !dst.Addr().IsValid() || dst.Port() == 0 {
		return nil, &Error{Op: "dial", Addr: dst, Err: fmt.Errorf("invalid destination %q", dst)}
	}
	d := net.Dialer{KeepAlive: -1} // keepalive is set on the flow below
	if opts.Src.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(opts.Src)
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	c, err := d.DialContext(ctx, network(dst.Addr()), dst.String())
	if err != nil {
		return nil, dialError(ctx, dst, err)
	}
	f, err := newKernelFlow(c.(*net.TCPConn), opts.Keepalive)
	if err != nil {
		return nil, &Error{Op: "dial", Addr: dst, Err: err}
	}
	return f, nil
}

// ListenFlows listens on addr (port 0 picks a free port). Accepted flows
// get keepalive ka (nil: off) and Nagle on.
func (k *Kernel) ListenFlows(ctx context.Context, addr netip.AddrPort, ka *Keepalive) (FlowListener, error) {
	ln, err := k.listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &kernelListener{ln: ln, ka: ka}, nil
}

func (k *Kernel) listen(ctx context.Context, addr netip.AddrPort) (*net.TCPListener, error) {
	if !addr.Addr().IsValid() {
		return nil, &Error{Op: "listen", Addr: addr, Err: errors.New("invalid address")}
	}
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, network(addr.Addr()), addr.String())
	if err != nil {
		return nil, &Error{Op: "listen", Addr: addr, Err: err}
	}
	return ln.(*net.TCPListener), nil
}

// kernelListener is the FlowListener of ListenFlows.
type kernelListener struct {
	ln *net.TCPListener
	ka *Keepalive
}

// AcceptFlow returns the next connection. A connection whose set-up
// fails (its keepalive options, when the peer is already gone) is closed
// and skipped: one client's failure must not look like the listener's.
func (l *kernelListener) AcceptFlow() (Flow, error) {
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			return nil, err
		}
		if f, err := newKernelFlow(c, l.ka); err == nil {
			return f, nil
		}
	}
}

func (l *kernelListener) Accept() (net.Conn, error) {
	f, err := l.AcceptFlow()
	if err != nil {
		return nil, err // not a typed nil
	}
	return f, nil
}

func (l *kernelListener) Close() error   { return l.ln.Close() }
func (l *kernelListener) Addr() net.Addr { return l.ln.Addr() }

// portListener is a port bound by Listen or for SetListeners.
type portListener struct {
	port uint16
	ln   *net.TCPListener
	l    *Listener // nil: consult the listeners function
}

// Listen binds port on the configured address and runs l.Process in a
// goroutine for each accepted connection, closing the flow when Process
// returns. It fails if port already has a Listen listener.
func (k *Kernel) Listen(port uint16, l Listener) error {
	if l.Process == nil {
		return &Error{Op: "listen", Addr: netip.AddrPortFrom(k.cfg.Addr, port), Err: errors.New("listener without Process")}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return &Error{Op: "listen", Addr: netip.AddrPortFrom(k.cfg.Addr, port), Err: net.ErrClosed}
	}
	if p, ok := k.ports[port]; ok {
		if p.l != nil {
			return &Error{Op: "listen", Addr: netip.AddrPortFrom(k.cfg.Addr, port), Err: fmt.Errorf("port %d already has a listener", port)}
		}
		p.l = &l // take over a port bound for the listeners function
		return nil
	}
	return k.bindLocked(port, &l)
}

// bindLocked binds port and starts its accept loop; k.mu is held.
func (k *Kernel) bindLocked(port uint16, l *Listener) error {
	ln, err := k.listen(context.Background(), netip.AddrPortFrom(k.cfg.Addr, port))
	if err != nil {
		return err
	}
	p := &portListener{port: port, ln: ln, l: l}
	k.ports[port] = p
	k.wg.Add(1)
	go k.acceptLoop(p)
	return nil
}

// Unlisten removes the Listen listener of port: the port is unbound
// (new connections are refused) unless it is one of KernelConfig.Ports
// and a listeners function is installed. Accepted connections carry on.
func (k *Kernel) Unlisten(port uint16) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.ports[port]
	if !ok {
		return
	}
	if k.listenFn != nil && k.configuredPort(port) {
		p.l = nil
		return
	}
	delete(k.ports, port)
	p.ln.Close()
}

func (k *Kernel) configuredPort(port uint16) bool {
	for _, p := range k.cfg.Ports {
		if p == port {
			return true
		}
	}
	return false
}

// SetListeners installs fn as the listeners function for the ports of
// KernelConfig.Ports, binding them if needed; nil removes it. A bind
// failure is logged and that port stays unbound.
func (k *Kernel) SetListeners(fn Listeners) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	k.listenFn = fn
	for _, port := range k.cfg.Ports {
		p, bound := k.ports[port]
		switch {
		case fn != nil && !bound:
			if err := k.bindLocked(port, nil); err != nil {
				k.logDebug("tcpflow: cannot bind for the listeners function", "port", port, "err", err)
			}
		case fn == nil && bound && p.l == nil:
			delete(k.ports, port)
			p.ln.Close()
		}
	}
}

// listenerFor returns what handles a new connection on p, or nil.
func (k *Kernel) listenerFor(p *portListener) *Listener {
	k.mu.Lock()
	l, fn := p.l, k.listenFn
	k.mu.Unlock()
	if l != nil {
		return l
	}
	if fn != nil {
		return fn(p.port)
	}
	return nil
}

func (k *Kernel) acceptLoop(p *portListener) {
	defer k.wg.Done()
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				k.logDebug("tcpflow: accept failed", "port", p.port, "err", err)
				continue
			}
			return
		}
		l := k.listenerFor(p)
		if l == nil || l.Process == nil {
			// Declined: reset the connection, the closest the kernel
			// lets us come to refusing it.
			c.SetLinger(0)
			c.Close()
			continue
		}
		f, err := newKernelFlow(c, l.Keepalive)
		if err != nil {
			k.logDebug("tcpflow: accepted connection unusable", "port", p.port, "err", err)
			continue
		}
		if !k.handlers.Go(f, l.Process) {
			f.Close() // closed
			return
		}
	}
}

// Input is a no-op on the kernel backend: the kernel parses its own
// packets. It exists for userspace stacks.
func (k *Kernel) Input(src, dst netip.Addr, segment []byte) error { return nil }

// Close unbinds every port of Listen and SetListeners, closes the flows
// whose Process is still running (so their reads fail with
// net.ErrClosed) and waits for the accept loops and Process calls to
// return. Flows of CreateConnection and ListenFlows stay open.
func (k *Kernel) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	for port, p := range k.ports {
		p.ln.Close()
		delete(k.ports, port)
	}
	k.mu.Unlock()
	k.handlers.Close()
	k.wg.Wait()
	return nil
}

func (k *Kernel) logDebug(msg string, args ...any) {
	if k.cfg.Logger != nil {
		k.cfg.Logger.Debug(msg, args...)
	}
}
