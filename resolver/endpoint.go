package resolver

import "github.com/conduit-go/conduit/endpoint"

// The endpoint model lives in package endpoint; these names stay until
// the rest of the tree has moved to it.
type (
	Endpoint    = endpoint.Endpoint
	TCP         = endpoint.TCP
	Unix        = endpoint.Unix
	VchanDirect = endpoint.VchanDirect
	VchanNamed  = endpoint.VchanNamed
	TLS         = endpoint.TLS
)

const (
	KindTCP        = endpoint.KindTCP
	KindUnix       = endpoint.KindUnix
	KindVchan      = endpoint.KindVchan
	KindVchanNamed = endpoint.KindVchanNamed
	KindTLS        = endpoint.KindTLS
)

// ValidVchanPort is endpoint.ValidVchanPort.
func ValidVchanPort(p string) bool { return endpoint.ValidVchanPort(p) }

// Validate is endpoint.Validate.
func Validate(e Endpoint) error { return endpoint.Validate(e) }
