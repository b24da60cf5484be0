package conduit

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/vchan"
)

// ListenOption configures Listen and Serve.
type ListenOption func(*listenOptions)

type listenOptions struct {
	keepalive        *tcpflow.Keepalive
	maxConns         int
	gracePeriod      time.Duration
	idleTimeout      time.Duration
	handshakeTimeout time.Duration
}

// WithIdleTimeout closes a flow accepted by the listener once it has
// been idle for d: no Read or Write on it made progress for d. A
// Read or Write blocked past the timeout (a peer that never sends, or
// one that never reads what the handler writes) fails with an error
// matching ErrTimeout, so the handler returns and the server closes the
// flow. A handler's own deadlines (SetDeadline and friends) replace the
// idle deadline until the next Read or Write. d <= 0, the default, means
// no idle timeout.
func WithIdleTimeout(d time.Duration) ListenOption {
	return func(o *listenOptions) { o.idleTimeout = d }
}

// WithHandshakeTimeout bounds the server handshake of a flow accepted by
// a listener with a handshake (TLS): a client that has not finished it
// within d is closed. The default is DefaultHandshakeTimeout; d < 0
// means no deadline. Transports without a handshake ignore it.
func WithHandshakeTimeout(d time.Duration) ListenOption {
	return func(o *listenOptions) { o.handshakeTimeout = d }
}

// DefaultHandshakeTimeout is the default deadline of a server handshake
// (see WithHandshakeTimeout).
const DefaultHandshakeTimeout = 10 * time.Second

// WithKeepalive enables TCP keepalive on every connection the listener
// accepts (transports without keepalive ignore it).
func WithKeepalive(ka tcpflow.Keepalive) ListenOption {
	return func(o *listenOptions) { o.keepalive = &ka }
}

// WithMaxConns limits the number of open connections accepted by the
// listener: at the limit, Accept waits until one of them is closed, and
// new connections wait in the transport's backlog. n <= 0 means no limit.
func WithMaxConns(n int) ListenOption {
	return func(o *listenOptions) { o.maxConns = n }
}

// WithGracePeriod sets how long Serve waits for its handlers to return
// after its context ends before it closes their flows; the default is
// DefaultGracePeriod.
func WithGracePeriod(d time.Duration) ListenOption {
	return func(o *listenOptions) { o.gracePeriod = d }
}

// DefaultGracePeriod is Serve's default grace period.
const DefaultGracePeriod = 10 * time.Second

// Listener accepts flows on an endpoint. It is a net.Listener, so it
// plugs into http.Server.Serve. Close stops accepting; flows already
// accepted stay open. Safe for concurrent use.
type Listener struct {
	net.Listener
	uri      string
	ep       resolver.Endpoint
	slots    chan struct{} // nil without a connection limit
	closed   chan struct{}
	closeErr error
	once     sync.Once
	trace    *Trace
}

// Listen resolves uri to an endpoint to listen on (port 0 picks a free
// port) and listens on it. ctx governs the setup only; close the
// listener to stop it. Trace hooks in ctx are called for each accept.
func (c *Conduit) Listen(ctx context.Context, uri string, opts ...ListenOption) (*Listener, error) {
	c.init()
	var o listenOptions
	for _, opt := range opts {
		opt(&o)
	}
	eps, err := c.resolve(ctx, uri, true)
	if err != nil {
		return nil, err
	}
	// Listen on the first endpoint: for a host with several addresses
	// the resolver puts the preferred one first.
	ep := eps[0]
	ln, err := c.listenOne(ctx, ep, o.keepalive)
	if err != nil {
		return nil, &OpError{Op: "listen", URI: uri, Endpoint: ep, Err: err}
	}
	l := &Listener{
		Listener: ln,
		uri:      uri,
		ep:       boundEndpoint(ep, ln.Addr()),
		closed:   make(chan struct{}),
		trace:    ContextTrace(ctx),
	}
	if o.maxConns > 0 {
		l.slots = make(chan struct{}, o.maxConns)
	}
	return l, nil
}

