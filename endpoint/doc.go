// Package endpoint is conduit's endpoint model: the concrete places a URI
// resolves to and a transport dials or listens on. It depends on nothing
// but the standard library, so resolvers, transports and tools can share it.
//
// Each kind carries its own knowledge as methods: its URI form, its
// address family for Happy Eyeballs, its validation and how a listener's
// bound address is written back into it. Code that handles endpoints of
// any kind calls the functions of this package (URI, Family, Validate,
// Bind, Unwrap), which use those methods and fall back to sensible
// defaults for custom kinds that lack them; it never switches on kinds.
//
//	ep := endpoint.TLS{ServerName: "example.com",
//		Inner: endpoint.TCP{Host: "example.com", Addr: netip.MustParseAddrPort("192.0.2.1:443")}}
//	endpoint.URI(ep)    // "tls://192.0.2.1:443?sni=example.com"
//	endpoint.Family(ep) // "6" or "4": the inner address's family
//
// The built-in kinds are TCP, Unix, VchanDirect, VchanNamed and TLS (over
// any other endpoint). A custom transport defines its own type with Kind
// and String, and adds the optional methods (URIer, Familier, Validator,
// Binder, Wrapper) that apply to it.
package endpoint
