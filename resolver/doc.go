// Package resolver turns URIs into endpoints: the concrete places a
// transport dials or listens on.
//
// A URI names a transport (tcp://, tls://, unix://, tls+unix://, vchan://,
// tls+vchan://) or a service (https://, ssh://, …, a table the Config can
// extend); docs/uris.md is the grammar, with examples. An Endpoint is a
// value (TCP, Unix, VchanDirect, VchanNamed, or TLS over any of them) whose
// Kind picks the transport.
//
//	r, err := resolver.New(nil) // system hosts file and resolver
//	if err != nil {
//		return err
//	}
//	defer r.Close()
//	eps, err := r.Resolve(ctx, "https://example.com/")
//	// eps: tls://example.com@tcp://example.com=[2001:db8::10]:443, …
//
// Errors are *URIError values matching ErrMalformedURI, ErrUnknownScheme
// or ErrNotFound with errors.Is.
package resolver
