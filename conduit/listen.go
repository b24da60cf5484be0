package conduit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tlsflow"
)

// ListenOption configures Listen and Serve: each sets a field of the
// listener's ListenOptions.
type ListenOption func(*ListenOptions)

// WithIdleTimeout ends the flows of the listener that are idle for d:
// once no Read or Write call has begun on a flow for d (up to d/16
// more), a call blocked on it or made later fails with a timeout error
// (os.ErrDeadlineExceeded; Timeout() reports true), so its handler
// returns and the server closes it. That ends a peer that never sends
// as well as one that never reads what the handler writes. A single
// Write that takes longer than d also fails: a peer has to read at
// least one buffer's worth every d. The handler's own deadlines
// (SetDeadline and friends) still apply when they are earlier. d <= 0,
// the default, means no idle timeout.
func WithIdleTimeout(d time.Duration) ListenOption {
	return func(o *ListenOptions) { o.IdleTimeout = d }
}

// WithHandshakeTimeout bounds the server handshake of a listener with a
// handshake (TLS): a client that has not finished it within d of its
// connection is closed, and so is one that has but is not taken by
// Accept within d (a listener at its WithMaxConns limit). Handshakes run
// before Accept returns, so a client that stalls holds up no other. The
// default is DefaultHandshakeTimeout; d < 0 means no deadline.
// Transports without a handshake ignore it.
func WithHandshakeTimeout(d time.Duration) ListenOption {
	return func(o *ListenOptions) { o.HandshakeTimeout = d }
}

// DefaultHandshakeTimeout is the default deadline of a server handshake
// (see WithHandshakeTimeout and Server.HandshakeTimeout).
const DefaultHandshakeTimeout = tlsflow.DefaultHandshakeTimeout

// WithKeepalive enables TCP keepalive on every connection the listener
// accepts (transports without keepalive ignore it).
func WithKeepalive(ka tcpflow.Keepalive) ListenOption {
	return func(o *ListenOptions) { o.Keepalive = &ka }
}

// WithMaxConns limits the number of open flows the listener has handed
// out: at the limit, Accept waits until one of them is closed before it
// accepts the next connection, so new clients wait in the transport's
// backlog (for TCP, the kernel's listen queue: their connect succeeds,
// and they are served in turn once a flow closes). No connection is
// accepted only to wait. For a transport with a handshake (TLS) the
// limit counts flows whose handshake has completed: clients still
// handshaking are bounded apart (WithMaxHandshakes), and one whose
// handshake has completed but finds the limit reached is closed once its
// handshake timeout has passed. n <= 0 means no limit.
func WithMaxConns(n int) ListenOption {
	return func(o *ListenOptions) { o.MaxConns = n }
}

// WithMaxHandshakes bounds the connections of a listener with a
// handshake (TLS) that are handshaking, or have handshaken and wait for
// Accept: at the bound the transport stops accepting and new clients
// wait in its backlog. n <= 0 means tlsflow.DefaultMaxHandshakes.
// Transports without a handshake ignore it.
func WithMaxHandshakes(n int) ListenOption {
	return func(o *ListenOptions) { o.MaxHandshakes = n }
}

// WithLogger sets the logger of the listener and of the Server that
// serves it, in place of Config.Logger: accept errors retried (warn),
// the connection limit reached and failed handshakes (debug).
func WithLogger(l *slog.Logger) ListenOption {
	return func(o *ListenOptions) { o.Logger = l }
}

// WithGracePeriod sets how long Serve waits for its handlers to return
// after its context ends before it closes their flows; the default is
// DefaultGracePeriod.
func WithGracePeriod(d time.Duration) ListenOption {
	return func(o *ListenOptions) { o.GracePeriod = d }
}

// DefaultGracePeriod is Serve's default grace period.
const DefaultGracePeriod = 10 * time.Second

// Listener accepts flows on an endpoint. It is a net.Listener, so it
// plugs into http.Server.Serve. Close stops accepting; flows already
// accepted stay open. Safe for concurrent use.
type Listener struct {
	net.Listener
	uri      string
	ep       endpoint.Endpoint
	slots    chan struct{} // nil without a connection limit
	closed   chan struct{}
	closeErr error
	once     sync.Once
	trace    *Trace
	idle     time.Duration
	logger   *slog.Logger
	atLimit  atomic.Bool // the last slot taken had to wait
	grace    time.Duration
}

