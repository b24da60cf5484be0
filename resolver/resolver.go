package resolver

import (
	"context"

	"github.com/conduit-go/conduit/endpoint"
)

// A Resolver turns a URI into the endpoints to try, in dial order.
//
// Resolve never returns an empty list with a nil error: a URI that
// resolves to nothing is an error. Implementations are safe for concurrent
// use. ctx bounds the whole resolution.
type Resolver interface {
	Resolve(ctx context.Context, uri string) ([]endpoint.Endpoint, error)
}

// ResolverFunc adapts a function to the Resolver interface.
type ResolverFunc func(ctx context.Context, uri string) ([]endpoint.Endpoint, error)

// Resolve calls f(ctx, uri).
func (f ResolverFunc) Resolve(ctx context.Context, uri string) ([]endpoint.Endpoint, error) {
	return f(ctx, uri)
}
