package conduit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/conduit-go/conduit/clock"
)

// A Handler serves one flow. ctx is cancelled when the server shuts down:
// a long-lived handler should return soon after. The server closes the
// flow when ServeFlow returns.
type Handler interface {
	ServeFlow(ctx context.Context, f Flow)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, f Flow)

// ServeFlow calls h(ctx, f).
func (h HandlerFunc) ServeFlow(ctx context.Context, f Flow) { h(ctx, f) }

// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
var ErrServerClosed = errors.New("conduit: server closed")

// Server runs a Handler for every flow a listener accepts, each in its
// own goroutine, and shuts down gracefully. The zero value needs only a
// Handler. A Server serves one listener at a time and is not reused
// after Shutdown or Close.
//
// A temporary accept error (EMFILE, ENFILE, ENOBUFS, ENOMEM,
// ECONNABORTED, EINTR and the like, wrapped or not) does not end Serve:
// it is logged and the accept retried after 5 ms, doubling up to 1 s
// while the errors last; Shutdown and Close interrupt the wait.
type Server struct {
	// Handler serves each accepted flow.
	Handler Handler

	// Logger, when non-nil, receives the server's records: accept
	// errors it retries (warn) and failed handshakes (debug). Nil means
	// the listener's logger when it is a *Listener, else no logging.
	Logger *slog.Logger

	// HandshakeTimeout bounds the handshake that Serve runs before the
	// handler on a flow with a Handshake(context.Context) error method
	// that has not handshaken yet (a *tlsflow.Conn of
	// tlsflow.NewListener); on failure the flow is closed without
	// calling the handler. Flows of a conduit TLS listener have already
	// handshaken. Zero means DefaultHandshakeTimeout; a negative value,
	// no deadline.
	HandshakeTimeout time.Duration

	// Clock times the back-off between accept retries. Nil means
	// clock.Real(). (The handshake and shutdown deadlines are contexts,
	// on real time.)
	Clock clock.Clock

	mu       sync.Mutex
	ln       net.Listener
	conns    map[Flow]struct{}
	handlers sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
	done     bool
	quit     chan struct{} // closed when done is set
	serving  chan struct{} // closed when Serve returns
	log      *slog.Logger  // Logger or the listener's, set by Serve
}

func (s *Server) initLocked() {
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.conns = make(map[Flow]struct{})
		s.serving = make(chan struct{})
		s.quit = make(chan struct{})
	}
}

// Serve accepts flows on ln until Shutdown or Close, until ln is closed
// or until it fails with an error that is not temporary, and returns
// ErrServerClosed after a shutdown, the listener's error otherwise. It
// closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.initLocked()
	if s.done {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	if s.ln != nil {
		s.mu.Unlock()
		return errorf("serve: the server is already serving %s", s.ln.Addr())
	}
	s.ln = ln
	s.log = s.Logger
	if l, ok := ln.(*Listener); ok && s.log == nil {
		s.log = l.logger
	}
	s.mu.Unlock()
	defer close(s.serving)
	defer ln.Close()

	var backoff acceptBackoff
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isDone() {
				return ErrServerClosed
			}
			if !isTemporaryAccept(err) {
				return err
			}
			d := backoff.next()
			if s.log != nil {
				s.log.Warn("conduit: accept failed; retrying", "listener", listenerURI(ln), "err", err, "retry_in", d)
			}
			if !s.pause(d) {
				return ErrServerClosed
			}
			continue
		}
		backoff.reset()
		f := AsFlow(conn)
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			f.Close()
			return ErrServerClosed
		}
		s.conns[f] = struct{}{}
		s.handlers.Add(1)
		s.mu.Unlock()
		go s.handle(f)
	}
}

func (s *Server) isDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// pause waits d before the next accept; it reports false if the server
// shut down meanwhile.
func (s *Server) pause(d time.Duration) bool {
	c, stop := after(orReal(s.Clock), d)
	defer stop()
	select {
	case <-c:
		return true
	case <-s.quit:
		return false
	}
}

// handshaker is a flow that runs its handshake on demand.
type handshaker interface {
	Handshake(ctx context.Context) error
}

func (s *Server) handle(f Flow) {
	defer s.handlers.Done()
	defer func() {
		f.Close()
		s.mu.Lock()
		delete(s.conns, f)
		s.mu.Unlock()
	}()
	if hs, ok := f.(handshaker); ok {
		ctx, cancel := s.ctx, context.CancelFunc(func() {})
		if d := s.HandshakeTimeout; d >= 0 {
			if d == 0 {
				d = DefaultHandshakeTimeout
			}
			ctx, cancel = context.WithTimeout(s.ctx, d)
		}
		err := hs.Handshake(ctx)
		cancel()
		if err != nil {
			if s.log != nil {
				s.log.Debug("conduit: handshake failed", "remote", f.RemoteAddr().String(), "err", err)
			}
			return
		}
	}
	s.Handler.ServeFlow(s.ctx, f)
}

// Shutdown stops accepting, cancels the handlers' context and waits for
// the handlers to return until ctx ends; then it closes the flows still
// open, waits for their handlers and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.initLocked()
	if !s.done {
		s.done = true
		close(s.quit)
	}
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
		<-s.serving
	}
	s.cancel()

	idle := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	s.closeConns()
	<-idle
	return ctx.Err()
}

// Close stops accepting, closes every open flow and waits for the
// handlers to return.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for f := range s.conns {
		f.Close()
	}
}

// Serve listens on uri and runs h for every accepted flow until ctx
// ends; then it shuts down gracefully: it stops accepting, cancels the
// handlers' context and waits up to the grace period (WithGracePeriod)
// for them before it closes their flows. It returns nil after a shutdown
// in which every handler returned in time.
func (c *Conduit) Serve(ctx context.Context, uri string, h Handler, opts ...ListenOption) error {
	ln, err := c.Listen(ctx, uri, opts...)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, h, 0)
}

// ServeListener serves ln with h until ctx ends, then shuts down with the
// given grace period, as Conduit.Serve does. A grace period <= 0 means
// the listener's (WithGracePeriod, for a *Listener), else
// DefaultGracePeriod.
func ServeListener(ctx context.Context, ln net.Listener, h Handler, grace time.Duration) error {
	if l, ok := ln.(*Listener); ok && grace <= 0 {
		grace = l.grace
	}
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	srv := &Server{Handler: h}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		// The listener failed: stop the handlers too.
		srv.Close()
		if _, ok := err.(*OpError); ok {
			return err // a *Listener's accept error already names it
		}
		return &OpError{Op: "serve", URI: listenerURI(ln), Err: err}
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return &OpError{Op: "serve", URI: listenerURI(ln),
			Err: errorf("handlers still running after the %v grace period were cut off: %w", grace, err)}
	}
	return nil
}

func listenerURI(ln net.Listener) string {
	if l, ok := ln.(*Listener); ok {
		return l.URI()
	}
	return ln.Addr().Network() + "://" + ln.Addr().String()
}
