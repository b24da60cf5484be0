// Package tlsflow runs TLS over any net.Conn flow (TCP, Unix sockets,
// vchan, the userspace stack, net.Pipe) with secure defaults: TLS 1.2 or
// later, verification against the system roots, session resumption through
// a per-Config cache, optional public key pinning, and handshakes bounded by
// a context.
//
//	cfg := &tlsflow.Config{ServerName: "example.test", NextProtos: []string{"h2"}}
//	raw, err := net.Dial("tcp", "example.test:443")
//	if err != nil { ... }
//	conn, err := tlsflow.Client(ctx, raw, cfg) // closes raw on failure
//	if errors.Is(err, tlsflow.ErrUntrusted) { ... }
//
// Servers call Server per connection, or wrap a listener: with
// NewHandshakeListener, whose Accept returns only connections that have
// completed their handshake (each runs in a goroutine of its own under a
// deadline, with a bound on how many are unfinished), or with NewListener,
// whose Conns handshake lazily on first use. Handshake failures are
// *HandshakeError values classified by Kind (ErrUntrusted, ErrWrongName,
// ErrExpired, ErrHandshakeTimeout, ErrPinMismatch, ErrPeerAlert,
// ErrECHRejected) that unwrap
// to crypto/tls's, crypto/x509's or the context's own error.
//
// Conn.Read returns io.EOF only after the peer's close_notify: a stream
// whose inner connection ends without it gives ErrTruncated (which also
// matches io.ErrUnexpectedEOF), so a cut-short transfer is never taken for
// a complete one.
//
// Config.Base plugs in any crypto/tls setting (VerifyConnection,
// GetClientCertificate, a go-spiffe configuration): tlsflow's defaults
// fill only what it leaves zero, and its TLS 1.2 floor and pins stay.
//
// Encrypted Client Hello: GenerateECHKey makes a server key and the
// ECHConfigList clients need (an HTTPS record's ech value):
//
//	key, list, err := tlsflow.GenerateECHKey("public.example", 1)
//	srv := &tlsflow.Config{Certificates: certs, ECHKeys: []tls.EncryptedClientHelloKey{key}}
//	cli := &tlsflow.Config{ServerName: "hidden.example", ECHConfigList: list}
//	// conn.ConnectionState().ECHAccepted; a rejection is ErrECHRejected
//
// Reloader serves a key pair from files and picks up renewed certificates,
// for servers and clients; NewCertPoolFromFile loads CA bundles strictly.
package tlsflow
