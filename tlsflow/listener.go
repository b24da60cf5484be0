package tlsflow

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"
)

// listener wraps accepted connections in lazily handshaking server Conns.
type listener struct {
	inner net.Listener
	tc    *tls.Config
	err   error
}

// NewListener returns a listener whose Accept wraps each connection of
// inner in a server *Conn. The handshake runs on the Conn's first Read,
// Write or Handshake call, so a slow client never blocks Accept. If cfg is
// not a valid server configuration, Accept returns that error. Closing the
// listener closes inner; accepted Conns belong to the caller.
func NewListener(inner net.Listener, cfg *Config) net.Listener {
	tc, err := cfg.serverConfig()
	return &listener{inner: inner, tc: tc, err: err}
}

func (l *listener) Accept() (net.Conn, error) {
	if l.err != nil {
		return nil, l.err
	}
	nc, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	return newTLSConn(nc, false, "", func(c net.Conn) *tls.Conn { return tls.Server(c, l.tc) }), nil
}

func (l *listener) Close() error   { return l.inner.Close() }
func (l *listener) Addr() net.Addr { return l.inner.Addr() }

// DefaultHandshakeTimeout is the HandshakeTimeout of a HandshakeListener
// whose ListenerOptions leave it zero.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultMaxHandshakes is the MaxHandshakes of a HandshakeListener whose
// ListenerOptions leave it zero.
const DefaultMaxHandshakes = 1024

// ListenerOptions configure a HandshakeListener. The zero value means
// the defaults.
type ListenerOptions struct {
	// HandshakeTimeout bounds the time from the inner listener's accept
	// of a connection to Accept returning it: the handshake, then the
	// wait for an Accept call. A connection that misses it is closed.
	// Zero means DefaultHandshakeTimeout; a negative value, no limit.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the connections accepted from the inner
	// listener and not yet returned by Accept (handshaking, or done and
	// waiting for an Accept call). At the bound the listener stops
	// accepting: new connections wait in the inner listener's backlog.
	// Zero means DefaultMaxHandshakes.
	MaxHandshakes int
	// HandshakeError, when non-nil, is called with the error of each
	// connection closed before Accept returned it: a failed or timed-out
	// handshake (a *HandshakeError) or one not accepted in time
	// (matching ErrHandshakeTimeout). It is called from the listener's
	// goroutines, possibly several at once, and must not block.
	HandshakeError func(remote net.Addr, err error)
}

// HandshakeListener is a net.Listener that runs the server handshake of
// every connection of its inner listener in a goroutine of its own and
// whose Accept returns only connections whose handshake has completed.
// A client that stalls its handshake therefore costs no Accept and no
// slot of a connection limit counted on accepted connections: it holds
// one of MaxHandshakes places until its HandshakeTimeout.
//
// The listener starts accepting at the first Accept call. Errors of the
// inner listener's Accept (a closed listener, EMFILE, ...) are returned
// by Accept as they are, one per call, so the caller's back-off paces
// the retries. Close stops accepting, closes inner and the connections
// not yet returned by Accept, and waits for the listener's goroutines;
// connections Accept returned belong to the caller. Safe for concurrent
// use.
type HandshakeListener struct {
	inner   net.Listener
	tc      *tls.Config
	timeout time.Duration
	onErr   func(net.Addr, error)

	places chan struct{}   // one token per connection accepted and not yet handed over
	ready  chan accepted   // unbuffered: a handshaken connection or an inner Accept error
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and the handshakes

	mu       sync.Mutex
	started  bool
	closed   bool
	closeErr error
}

type accepted struct {
	c   *Conn
	err error
}

var _ net.Listener = (*HandshakeListener)(nil)

