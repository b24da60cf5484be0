package conduit

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
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
type Server struct {
	// Handler serves each accepted flow.
	Handler Handler

	mu       sync.Mutex
	ln       net.Listener
	conns    map[Flow]struct{}
	handlers sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
	done     bool
	serving  chan struct{} // closed when Serve returns
}

func (s *Server) initLocked() {
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.conns = make(map[Flow]struct{})
		s.serving = make(chan struct{})
	}
}

// Serve accepts flows on ln until Shutdown or Close, or until ln fails,
// and returns ErrServerClosed after a shutdown. It closes ln when it
// returns.
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
	s.mu.Unlock()
	defer close(s.serving)
	defer ln.Close()

	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			done := s.done
			s.mu.Unlock()
			if done {
				return ErrServerClosed
			}
			return err
		}
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

func (s *Server) handle(f Flow) {
	defer s.handlers.Done()
	defer func() {
		f.Close()
		s.mu.Lock()
		delete(s.conns, f)
		s.mu.Unlock()
	}()
	s.Handler.ServeFlow(s.ctx, f)
}

// Shutdown stops accepting, cancels the handlers' context and waits for
// the handlers to return until ctx ends; then it closes the flows still
// open, waits for their handlers and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.initLocked()
	s.done = true
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
	var o listenOptions
	for _, opt := range opts {
		opt(&o)
	}
	grace := o.gracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	ln, err := c.Listen(ctx, uri, opts...)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, h, grace)
}

// ServeListener serves ln with h until ctx ends, then shuts down with the
// given grace period, as Conduit.Serve does.
func ServeListener(ctx context.Context, ln net.Listener, h Handler, grace time.Duration) error {
	srv := &Server{Handler: h}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		// The listener failed: stop the handlers too.
		srv.Close()
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
