package conduit

import (
	"errors"

	"github.com/conduit-go/conduit/endpoint"
)

var (
	// ErrNoSuitableAddress: a dial restricted to one address family
	// (DialContext with network "tcp4" or "tcp6") found no endpoint of
	// that family among those the URI resolved to. The words are net's
	// for the same case.
	ErrNoSuitableAddress = errors.New("conduit: no suitable address found")

	// ErrFamilyUnsupported: the transport cannot dial the endpoint's
	// address family (the userspace stack serves only IPv4). A dial
	// skips such endpoints, keeping this cause among its errors, instead
	// of racing them.
	ErrFamilyUnsupported = errors.New("conduit: address family not supported by the transport")
)

// A DialChecker is a Transport that can tell, without dialing, that it
// cannot dial an endpoint: CanDial returns the cause (wrapping
// ErrFamilyUnsupported for an address family it lacks), or nil when Dial
// may be tried. Happy Eyeballs asks the transport of the endpoint and of
// each endpoint it wraps, and skips the endpoint when one says no.
// CanDial must be cheap and safe for concurrent use.
type DialChecker interface {
	CanDial(ep endpoint.Endpoint) error
}

// A FamilyStack is a Stack that dials only some address families: the
// TCP transport skips the endpoints of the others (TCPTransport.CanDial).
// family is "4" or "6", as endpoint.Family says. A Stack without this
// method dials both.
type FamilyStack interface {
	SupportsFamily(family string) bool
}

// cannotDial returns why the transports of ep and of the endpoints it
// wraps cannot dial it, or nil.
func (c *Conduit) cannotDial(ep endpoint.Endpoint) error {
	for e := ep; e != nil; e = endpoint.Unwrap(e) {
		t, ok := c.reg.Transport(e.Kind())
		if !ok {
			return nil // Dial reports the missing transport
		}
		if dc, ok := t.(DialChecker); ok {
			if err := dc.CanDial(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// familyFilter is the address family a dial is restricted to: "" for
// any, "4" or "6" for DialContext's "tcp4" and "tcp6".
type familyFilter string

// allows reports whether ep may be dialed.
func (f familyFilter) allows(ep endpoint.Endpoint) bool {
	return f == "" || endpoint.Family(ep) == string(f)
}

// noneError is the cause of a restricted dial that found nothing of its
// family.
func (f familyFilter) noneError() error {
	return &noSuitableError{network: "tcp" + string(f)}
}

// noSuitableError is ErrNoSuitableAddress for one network.
type noSuitableError struct{ network string }

func (e *noSuitableError) Error() string {
	return "conduit: no suitable address found: no IPv" + e.network[len("tcp"):] + " endpoint for " + e.network
}

func (e *noSuitableError) Unwrap() error { return ErrNoSuitableAddress }