// NewHandshakeListener returns a HandshakeListener over inner serving
// cfg. It fails if cfg is not a valid server configuration; inner then
// still belongs to the caller. Otherwise the listener owns inner.
func NewHandshakeListener(inner net.Listener, cfg *Config, opts ListenerOptions) (*HandshakeListener, error) {
	tc, err := cfg.serverConfig()
	if err != nil {
		return nil, err
	}
	timeout := opts.HandshakeTimeout
	if timeout == 0 {
		timeout = DefaultHandshakeTimeout
	}
	max := opts.MaxHandshakes
	if max <= 0 {
		max = DefaultMaxHandshakes
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &HandshakeListener{
		inner:   inner,
		tc:      tc,
		timeout: timeout,
		onErr:   opts.HandshakeError,
		places:  make(chan struct{}, max),
		ready:   make(chan accepted),
		ctx:     ctx,
		cancel:  cancel,
	}, nil
}

// Accept waits for and returns the next connection whose handshake has
// completed (a *Conn), or the next error of the inner listener. After
// Close it returns an error matching net.ErrClosed.
func (l *HandshakeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if !l.started && !l.closed {
		l.started = true
		l.wg.Add(1)
		go l.acceptLoop()
	}
	l.mu.Unlock()
	select {
	case a := <-l.ready:
		if a.err != nil {
			return nil, a.err
		}
		return a.c, nil
	case <-l.ctx.Done():
		return nil, &net.OpError{Op: "accept", Net: l.inner.Addr().Network(), Addr: l.inner.Addr(), Err: net.ErrClosed}
	}
}

// acceptLoop accepts connections from inner while fewer than
// MaxHandshakes are on hand, and starts a handshake for each.
func (l *HandshakeListener) acceptLoop() {
	defer l.wg.Done()
	for {
		select {
		case l.places <- struct{}{}:
		case <-l.ctx.Done():
			return
		}
		nc, err := l.inner.Accept()
		if err != nil {
			<-l.places
			// Hand the error to one Accept call: an inner listener that
			// keeps failing (EMFILE) is retried at the caller's pace.
			select {
			case l.ready <- accepted{err: err}:
			case <-l.ctx.Done():
				return
			}
			continue
		}
		l.wg.Add(1) // while this goroutine is counted, so never after Close's Wait
		go l.handshake(nc)
	}
}

// handshake runs the handshake of nc and hands the Conn to an Accept
// call, both before the handshake deadline.
func (l *HandshakeListener) handshake(nc net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.places }()
	ctx, cancel := l.ctx, context.CancelFunc(func() {})
	if l.timeout > 0 {
		ctx, cancel = context.WithTimeout(l.ctx, l.timeout)
	}
	defer cancel()
	c := newTLSConn(nc, false, "", func(c net.Conn) *tls.Conn { return tls.Server(c, l.tc) })
	if err := c.Handshake(ctx); err != nil { // closes nc on failure
		l.report(nc.RemoteAddr(), err)
		return
	}
	select {
	case l.ready <- accepted{c: c}:
	case <-ctx.Done():
		c.Close()
		l.report(nc.RemoteAddr(), &HandshakeError{Kind: ErrHandshakeTimeout, peer: addrString(nc.RemoteAddr()),
			Err: fmt.Errorf("not accepted within %v of its connection: %w", l.timeout, ctx.Err())})
	}
}

// report passes the error of a connection closed before Accept to the
// HandshakeError hook, unless the listener is closing.
func (l *HandshakeListener) report(remote net.Addr, err error) {
	if l.onErr != nil && l.ctx.Err() == nil {
		l.onErr(remote, err)
	}
}

// Close stops accepting, closes inner and every connection not yet
// returned by Accept, and waits for the handshakes in progress to end.
// It is idempotent and returns the error of closing inner.
func (l *HandshakeListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.wg.Wait()
		return l.closeErr
	}
	l.closed = true
	l.cancel() // interrupts the handshakes and the waits for Accept
	l.closeErr = l.inner.Close()
	l.mu.Unlock()
	l.wg.Wait()
	return l.closeErr
}

// Addr returns the inner listener's address.
func (l *HandshakeListener) Addr() net.Addr { return l.inner.Addr() }

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
