package conduit

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/conduit-go/conduit/endpoint"
)

// Trace is a set of hooks called at the phases of a Dial or Listen, like
// net/http/httptrace. Every field is optional. Hooks may be called from
// several goroutines at once (Happy Eyeballs dials endpoints in parallel)
// and must not block.
//
// Attach a Trace to a context with WithTrace.
type Trace struct {
	// ResolveStart is called before a URI is resolved.
	ResolveStart func(uri string)
	// ResolveDone is called with the resolved endpoints or the error.
	ResolveDone func(uri string, endpoints []endpoint.Endpoint, err error)
	// ConnectStart is called when a dial of one endpoint begins.
	ConnectStart func(ep endpoint.Endpoint)
	// ConnectDone is called when that dial ends, with its error.
	ConnectDone func(ep endpoint.Endpoint, err error)
	// TLSHandshakeStart and TLSHandshakeDone bracket a TLS handshake.
	TLSHandshakeStart func(ep endpoint.Endpoint)
	TLSHandshakeDone  func(ep endpoint.Endpoint, state tls.ConnectionState, err error)
	// ProxyConnectStart and ProxyConnectDone bracket the connection to
	// the proxy of one hop (hop.Via: the first proxy, or the previous hop
	// of a chain); ProxyHandshakeStart and ProxyHandshakeDone bracket the
	// hop's SOCKS5 or CONNECT handshake that asks the proxy for
	// hop.Target.
	ProxyConnectStart   func(hop endpoint.Proxy)
	ProxyConnectDone    func(hop endpoint.Proxy, err error)
	ProxyHandshakeStart func(hop endpoint.Proxy)
	ProxyHandshakeDone  func(hop endpoint.Proxy, err error)
	// Accept is called for each connection a Listener accepts.
	Accept func(local, remote net.Addr)
}

type traceKey struct{}

// WithTrace returns a context carrying t. Hooks of a Trace already in ctx
// are not called for operations under the returned context.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// ContextTrace returns the Trace in ctx, or nil.
func ContextTrace(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}

// The helpers below call a hook when both the Trace and the hook are set.

func (t *Trace) resolveStart(uri string) {
	if t != nil && t.ResolveStart != nil {
		t.ResolveStart(uri)
	}
}

func (t *Trace) resolveDone(uri string, eps []endpoint.Endpoint, err error) {
	if t != nil && t.ResolveDone != nil {
		t.ResolveDone(uri, eps, err)
	}
}

func (t *Trace) connectStart(ep endpoint.Endpoint) {
	if t != nil && t.ConnectStart != nil {
		t.ConnectStart(ep)
	}
}

func (t *Trace) connectDone(ep endpoint.Endpoint, err error) {
	if t != nil && t.ConnectDone != nil {
		t.ConnectDone(ep, err)
	}
}

func (t *Trace) tlsStart(ep endpoint.Endpoint) {
	if t != nil && t.TLSHandshakeStart != nil {
		t.TLSHandshakeStart(ep)
	}
}

func (t *Trace) tlsDone(ep endpoint.Endpoint, st tls.ConnectionState, err error) {
	if t != nil && t.TLSHandshakeDone != nil {
		t.TLSHandshakeDone(ep, st, err)
	}
}

func (t *Trace) accept(local, remote net.Addr) {
	if t != nil && t.Accept != nil {
		t.Accept(local, remote)
	}
}

func (t *Trace) proxyConnectStart(hop endpoint.Proxy) {
	if t != nil && t.ProxyConnectStart != nil {
		t.ProxyConnectStart(hop)
	}
}

func (t *Trace) proxyConnectDone(hop endpoint.Proxy, err error) {
	if t != nil && t.ProxyConnectDone != nil {
		t.ProxyConnectDone(hop, err)
	}
}

func (t *Trace) proxyHandshakeStart(hop endpoint.Proxy) {
	if t != nil && t.ProxyHandshakeStart != nil {
		t.ProxyHandshakeStart(hop)
	}
}

func (t *Trace) proxyHandshakeDone(hop endpoint.Proxy, err error) {
	if t != nil && t.ProxyHandshakeDone != nil {
		t.ProxyHandshakeDone(hop, err)
	}
}
