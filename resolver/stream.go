package resolver

import (
	"context"

	"github.com/conduit-go/conduit/endpoint"
)

// A Batch is one answer of a streamed resolution (ResolveStream): the
// endpoints one lookup gave (the AAAA answer of a host, its A answer, the
// addresses of one SRV target, the hints of an HTTPS record…).
type Batch struct {
	// Endpoints are new endpoints, in the order of their lookup: the
	// dialer sorts addresses (RFC 6724), since the order depends on the
	// source addresses of the stack that dials.
	Endpoints []endpoint.Endpoint
	// Group ranks the SRV target or HTTPS/SVCB alternative the endpoints
	// belong to, in priority order: a dialer races the groups in
	// increasing order, with Happy Eyeballs inside each. 0 for a plain
	// host name.
	Group int
	// Replaces, when true, says that Endpoints replace the endpoints
	// sent earlier for the same Group that came from hints (an HTTPS
	// record's ipv4hint/ipv6hint, RFC 9460 §7.3) rather than adding to
	// them.
	Replaces bool
}

// A Streamer resolves a URI and delivers its endpoints as the lookups
// answer, so that a dialer can start before the slowest answer (Happy
// Eyeballs v2, RFC 8305 §3). *URIResolver is one.
type Streamer interface {
	// ResolveStream calls send with each batch as it becomes known,
	// never from two goroutines at once, and returns when the resolution
	// is complete: nil if at least one endpoint was sent, else the error
	// Resolve would have returned. It returns ctx's error when ctx ends
	// first; send is never called after ResolveStream returns. send must
	// not block for long.
	ResolveStream(ctx context.Context, uri string, send func(Batch)) error
}
