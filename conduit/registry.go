package conduit

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tcpflow"
)

// A Transport dials and listens on endpoints of one kind.
//
// Dial's ctx governs only the connection setup, not the life of the
// returned connection. A Transport may return a plain net.Conn; conduit
// adapts it with AsFlow. Implementations must be safe for concurrent use.
type Transport interface {
	Dial(ctx context.Context, ep endpoint.Endpoint, opts DialOptions) (net.Conn, error)
	Listen(ctx context.Context, ep endpoint.Endpoint, opts ListenOptions) (net.Listener, error)
}

// DialOptions are passed by a Conduit to Transport.Dial.
type DialOptions struct {
	// Keepalive, when non-nil, asks for TCP keepalive (transports
	// without keepalive ignore it).
	Keepalive *tcpflow.Keepalive
	// Dial dials another endpoint through the same Conduit. Wrapping
	// transports (TLS) use it for their inner endpoint.
	Dial func(ctx context.Context, ep endpoint.Endpoint) (net.Conn, error)
}

// ListenOptions configure a listener: Listen and Serve take them as
// ListenOption functions (WithMaxConns, …), and a Transport's Listen gets
// the same struct, with Listen set for its inner endpoints. The zero
// value means the defaults.
type ListenOptions struct {
	// Keepalive, when non-nil, is applied to every accepted connection
	// (WithKeepalive).
	Keepalive *tcpflow.Keepalive
	// MaxConns bounds the flows handed out (WithMaxConns); IdleTimeout
	// ends idle flows (WithIdleTimeout). The Listener applies both.
	MaxConns    int
	IdleTimeout time.Duration
	// HandshakeTimeout and MaxHandshakes bound the server handshakes of
	// transports that have one (see WithHandshakeTimeout and
	// WithMaxHandshakes): zero means the defaults, a negative
	// HandshakeTimeout no deadline. Others ignore them.
	HandshakeTimeout time.Duration
	MaxHandshakes    int
	// Logger, when non-nil, receives the records of the listener, its
	// transport and its Server (WithLogger; default Config.Logger).
	Logger *slog.Logger
	// GracePeriod is Serve's grace period at shutdown (WithGracePeriod).
	GracePeriod time.Duration
	// Listen listens on another endpoint through the same Conduit, with
	// the same options. Wrapping transports (TLS) use it for their inner
	// endpoint; Conduit sets it.
	Listen func(ctx context.Context, ep endpoint.Endpoint) (net.Listener, error)
}

// SchemeFunc parses a URI of a custom scheme into endpoints, for example
// "mem://name" into a custom endpoint type. It returns an error for a
// malformed URI.
type SchemeFunc func(ctx context.Context, u *url.URL) ([]endpoint.Endpoint, error)

// A Registry maps endpoint kinds to transports and custom URI schemes to
// their parsers. It belongs to the Conduits that use it: there is no
// global registry. A Registry is safe for concurrent use; the zero value
// is an empty registry.
type Registry struct {
	mu         sync.RWMutex
	transports map[string]Transport
	schemes    map[string]SchemeFunc
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register makes t the transport for endpoints of the given kind. It is
// an error to register a kind twice.
func (r *Registry) Register(kind string, t Transport) error {
	if kind == "" || t == nil {
		return errorf("register %q: empty kind or nil transport", kind)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.transports[kind]; dup {
		return errorf("register %q: a transport is already registered for this kind", kind)
	}
	if r.transports == nil {
		r.transports = make(map[string]Transport)
	}
	r.transports[kind] = t
	return nil
}

// RegisterScheme makes parse the resolver of URIs with the given scheme.
// Custom schemes take precedence over the resolver, so a scheme the
// resolver knows (tcp, tls…) cannot be registered. It is an error to
// register a scheme twice.
func (r *Registry) RegisterScheme(scheme string, parse SchemeFunc) error {
	if scheme == "" || parse == nil {
		return errorf("register scheme %q: empty scheme or nil parser", scheme)
	}
	if resolver.IsBuiltinScheme(scheme) {
		return errorf("register scheme %q: a built-in scheme", scheme)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.schemes[scheme]; dup {
		return errorf("register scheme %q: a parser is already registered for this scheme", scheme)
	}
	if r.schemes == nil {
		r.schemes = make(map[string]SchemeFunc)
	}
	r.schemes[scheme] = parse
	return nil
}

// Transport returns the transport registered for kind.
func (r *Registry) Transport(kind string) (Transport, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.transports[kind]
	return t, ok
}

// Scheme returns the parser registered for scheme.
func (r *Registry) Scheme(scheme string) (SchemeFunc, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.schemes[scheme]
	return p, ok
}

// Kinds returns the registered endpoint kinds, sorted.
func (r *Registry) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	kinds := make([]string, 0, len(r.transports))
	for k := range r.transports {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}
