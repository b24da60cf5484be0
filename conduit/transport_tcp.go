package conduit

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/tcpflow"
)

// A Stack is what the tcp transport needs of a TCP provider: to open
// connections and to listen. tcpflow's kernel backend (tcpflow.NewKernel)
// and its userspace stack (tcpflow/stack) are both one.
type Stack interface {
	CreateConnection(ctx context.Context, dst netip.AddrPort, opts tcpflow.DialOptions) (tcpflow.Flow, error)
	ListenFlows(ctx context.Context, addr netip.AddrPort, ka *tcpflow.Keepalive) (tcpflow.FlowListener, error)
}

var (
	_ Stack = (*tcpflow.Kernel)(nil)
	_ Stack = tcpflow.Stack(nil)
)

// TCPTransport is the built-in transport of endpoint.TCP endpoints: it
// dials and listens through a Stack, so its flows are
// tcpflow.Flows (Nagle on, with WriteNodelay to push at once).
type TCPTransport struct {
	// Stack is the TCP provider; nil means the kernel's.
	Stack Stack

	once   sync.Once
	kernel Stack
}

func (t *TCPTransport) stack() Stack {
	if t.Stack != nil {
		return t.Stack
	}
	t.once.Do(func() { t.kernel = tcpflow.NewKernel(nil) })
	return t.kernel
}

var _ DialChecker = (*TCPTransport)(nil)

// CanDial reports, wrapping ErrFamilyUnsupported, that the Stack cannot
// dial ep's address family (a FamilyStack that says so: the userspace
// stack has no IPv6); nil otherwise.
func (t *TCPTransport) CanDial(ep endpoint.Endpoint) error {
	e, ok := ep.(endpoint.TCP)
	if !ok {
		return nil // Dial says why
	}
	if fs, ok := t.stack().(FamilyStack); ok && !fs.SupportsFamily(e.Family()) {
		return fmt.Errorf("%w: the tcp transport's stack cannot dial IPv%s", ErrFamilyUnsupported, e.Family())
	}
	return nil
}

// Dial connects to a endpoint.TCP endpoint.
func (t *TCPTransport) Dial(ctx context.Context, ep endpoint.Endpoint, opts DialOptions) (net.Conn, error) {
	e, ok := ep.(endpoint.TCP)
	if !ok {
		return nil, errorf("tcp transport cannot dial a %q endpoint", ep.Kind())
	}
	if err := t.CanDial(e); err != nil {
		return nil, err
	}
	f, err := t.stack().CreateConnection(ctx, e.Addr, tcpflow.DialOptions{Keepalive: opts.Keepalive})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Listen listens on a endpoint.TCP endpoint (port 0 picks a free port).
func (t *TCPTransport) Listen(ctx context.Context, ep endpoint.Endpoint, opts ListenOptions) (net.Listener, error) {
	e, ok := ep.(endpoint.TCP)
	if !ok {
		return nil, errorf("tcp transport cannot listen on a %q endpoint", ep.Kind())
	}
	l, err := t.stack().ListenFlows(ctx, e.Addr, opts.Keepalive)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// UnixTransport is the built-in transport of endpoint.Unix endpoints:
// stream sockets on an absolute path. Abstract sockets ("@name", which
// the socket API would put in Linux's abstract namespace) are refused,
// as every path that is not absolute, with the error of
// endpoint.Unix.Validate (wrapping endpoint.ErrInvalid): they have no URI
// form (docs/uris.md).
type UnixTransport struct {
	// RemoveStale, when true, lets Listen remove a socket file left by a
	// process that is gone (nobody accepts on it) before binding.
	RemoveStale bool
}

// Dial connects to a endpoint.Unix endpoint.
func (t *UnixTransport) Dial(ctx context.Context, ep endpoint.Endpoint, _ DialOptions) (net.Conn, error) {
	e, ok := ep.(endpoint.Unix)
	if !ok {
		return nil, errorf("unix transport cannot dial a %q endpoint", ep.Kind())
	}
	path, err := socketPath(e)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return unixFlow{c.(*net.UnixConn)}, nil
}

// Listen listens on a endpoint.Unix endpoint. The socket file is removed
// when the listener is closed.
func (t *UnixTransport) Listen(ctx context.Context, ep endpoint.Endpoint, _ ListenOptions) (net.Listener, error) {
	e, ok := ep.(endpoint.Unix)
	if !ok {
		return nil, errorf("unix transport cannot listen on a %q endpoint", ep.Kind())
	}
	path, err := socketPath(e)
	if err != nil {
		return nil, err
	}
	if t.RemoveStale {
		if d, err := (&net.Dialer{}).DialContext(ctx, "unix", path); err == nil {
			d.Close() // someone is serving it: leave it, Listen fails below
		} else if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return unixListener{l.(*net.UnixListener)}, nil
}

// socketPath returns the path of a Unix endpoint to hand to the socket
// API, refusing one that is not absolute (an abstract "@name" among
// them) with the endpoint's own Validate error. Conduit.Dial has
// validated the endpoint already; this guards Listen and direct callers
// for the price of one comparison.
func socketPath(e endpoint.Unix) (string, error) {
	if !strings.HasPrefix(e.Path, "/") {
		return "", e.Validate() // not nil: Validate refuses such a path
	}
	return e.Path, nil
}

// unixListener hands out unixFlows.
type unixListener struct {
	*net.UnixListener
}

func (l unixListener) Accept() (net.Conn, error) {
	c, err := l.UnixListener.AcceptUnix()
	if err != nil {
		return nil, err
	}
	return unixFlow{c}, nil
}

// NewDefaultRegistry returns a new registry holding the built-in
// transports, configured from cfg (nil means defaults): "tcp", "unix",
// "tls", "vchan" and "vchan-name".
func NewDefaultRegistry(cfg *Config) *Registry {
	if cfg == nil {
		cfg = &Config{}
	}
	r := NewRegistry()
	must := func(err error) {
		if err != nil {
			panic(err) // a duplicate among the built-ins is a bug here
		}
	}
	must(r.Register(endpoint.KindTCP, &TCPTransport{Stack: cfg.Stack}))
	must(r.Register(endpoint.KindUnix, &UnixTransport{}))
	must(r.Register(endpoint.KindTLS, &TLSTransport{Config: cfg.TLS}))
	vt := &VchanTransport{Config: cfg.Vchan}
	must(r.Register(endpoint.KindVchan, vt))
	must(r.Register(endpoint.KindVchanNamed, vt))
	must(r.Register(endpoint.KindProxy, ProxyTransport{}))
	return r
}
