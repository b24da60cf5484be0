// Package conduit dials and serves URIs through pluggable transports.
//
// A URI (tcp://, tls://, unix://, tls+unix://, vchan://, tls+vchan://,
// srv://, https://, https+srv://, or a scheme of your own) is resolved to
// a list of endpoints (package resolver), and the endpoints are dialed
// through the transport registered for their kind, racing them with Happy
// Eyeballs (RFC 8305). The server side listens and serves by URI.
//
//	c := conduit.New(nil) // or: var c conduit.Conduit
//	defer c.Close()
//
//	go c.Serve(ctx, "tcp://127.0.0.1:7000", conduit.HandlerFunc(
//		func(ctx context.Context, f conduit.Flow) { io.Copy(f, f) }))
//
//	f, err := c.Dial(ctx, "tcp://localhost:7000")
//	if errors.Is(err, conduit.ErrRefused) {
//		// nothing listens there
//	}
//
// Flows are net.Conns that can also half-close (CloseWrite) and write
// several buffers at once (Writev); the built-in transports return richer
// types (tcpflow.Flow, *tlsflow.Conn, *vchan.Conn).
//
// Servers hold up against hostile clients: Serve retries temporary
// accept errors (EMFILE and the like) with a back-off, TLS handshakes run
// before Accept under a deadline and outside the connection limit
// (WithHandshakeTimeout, WithMaxHandshakes, WithMaxConns), and
// WithIdleTimeout ends flows that neither read nor write.
//
// Transports live in a Registry owned by the Conduits that use it: there
// is no global registration. NewDefaultRegistry holds the built-ins; add a
// custom transport with Registry.Register and its URI scheme with
// Registry.RegisterScheme (see examples/custom-transport).
package conduit
