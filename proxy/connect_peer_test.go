package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
)

// The client through tinyproxy to a loopback echo server: byte-exact
// several MB; with BasicAuth the right password works and a wrong one or
// none is ErrAuth; a port not in ConnectPort is ErrNotAllowed.
func TestHTTPConnectTinyproxy(t *testing.T) {
	echo := hcEcho(t)
	other := hcEcho(t)
	t.Run("no auth", func(t *testing.T) {
		tp := hcTinyproxy(t, tinyproxyConfig{connectPorts: []int{echo.Port()}})
		c, err := hcDialProxy(t, tp, echo.Addr(), nil)
		require.NoError(t, err)
		defer c.Close()
		hcExchange(t, c, hcRandom(t, 8<<20), false)

		_, err = hcDialProxy(t, tp, other.Addr(), nil)
		var he *HTTPError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, 403, he.StatusCode)
		assert.ErrorIs(t, err, ErrNotAllowed)
	})
	t.Run("basic auth", func(t *testing.T) {
		tp := hcTinyproxy(t, tinyproxyConfig{connectPorts: []int{echo.Port()}, auth: &Auth{"user", "s3cret"}})
		c, err := hcDialProxy(t, tp, echo.Addr(), &Auth{"user", "s3cret"})
		require.NoError(t, err)
		defer c.Close()
		hcExchange(t, c, hcRandom(t, 4<<20), false)

		// tinyproxy 1.11 answers missing credentials with 407 and wrong
		// ones with 401.
		for _, tc := range []struct {
			auth *Auth
			code int
		}{{&Auth{"user", "wrong"}, 401}, {&Auth{"other", "s3cret"}, 401}, {nil, 407}} {
			_, err = hcDialProxy(t, tp, echo.Addr(), tc.auth)
			var he *HTTPError
			require.ErrorAs(t, err, &he, "%v", tc.auth)
			assert.Equal(t, tc.code, he.StatusCode)
			assert.ErrorIs(t, err, ErrAuth)
		}
	})
}

// The client through squid: with and without Basic authentication (the
// basic_ncsa_auth helper with an apr1 password file), a port squid's
// rules refuse (403), and a destination nothing listens on (squid's 503,
// ERR_CONNECT_FAIL: endpoint.ErrRefused).
func TestHTTPConnectSquid(t *testing.T) {
	echo := hcEcho(t)
	closed := int(testutil.FreePort(t)) // nothing listens there
	other := hcEcho(t)
	sslPorts := []int{echo.Port(), closed}
	t.Run("no auth", func(t *testing.T) {
		sq := hcSquid(t, squidConfig{sslPorts: sslPorts})
		c, err := hcDialProxy(t, sq.http, echo.Addr(), nil)
		require.NoError(t, err)
		defer c.Close()
		hcExchange(t, c, hcRandom(t, 8<<20), false) // squid ends the whole tunnel at a half-close

		_, err = hcDialProxy(t, sq.http, other.Addr(), nil)
		var he *HTTPError
		require.ErrorAs(t, err, &he)
		assert.Equal(t, 403, he.StatusCode)
		assert.ErrorIs(t, err, ErrNotAllowed)

		_, err = hcDialProxy(t, sq.http, "127.0.0.1:"+strconv.Itoa(closed), nil)
		require.ErrorAs(t, err, &he)
		assert.Equal(t, 503, he.StatusCode)
		assert.ErrorIs(t, err, endpoint.ErrRefused)
	})
	t.Run("basic auth", func(t *testing.T) {
		sq := hcSquid(t, squidConfig{sslPorts: sslPorts, auth: &Auth{"alice", "pa55word"}})
		c, err := hcDialProxy(t, sq.http, echo.Addr(), &Auth{"alice", "pa55word"})
		require.NoError(t, err)
		defer c.Close()
		hcExchange(t, c, hcRandom(t, 2<<20), false)

		for _, a := range []*Auth{{"alice", "wrong"}, nil} {
			_, err = hcDialProxy(t, sq.http, echo.Addr(), a)
			var he *HTTPError
			require.ErrorAs(t, err, &he, "%v", a)
			assert.Equal(t, 407, he.StatusCode)
			assert.ErrorIs(t, err, ErrAuth)
		}
	})
}

// hcTLSInTLS dials proxyAddr with TLS (checking the proxy's certificate
// for 127.0.0.1), runs CONNECT to target inside, then TLS to target.test
// inside the tunnel, and exchanges data byte-exact.
func hcTLSInTLS(t *testing.T, proxyAddr, target string, sni <-chan string) {
	p := getHCPKI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d tls.Dialer
	d.Config = &tls.Config{ServerName: "127.0.0.1", RootCAs: p.ca.Pool, MinVersion: tls.VersionTLS12}
	outer, err := d.DialContext(ctx, "tcp", proxyAddr)
	require.NoError(t, err)
	defer outer.Close()
	tunnel, err := HTTPConnect(ctx, outer, target, nil)
	require.NoError(t, err)
	inner := tls.Client(tunnel, hcTargetConfig(t))
	defer inner.Close()
	require.NoError(t, inner.HandshakeContext(ctx))
	assert.Equal(t, "target.test", <-sni)
	hcExchange(t, inner, hcRandom(t, 2<<20), false)
}

// TLS in TLS through squid's https_port: TLS to the proxy, CONNECT,
// then TLS to the target, whose certificate is checked.
func TestHTTPConnectTLSInTLSSquid(t *testing.T) {
	sni := make(chan string, 1)
	target := hcTLSEcho(t, sni)
	sq := hcSquid(t, squidConfig{sslPorts: []int{target.Port()}, https: true})
	hcTLSInTLS(t, sq.https, target.Addr(), sni)
}

// TLS in TLS through our Server behind tls.Listen.
func TestHTTPConnectTLSInTLSOurServer(t *testing.T) {
	sni := make(chan string, 1)
	target := hcTLSEcho(t, sni)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{getHCPKI(t).proxy}})
	require.NoError(t, err)
	s := &Server{Dial: hcDialTCP}
	srv := hcServe(t, ln, func(c net.Conn) { s.ServeHTTPConnect(context.Background(), c) })
	hcTLSInTLS(t, srv.Addr(), target.Addr(), sni)
}

// hcDialTCP is a Server's DialFunc over TCP.
func hcDialTCP(ctx context.Context, target string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", target)
}
