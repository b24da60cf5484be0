package conduitgrpc

import (
	"google.golang.org/grpc/attributes"
	gresolver "google.golang.org/grpc/resolver"

	"github.com/conduit-go/conduit/endpoint"
)

// SRV is what an SRV record says of one gRPC endpoint (RFC 2782): the
// record's target and port, its priority (lower is preferred) and its
// weight (the share of traffic within a priority).
type SRV struct {
	Target   string
	Port     uint16
	Priority uint16
	Weight   uint16
}

// Keys of the attributes a Builder's resolvers set. Unexported types, so
// no other package can collide with them.
type (
	srvKey      struct{}
	nameKey     struct{}
	endpointKey struct{}
)

// SRVOf returns the SRV record of a gRPC endpoint resolved from an SRV
// URI (srv://, SCHEME+srv://), and false for any other endpoint.
func SRVOf(ep gresolver.Endpoint) (SRV, bool) {
	s, ok := ep.Attributes.Value(srvKey{}).(SRV)
	return s, ok
}

// LogicalNameOf returns the logical name of the service a gRPC endpoint
// belongs to: the host of the conduit URI (the NAME of
// SCHEME+srv://NAME and of srv://_SERVICE._PROTO.NAME, the sni
// parameter when there is one, "localhost" for Unix sockets and vchan).
// It is the channel's :authority, and the name TLS verifies.
func LogicalNameOf(ep gresolver.Endpoint) string {
	s, _ := ep.Attributes.Value(nameKey{}).(string)
	return s
}

// EndpointOf returns the conduit endpoint a gRPC address was made from
// (with TLS: the TLS endpoint, whichever side runs the handshake).
func EndpointOf(addr gresolver.Address) (endpoint.Endpoint, bool) {
	v, ok := addr.Attributes.Value(endpointKey{}).(endpointAttr)
	return v.ep, ok
}

// endpointAttr holds a conduit endpoint in gRPC attributes, which compare
// values with == unless they have an Equal method: a custom endpoint type
// need not be comparable.
type endpointAttr struct {
	ep  endpoint.Endpoint
	key string // ep.String(), what Equal compares
}

func newEndpointAttr(ep endpoint.Endpoint) endpointAttr {
	return endpointAttr{ep: ep, key: ep.Kind() + " " + ep.String()}
}

// Equal reports whether o holds the same endpoint.
func (a endpointAttr) Equal(o any) bool {
	b, ok := o.(endpointAttr)
	return ok && a.key == b.key
}

// String is the endpoint's, for gRPC's logs.
func (a endpointAttr) String() string { return a.key }

// endpointAttributes returns the attributes of a gRPC endpoint.
func endpointAttributes(name string, srv *SRV) *attributes.Attributes {
	a := attributes.New(nameKey{}, name)
	if srv != nil {
		a = a.WithValue(srvKey{}, *srv)
	}
	return a
}

// gresolverAttrs returns the attributes of a gRPC address.
func gresolverAttrs(ep endpoint.Endpoint) *attributes.Attributes {
	return attributes.New(endpointKey{}, newEndpointAttr(ep))
}