func (c *Conduit) listenOne(ctx context.Context, ep resolver.Endpoint, ka *tcpflow.Keepalive) (net.Listener, error) {
	t, ok := c.reg.Transport(ep.Kind())
	if !ok {
		return nil, errors.Join(ErrNoTransport, errorf("kind %q", ep.Kind()))
	}
	return t.Listen(ctx, ep, ListenOptions{
		Keepalive: ka,
		Listen: func(ctx context.Context, inner resolver.Endpoint) (net.Listener, error) {
			return c.listenOne(ctx, inner, ka)
		},
	})
}

// boundEndpoint replaces a port 0 in ep with the port the listener got.
func boundEndpoint(ep resolver.Endpoint, addr net.Addr) resolver.Endpoint {
	switch e := ep.(type) {
	case resolver.TCP:
		if ap := addrPort(addr); ap.IsValid() {
			if e.Addr.Addr().IsUnspecified() {
				e.Addr = ap
			} else {
				e.Addr = netip.AddrPortFrom(e.Addr.Addr(), ap.Port())
			}
		}
		return e
	case resolver.VchanDirect:
		if va, ok := addr.(*vchan.Addr); ok {
			e.Domid = va.Domid // vchan://0/PORT allocated a domain id
		}
		return e
	case resolver.TLS:
		e.Inner = boundEndpoint(e.Inner, addr)
		return e
	}
	return ep
}

// Endpoint is the endpoint the listener is bound to, with the real port
// when port 0 was asked for.
func (l *Listener) Endpoint() resolver.Endpoint { return l.ep }

// URI is a URI that dials the listener, for example tcp://127.0.0.1:41235
// or tls://127.0.0.1:41236 (with ?sni=NAME when the server name differs
// from the host).
func (l *Listener) URI() string { return EndpointURI(l.ep) }

// EndpointURI returns a URI that resolves to ep without any lookup, or
// ep.String() for kinds without such a URI.
func EndpointURI(ep resolver.Endpoint) string {
	switch e := ep.(type) {
	case resolver.TCP:
		return "tcp://" + e.Addr.String()
	case resolver.Unix:
		return resolver.Unix{Path: e.Path}.String()
	case resolver.VchanDirect:
		return "vchan://" + strconv.Itoa(e.Domid) + "/" + e.Port
	case resolver.VchanNamed:
		return "vchan://" + e.Name + "/" + e.Port
	case resolver.TLS:
		var s string
		host := ""
		switch in := e.Inner.(type) {
		case resolver.TCP:
			s, host = "tls://"+in.Addr.String(), in.Addr.Addr().String()
		case resolver.Unix:
			s = "tls+unix://" + in.Path
		case resolver.VchanDirect, resolver.VchanNamed:
			s = "tls+" + EndpointURI(in)
		default:
			return ep.String()
		}
		if e.ServerName != "" && e.ServerName != host {
			s += "?sni=" + e.ServerName
		}
		return s
	}
	return ep.String()
}

// Accept waits for and returns the next connection as a Flow.
func (l *Listener) Accept() (net.Conn, error) {
	f, err := l.AcceptFlow()
	if err != nil {
		return nil, err
	}
	return f, nil
}

// AcceptFlow waits for and returns the next flow. With a connection
// limit, it first waits for a free slot.
func (l *Listener) AcceptFlow() (Flow, error) {
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, &OpError{Op: "accept", URI: l.uri, Endpoint: l.ep, Err: net.ErrClosed}
		}
	}
	conn, err := l.Listener.Accept()
	if err != nil {
		if l.slots != nil {
			<-l.slots
		}
		return nil, &OpError{Op: "accept", URI: l.uri, Endpoint: l.ep, Err: err}
	}
	l.trace.accept(conn.LocalAddr(), conn.RemoteAddr())
	f := AsFlow(conn)
	if l.slots != nil {
		f = &limitedFlow{Flow: f, release: func() { <-l.slots }}
	}
	return f, nil
}

// Close stops accepting. It is idempotent.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.closeErr = l.Listener.Close()
	})
	return l.closeErr
}

// limitedFlow frees its listener slot when closed.
type limitedFlow struct {
	Flow
	once    sync.Once
	release func()
}

func (f *limitedFlow) Close() error {
	err := f.Flow.Close()
	f.once.Do(f.release)
	return err
}

// Unwrap returns the flow of the transport, for type assertions to
// tcpflow.Flow or *tlsflow.Conn.
func (f *limitedFlow) Unwrap() Flow { return f.Flow }