// Listen resolves uri to an endpoint to listen on (port 0 picks a free
// port) and listens on it with the given options; the grace period is
// kept for ServeListener. ctx governs the setup only; close the listener
// to stop it. Trace hooks in ctx are called for each accept.
func (c *Conduit) Listen(ctx context.Context, uri string, opts ...ListenOption) (*Listener, error) {
	c.init()
	var o ListenOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.Logger == nil {
		o.Logger = c.cfg.Logger
	}
	eps, err := c.resolve(ctx, uri, true)
	if err != nil {
		return nil, err
	}
	// Listen on the first endpoint: for a host with several addresses
	// the resolver puts the preferred one first.
	ep := eps[0]
	ln, err := c.listenOne(ctx, ep, o)
	if err != nil {
		return nil, &OpError{Op: "listen", URI: uri, Endpoint: ep, Err: err}
	}
	l := &Listener{
		Listener: ln,
		uri:      uri,
		ep:       endpoint.Bind(ep, ln.Addr()),
		closed:   make(chan struct{}),
		trace:    ContextTrace(ctx),
		idle:     o.IdleTimeout,
		logger:   o.Logger,
		grace:    o.GracePeriod,
	}
	if o.MaxConns > 0 {
		l.slots = make(chan struct{}, o.MaxConns)
	}
	return l, nil
}

// listenOne listens on ep through its transport with opts; inner
// endpoints get the same options.
func (c *Conduit) listenOne(ctx context.Context, ep endpoint.Endpoint, opts ListenOptions) (net.Listener, error) {
	t, ok := c.reg.Transport(ep.Kind())
	if !ok {
		return nil, errors.Join(ErrNoTransport, errorf("kind %q", ep.Kind()))
	}
	opts.Listen = func(ctx context.Context, inner endpoint.Endpoint) (net.Listener, error) {
		return c.listenOne(ctx, inner, opts)
	}
	return t.Listen(ctx, ep, opts)
}

// Endpoint is the endpoint the listener is bound to, with the real port
// when port 0 was asked for.
func (l *Listener) Endpoint() endpoint.Endpoint { return l.ep }

// URI is a URI that dials the listener, for example tcp://127.0.0.1:41235
// or tls://127.0.0.1:41236 (with ?sni=NAME when the server name differs
// from the host).
func (l *Listener) URI() string { return endpoint.URI(l.ep) }

// Accept waits for and returns the next connection as a Flow.
func (l *Listener) Accept() (net.Conn, error) {
	f, err := l.AcceptFlow()
	if err != nil {
		return nil, err
	}
	return f, nil
}

// AcceptFlow waits for and returns the next flow. With a connection
// limit it first waits for a free slot, and only then accepts (see
// WithMaxConns). With an idle timeout the flow ends when idle (see
// WithIdleTimeout).
func (l *Listener) AcceptFlow() (Flow, error) {
	if l.slots != nil {
		if err := l.takeSlot(); err != nil {
			return nil, err
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
	if l.idle > 0 {
		f = newIdleFlow(f, l.idle)
	}
	if l.slots != nil {
		f = &limitedFlow{Flow: f, release: func() { <-l.slots }}
	}
	return f, nil
}

// takeSlot waits for a free slot of the connection limit, logging when
// the listener reaches the limit (once until a slot is taken without
// waiting again).
func (l *Listener) takeSlot() error {
	select {
	case l.slots <- struct{}{}:
		l.atLimit.Store(false)
		return nil
	default:
	}
	if !l.atLimit.Swap(true) && l.logger != nil {
		l.logger.Debug("conduit: listener at its connection limit; new connections wait in the backlog",
			"listener", l.URI(), "max_conns", cap(l.slots))
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-l.closed:
		return &OpError{Op: "accept", URI: l.uri, Endpoint: l.ep, Err: net.ErrClosed}
	}
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
