// Package proxy speaks both sides of the two proxy protocols that matter,
// over any net.Conn: SOCKS5 (RFC 1928, with the username/password
// authentication of RFC 1929) and HTTP CONNECT (RFC 9110 §9.3.6, with
// Basic proxy authentication), and chooses proxies from the environment
// (FromEnvironment: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY).
//
// The client functions (SOCKS5, HTTPConnect) run one hop's handshake on a
// connection the caller dialed, so a hop can run over TCP, TLS, a Unix
// socket, vchan or the previous hop of a chain; conduit composes them
// into chains (endpoint.Proxy, docs/proxies.md). Server serves either
// protocol on accepted connections, dialing destinations through a
// DialFunc of the caller's (conduit's, so a proxy reaches Unix, vchan and
// SRV services too).
//
// Errors: a proxy's refusal is a *SOCKSError or an *HTTPError carrying
// the reply code or status; both unwrap to the shared causes
// (endpoint.ErrRefused, endpoint.ErrTimeout) where one applies, and to
// ErrAuth or ErrNotAllowed. A peer that breaks the protocol gives an
// error wrapping ErrProtocol.
package proxy
