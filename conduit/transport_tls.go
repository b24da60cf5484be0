package conduit

import (
	"context"
	"crypto/tls"
	"net"
	"slices"

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

// clientConfig returns the configuration for dialing e: the Client
// configuration (or ByServerName's for its server name) with the server
// name, and what the endpoint's HTTPS or SVCB record said (e.SVC) where
// the configuration is silent: its ALPN protocols when neither NextProtos
// nor Base.NextProtos is set, its ECH config list when neither
// ECHConfigList nor Base.EncryptedClientHelloConfigList is set.
func (t *TLSTransport) clientConfig(e endpoint.TLS) *tlsflow.Config {
	base := t.Config.Client
	if c, ok := t.Config.ByServerName[e.ServerName]; ok {
		base = c
	}
	var cfg *tlsflow.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tlsflow.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = e.ServerName
	}
	if svc := e.SVC; svc != nil {
		if len(svc.ALPN) > 0 && len(cfg.NextProtos) == 0 && (cfg.Base == nil || len(cfg.Base.NextProtos) == 0) {
			cfg.NextProtos = slices.Clone(svc.ALPN)
		}
		if len(svc.ECH) > 0 && len(cfg.ECHConfigList) == 0 && (cfg.Base == nil || cfg.Base.EncryptedClientHelloConfigList == nil) {
			cfg.ECHConfigList = svc.ECH
		}
	}
	return cfg
}

// Dial dials the inner endpoint and runs a client handshake over it,
// with the ALPN protocols and ECH configuration of e.SVC where the
// configuration sets none (see clientConfig).
//
// When the server rejects ECH and offers retry configurations (its key
// changed since the record was published), Dial retries once on a new
// inner connection with them, as draft-ietf-tls-esni-22 section 6.1.6
// recommends; a second rejection, or one without retry configurations,
// fails with tlsflow.ErrECHRejected. Dial never falls back to a
// ClientHello that shows the server name.
func (t *TLSTransport) Dial(ctx context.Context, ep endpoint.Endpoint, opts DialOptions) (net.Conn, error) {
	e, ok := ep.(endpoint.TLS)
	if !ok {
		return nil, errorf("tls transport cannot dial a %q endpoint", ep.Kind())
	}
	if opts.Dial == nil {
		return nil, errorf("tls transport: no dialer for the inner endpoint %s", e.Inner)
	}
	cfg := t.clientConfig(e)
	conn, err := t.handshake(ctx, e, opts, cfg)
	if retry, ok := tlsflow.ECHRetryConfigs(err); ok && len(retry) > 0 {
		cfg = cfg.Clone()
		cfg.ECHConfigList = retry
		rejected := err
		if conn, err = t.handshake(ctx, e, opts, cfg); err != nil {
			err = &echRetryError{retry: err, rejected: rejected}
		}
	}
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// handshake dials e's inner endpoint and runs one client handshake.
func (t *TLSTransport) handshake(ctx context.Context, e endpoint.TLS, opts DialOptions, cfg *tlsflow.Config) (*tlsflow.Conn, error) {
	inner, err := opts.Dial(ctx, e.Inner)
	if err != nil {
		return nil, err
	}
	trace := ContextTrace(ctx)
	trace.tlsStart(e)
	conn, err := tlsflow.Client(ctx, inner, cfg)
	if err != nil {
		trace.tlsDone(e, tls.ConnectionState{}, err)
		return nil, err // tlsflow closed inner
	}
	trace.tlsDone(e, conn.ConnectionState(), nil)
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
	// The certificate may also come from srv.Base (its Certificates,
	// GetCertificate or GetConfigForClient): tlsflow checks those.
	if srv == nil || (len(srv.Certificates) == 0 && srv.GetCertificate == nil && srv.Base == nil) {
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

// echRetryError is the failure of the retry that followed an ECH
// rejection: it reads as the retry's error and matches both.
type echRetryError struct {
	retry, rejected error
}

func (e *echRetryError) Error() string {
	return e.retry.Error() + " (retrying with the server's ECH retry configs)"
}

// Unwrap returns the retry's error and the first handshake's rejection.
func (e *echRetryError) Unwrap() []error { return []error{e.retry, e.rejected} }
