package conduithttp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/endpoint"
)

// NextProtos is what a conduit TLS listener should offer by ALPN
// (tlsflow.Config.NextProtos of conduit.Config.TLS.Server) for
// ServeListener to speak HTTP/2 and HTTP/1.1 on it.
var NextProtos = []string{"h2", "http/1.1"}

// DefaultGracePeriod is how long Serve waits for requests in flight
// once its context ends.
const DefaultGracePeriod = 5 * time.Second

// Serve listens on uri through c (with opts) and serves srv there until
// ctx ends, then shuts srv down: it stops accepting, lets requests in
// flight finish for up to grace (DefaultGracePeriod when grace <= 0),
// closes what is left, and returns nil. It returns earlier with the
// error of a failed listen or serve. See ServeListener for what it does
// to srv.
func Serve(ctx context.Context, c *conduit.Conduit, uri string, srv *http.Server, grace time.Duration, opts ...conduit.ListenOption) error {
	ln, err := c.Listen(ctx, uri, opts...)
	if err != nil {
		return err
	}
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	served := make(chan error, 1)
	go func() { served <- ServeListener(srv, ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeListener serves srv on ln, as srv.Serve(ln) does, and returns
// its error (http.ErrServerClosed after Shutdown or Close).
//
// It makes conduit's flows work with net/http, which negotiates HTTP/2
// only over a *tls.Conn: on a flow whose TLS handshake chose "h2" by
// ALPN (conduit's TLS listeners hand out flows with the handshake done;
// offer NextProtos), the server speaks HTTP/2 as it would over its own
// TLS. For that ServeListener configures srv before serving: on a TLS
// listener (a *conduit.Listener of a TLS endpoint) it adds unencrypted
// HTTP/2 to srv.Protocols, which only such flows can reach (a flow
// whose handshake chose another protocol shows net/http its TLS state,
// which keeps it to HTTP/1.1); it chains srv.ConnContext and wraps
// srv.Handler so that Request.TLS holds the flow's TLS state whichever
// protocol was chosen. Writes of every flow are pushed at once (no
// Nagle). srv must not be in use elsewhere; call ServeListener once.
func ServeListener(srv *http.Server, ln net.Listener) error {
	if cl, ok := ln.(*conduit.Listener); ok {
		if _, isTLS := cl.Endpoint().(endpoint.TLS); isTLS {
			p := new(http.Protocols)
			if srv.Protocols != nil {
				*p = *srv.Protocols
			} else {
				p.SetHTTP1(true)
				p.SetHTTP2(true)
			}
			p.SetUnencryptedHTTP2(true)
			srv.Protocols = p
		}
	}
	next := srv.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	srv.Handler = tlsStateHandler{next}
	userCtx := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if sc, ok := c.(*serverConn); ok && sc.h2 != nil {
			ctx = context.WithValue(ctx, tlsStateKey{}, sc.h2)
		}
		if userCtx != nil {
			ctx = userCtx(ctx, c)
		}
		return ctx
	}
	return srv.Serve(&serverListener{ln})
}

// tlsStateKey holds, in a connection's context, the TLS state of a flow
// served as unencrypted HTTP/2.
type tlsStateKey struct{}

// tlsStateHandler sets Request.TLS from the connection's context.
type tlsStateHandler struct{ next http.Handler }

func (h tlsStateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		if cs, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r = r.WithContext(r.Context()) // a shallow copy: the caller's request is left alone
			r.TLS = cs
		}
	}
	h.next.ServeHTTP(w, r)
}

// serverListener wraps the flows it accepts in serverConns.
type serverListener struct{ net.Listener }

func (l *serverListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &serverConn{Conn: conduit.Nodelay(conduit.AsFlow(c))}
	if s, ok := c.(connectionStater); ok {
		cs := s.ConnectionState()
		if cs.HandshakeComplete && cs.NegotiatedProtocol == "h2" {
			sc.h2 = &cs
			return sc, nil // no ConnectionState: net/http takes the HTTP/2 preface
		}
		return &serverTLSConn{sc, s}, nil
	}
	return sc, nil
}

type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// serverConn is an accepted flow; h2 holds the TLS state of one whose
// ALPN chose HTTP/2.
type serverConn struct {
	net.Conn
	h2 *tls.ConnectionState
}

// NetConn returns the flow.
func (c *serverConn) NetConn() net.Conn { return c.Conn }

// serverTLSConn is an accepted TLS flow served as HTTP/1.1: net/http
// reads its TLS state into Request.TLS.
type serverTLSConn struct {
	*serverConn
	s connectionStater
}

// ConnectionState returns the flow's TLS state.
func (c *serverTLSConn) ConnectionState() tls.ConnectionState { return c.s.ConnectionState() }
