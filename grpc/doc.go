// Package conduitgrpc plugs conduit into gRPC: a resolver.Builder that
// resolves conduit URIs and follows their changes (Resolver.Watch: SRV
// records, TTLs, Consul's TTL 0), a context dialer through a Conduit
// (Unix sockets, vchan, TLS over anything, the userspace TCP stack),
// transport credentials for conduit's TLS, and a balancer with SRV
// semantics (priorities, weights, fail-over).
//
// It is a module of its own, so that users of conduit's core never
// download gRPC.
//
//	conduitgrpc.RegisterBalancer() // once, before any channel
//	b, err := conduitgrpc.NewBuilder(nil)
//	if err != nil { … }
//	defer b.Close()
//	conn, err := grpc.NewClient("conduit:///https+srv://api.prod.svc.cluster.local",
//		append(b.DialOptions(),
//			grpc.WithTransportCredentials(credentials.NewTLS(nil)),
//			grpc.WithDefaultServiceConfig(conduitgrpc.ServiceConfig))...)
//
// See docs/grpc-http.md for what the resolver pushes, the two ways of
// running TLS and the balancer's rules.
package conduitgrpc
