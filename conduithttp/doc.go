// Package conduithttp plugs conduit into net/http: an *http.Transport
// whose connections are conduit flows, request URLs for services that
// are not on TCP, and an http.Server on any conduit listener with HTTP/2
// over conduit's TLS.
//
//	c := conduit.New(nil)
//	client := conduithttp.NewClient(c, nil)
//	resp, err := client.Get("http+unix://%2Frun%2Fapp.sock/health")
//
// Request URLs, and the conduit URI each request's connection dials:
//
//	http://HOST:PORT/PATH           tcp://HOST:PORT (conduit's resolver: hosts, rewrites, DNS; Happy Eyeballs)
//	https://HOST:PORT/PATH          tls://HOST:PORT
//	http+srv://NAME/PATH            http+srv://NAME  (SRV records _http._tcp.NAME)
//	https+srv://NAME/PATH           https+srv://NAME (SRV records _https._tcp.NAME, TLS to NAME)
//	http+unix://%2FSOCKET/PATH      unix:///SOCKET   (the socket path percent-encoded as the host)
//	https+unix://%2FSOCKET/PATH     tls+unix:///SOCKET?sni=HOST
//	http+vchan://DOMAIN/PORT/PATH   vchan://DOMAIN/PORT (DOMAIN an id or a name; PORT the first path segment)
//	https+vchan://DOMAIN/PORT/PATH  tls+vchan://DOMAIN/PORT?sni=HOST
//
// The Host header of http+unix and http+vchan requests is the request's
// Host, else "localhost"; HTTPS verifies that name. Go's url.Parse
// refuses "%2F" in a host, so http+unix URLs must be parsed by ParseURL
// (NewRequest and Client do).
//
// TLS is crypto/tls's, run by this package over the raw conduit flow
// with the Transport's TLSClientConfig, so that net/http sees a
// *tls.Conn and negotiates HTTP/2 by ALPN; the server name is the one
// conduit's resolver gives the endpoint.
package conduithttp
