package conduit

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/tlsflow"
)

// TLSTransport is the built-in transport of endpoint.TLS endpoints: TLS
// over any inner endpoint, dialed or listened on through the same
// Conduit. Its flows are *tlsflow.Conn.
type TLSTransport struct {
	// Config holds the client and server settings; the zero value
	// verifies servers against the system roots and cannot listen.
	Config TLSConfig
}

// clientConfig returns the configuration for dialing serverName.
func (t *TLSTransport) clientConfig(serverName string) *tlsflow.Config {
	base := t.Config.Client
	if c, ok := t.Config.ByServerName[serverName]; ok {
		base = c
	}
	var cfg *tlsflow.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tlsflow.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = serverName
	}
	return cfg
}

// Dial dials the inner endpoint and runs a client handshake over it.
func (t *TLSTransport) Dial(ctx context.Context, ep endpoint.Endpoint, opts DialOptions) (net.Conn, error) {
	e, ok := ep.(endpoint.TLS)
	if !ok {
		return nil, errorf("tls transport cannot dial a %q endpoint", ep.Kind())
	}
	if opts.Dial == nil {
		return nil, errorf("tls transport: no dialer for the inner endpoint %s", e.Inner)
	}
	inner, err := opts.Dial(ctx, e.Inner)
	if err != nil {
		return nil, err
	}
	trace := ContextTrace(ctx)
	trace.tlsStart(ep)
	conn, err := tlsflow.Client(ctx, inner, t.clientConfig(e.ServerName))
	if err != nil {
		trace.tlsDone(ep, tls.ConnectionState{}, err)
		return nil, err // tlsflow closed inner
	}
	trace.tlsDone(ep, conn.ConnectionState(), nil)
	return conn, nil
}

// Listen listens on the inner endpoint and runs the server handshake of
// every accepted connection in a goroutine of its own
// (tlsflow.HandshakeListener): Accept returns only flows whose
// handshake has completed, so a client that stalls its handshake holds
// up no one and no connection slot; it is closed at opts.HandshakeTimeout.
func (t *TLSTransport) Listen(ctx context.Context, ep endpoint.Endpoint, opts ListenOptions) (net.Listener, error) {
	e, ok := ep.(endpoint.TLS)
	if !ok {
		return nil, errorf("tls transport cannot listen on a %q endpoint", ep.Kind())
	}
	srv := t.Config.Server
	if srv == nil || (len(srv.Certificates) == 0 && srv.GetCertificate == nil) {
		return nil, errorf("tls listener %s needs a server certificate (Config.TLS.Server)", ep)
	}
	if opts.Listen == nil {
		return nil, errorf("tls transport: no listener for the inner endpoint %s", e.Inner)
	}
	inner, err := opts.Listen(ctx, e.Inner)
	if err != nil {
		return nil, err
	}
	lo := tlsflow.ListenerOptions{HandshakeTimeout: opts.HandshakeTimeout, MaxHandshakes: opts.MaxHandshakes}
	if log := opts.Logger; log != nil {
		lo.HandshakeError = func(remote net.Addr, err error) {
			log.Debug("conduit: tls handshake failed", "listener", ep.String(), "remote", remote.String(), "err", err)
		}
	}
	ln, err := tlsflow.NewHandshakeListener(inner, srv, lo)
	if err != nil {
		inner.Close()
		return nil, err
	}
	return ln, nil
}
