package conduit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/devpki"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/proxy"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/tlsflow"
	"github.com/conduit-go/conduit/vchan"
)

// tlsEchoServer is a crypto/tls echo server on loopback that records the
// server names its clients sent.
type tlsEchoServer struct {
	port int
	mu   sync.Mutex
	sni  []string
}

func startTLSEcho(t *testing.T, cert tls.Certificate) *tlsEchoServer {
	t.Helper()
	s := &tlsEchoServer{}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			s.sni = append(s.sni, hi.ServerName)
			s.mu.Unlock()
			return nil, nil
		},
	})
	require.NoError(t, err)
	s.port = ln.Addr().(*net.TCPAddr).Port
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
				c.(*tls.Conn).CloseWrite()
			}()
		}
	}()
	return s
}

func (s *tlsEchoServer) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sni...)
}

// echoThrough writes n random bytes on f, half-closes, and checks that
// the same bytes come back.
func echoThrough(t *testing.T, f Flow, n int) {
	t.Helper()
	echoN(t, f, n, true)
}

// echoN writes n random bytes on f and checks that the same n bytes come
// back; with halfClose it half-closes after writing and expects the
// echo's end after them. Without, it stops reading after n bytes: for
// paths through tinyproxy, which after a client's half-close passes it on
// but then ends the tunnel before the rest of the answer (seen: 1.4-2.0 of
// 2 MiB echoed, the stream ended cleanly).
func echoN(t *testing.T, f Flow, n int, halfClose bool) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := f.Write(data)
		if err == nil && halfClose {
			err = f.CloseWrite()
		}
		errc <- err
	}()
	h := sha256.New()
	var r io.Reader = f
	if !halfClose {
		r = io.LimitReader(f, int64(n))
	}
	got, err := io.Copy(h, r)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.Equal(t, int64(n), got)
	require.Equal(t, sha256.Sum256(data), [32]byte(h.Sum(nil)), "the bytes that came back differ")
}

// TestProxyChainDantedTinyproxy: TLS to a server through SOCKS5 at danted,
// then HTTP CONNECT at tinyproxy, 8 MiB byte-exact, with the target's name
// in SNI and verified end to end.
func TestProxyChainDantedTinyproxy(t *testing.T) {
	ca, err := devpki.NewAuthority("proxy chain CA")
	require.NoError(t, err)
	cert, err := ca.Issue("chain.test")
	require.NoError(t, err)
	srv := startTLSEcho(t, cert)
	danted := testutil.Danted(t)
	tiny := testutil.Tinyproxy(t, testutil.TinyproxyConfig{ConnectPorts: []uint16{uint16(srv.port)}})

	var mu sync.Mutex
	var events []string
	trace := &Trace{
		ProxyConnectDone: func(hop endpoint.Proxy, err error) {
			mu.Lock()
			events = append(events, fmt.Sprintf("connect %s %s %v", hop.Protocol, hop.Target, err))
			mu.Unlock()
		},
		ProxyHandshakeDone: func(hop endpoint.Proxy, err error) {
			mu.Lock()
			events = append(events, fmt.Sprintf("handshake %s %s %v", hop.Protocol, hop.Target, err))
			mu.Unlock()
		},
	}
	c := New(&Config{TLS: TLSConfig{Client: &tlsflow.Config{RootCAs: ca.Pool}}})
	defer c.Close()
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.port))
	uri := "tls://" + target + "?sni=chain.test&proxy=socks5://" + danted.String() + "&proxy=http://" + tiny.String()
	ctx := WithTrace(testCtx(t), trace)
	f, err := c.Dial(ctx, uri)
	require.NoError(t, err)
	defer f.Close()
	echoN(t, f, 8<<20, false) // tinyproxy loses the tail of an answer after a half-close
	assert.Equal(t, []string{"chain.test"}, srv.names())
	mu.Lock()
	assert.Equal(t, []string{
		"connect socks5 " + tiny.String() + " <nil>", // the first hop's proxy: danted, directly
		"handshake socks5 " + tiny.String() + " <nil>",
		"connect http " + target + " <nil>",
		"handshake http " + target + " <nil>",
	}, events)
	mu.Unlock()
}

// TestProxyErrorsNameTheHop: a refusal by either proxy of a chain is a
// typed error that says which hop.
func TestProxyErrorsNameTheHop(t *testing.T) {
	closed := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}()
	danted := testutil.Danted(t)
	tiny := testutil.Tinyproxy(t, testutil.TinyproxyConfig{ConnectPorts: []uint16{443}})
	c := New(nil)
	defer c.Close()
	ctx := testCtx(t)

	// danted: the destination refuses the connection.
	_, err := c.Dial(ctx, fmt.Sprintf("tcp://127.0.0.1:%d?proxy=socks5://%s", closed, danted))
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrRefused)
	var pe *ProxyError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "handshake", pe.Op)
	assert.Equal(t, endpoint.ProxySOCKS5, pe.Hop.Protocol)
	var se *proxy.SOCKSError
	assert.ErrorAs(t, err, &se)

	// tinyproxy, second hop: the port is not one CONNECT may reach.
	_, err = c.Dial(ctx, fmt.Sprintf("tcp://127.0.0.1:%d?proxy=socks5://%s&proxy=http://%s", closed, danted, tiny))
	require.Error(t, err)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, endpoint.ProxyHTTP, pe.Hop.Protocol)
	var he *proxy.HTTPError
	require.ErrorAs(t, err, &he)
	assert.Equal(t, 403, he.StatusCode)
	assert.ErrorIs(t, err, proxy.ErrNotAllowed)
	assert.Contains(t, err.Error(), "proxy http "+tiny.String()+" → 127.0.0.1:"+strconv.Itoa(closed))

	// An unreachable first proxy: a connect error of that hop.
	_, err = c.Dial(ctx, fmt.Sprintf("tcp://127.0.0.1:80?proxy=socks5://127.0.0.1:%d", closed))
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "connect", pe.Op)
	assert.ErrorIs(t, err, ErrRefused)
	assert.Equal(t, fmt.Sprintf("conduit: dial tcp://127.0.0.1:80?proxy=socks5://127.0.0.1:%d (socks5://127.0.0.1:80@tcp://127.0.0.1:%d): proxy socks5 127.0.0.1:%d: connection refused", closed, closed, closed),
		err.Error(), "one line, each layer said once")

	// A password in the URI is not in the message.
	_, err = c.Dial(ctx, fmt.Sprintf("tcp://127.0.0.1:80?sni=x&proxy=socks5://alice:s3cret@127.0.0.1:%d", closed))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
	assert.Contains(t, err.Error(), "proxy=socks5://alice:xxxxx@127.0.0.1:")
}

// TestServeProxySOCKS5: our SOCKS5 listener dials destinations through
// the Conduit, so a name it is asked for resolves by the Conduit's
// resolver; curl-style clients are tested in package proxy.
func TestServeProxy(t *testing.T) {
	ca, err := devpki.NewAuthority("serve proxy CA")
	require.NoError(t, err)
	cert, err := ca.Issue("served.test")
	require.NoError(t, err)
	srv := startTLSEcho(t, cert)
	for _, proto := range []string{ProxySchemeSOCKS5, ProxySchemeConnect} {
		t.Run(proto, func(t *testing.T) {
			server := proxyTestConduit(t, nil) // a.test, b.test, example.test
			pl, err := ParseProxyListen(proto + "://u:pw@127.0.0.1:0")
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(testCtx(t))
			ln, err := server.Listen(ctx, pl.URI)
			require.NoError(t, err)
			done := make(chan error, 1)
			go func() { done <- server.ServeProxy(ctx, ln, pl.Protocol, &proxy.Server{Auth: pl.Auth}, 0) }()
			defer func() { cancel(); require.NoError(t, <-done) }()

			scheme := map[string]string{ProxySchemeSOCKS5: "socks5h", ProxySchemeConnect: "http"}[proto]
			addr := ln.Addr().String()
			c := New(&Config{TLS: TLSConfig{Client: &tlsflow.Config{RootCAs: ca.Pool}}})
			defer c.Close()
			// local.test is 127.0.0.1 in the server's table only: the
			// client cannot resolve it, the proxy can.
			uri := fmt.Sprintf("tls://local.test:%d?sni=served.test&proxy=%s://u:pw@%s", srv.port, scheme, addr)
			f, err := c.Dial(testCtx(t), uri)
			require.NoError(t, err)
			echoThrough(t, f, 1<<20)
			f.Close()

			_, err = c.Dial(testCtx(t), fmt.Sprintf("tls://local.test:%d?sni=served.test&proxy=%s://u:wrong@%s", srv.port, scheme, addr))
			require.ErrorIs(t, err, proxy.ErrAuth)
		})
	}
}

// TestServeProxySafeDefault: a proxy that other machines can reach (here
// vchan, which other domains reach) without authentication or an
// allow-list refuses to start; with either it serves.
func TestServeProxySafeDefault(t *testing.T) {
	c := New(&Config{Vchan: &vchan.Config{Dir: t.TempDir()}})
	defer c.Close()
	ctx := testCtx(t)
	ln, err := c.Listen(ctx, "vchan://0/socks")
	require.NoError(t, err)
	err = c.ServeProxy(ctx, ln, ProxySchemeSOCKS5, &proxy.Server{}, 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs authentication or a destination allow-list")

	ln, err = c.Listen(ctx, "tcp://127.0.0.1:0")
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.ServeProxy(sctx, ln, ProxySchemeSOCKS5, &proxy.Server{}, 0) }()
	cancel()
	require.NoError(t, <-done)
}

// TestProxyHTTPSProxyTLSInTLS: an https:// proxy (our CONNECT listener
// behind TLS) and TLS to the destination inside its tunnel: each session
// verified with its own name.
func TestProxyHTTPSProxyTLSInTLS(t *testing.T) {
	ca, err := devpki.NewAuthority("tls in tls CA")
	require.NoError(t, err)
	proxyCert, err := ca.Issue("proxy.test")
	require.NoError(t, err)
	destCert, err := ca.Issue("dest.test")
	require.NoError(t, err)
	dest := startTLSEcho(t, destCert)

	server := New(&Config{TLS: TLSConfig{Server: &tlsflow.Config{Certificates: []tls.Certificate{proxyCert}}}})
	defer server.Close()
	pl, err := ParseProxyListen("connect+tls://127.0.0.1:0?sni=proxy.test")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(testCtx(t))
	ln, err := server.Listen(ctx, pl.URI)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- server.ServeProxy(ctx, ln, pl.Protocol, nil, 0) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	c := New(&Config{TLS: TLSConfig{Client: &tlsflow.Config{RootCAs: ca.Pool}}})
	defer c.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	// The proxy's certificate names proxy.test: the client resolves that
	// name here (socks5 would too); hosts come from the URI's sni.
	uri := fmt.Sprintf("tls://127.0.0.1:%d?sni=dest.test&proxy=https+tcp://127.0.0.1:%s", dest.port, port)
	_, err = c.Dial(testCtx(t), uri)
	require.ErrorIs(t, err, tlsflow.ErrWrongName, "the proxy's certificate is for proxy.test, not 127.0.0.1")

	c2 := proxyTLSConduit(t, ca)
	f, err := c2.Dial(testCtx(t), fmt.Sprintf("tls://127.0.0.1:%d?sni=dest.test&proxy=https://proxy.test:%s", dest.port, port))
	require.NoError(t, err)
	defer f.Close()
	echoThrough(t, f, 1<<20)
	assert.Equal(t, []string{"dest.test"}, dest.names())
}

// proxyTLSConduit trusts ca and resolves proxy.test to 127.0.0.1.
func proxyTLSConduit(t *testing.T, ca *devpki.Authority) *Conduit {
	t.Helper()
	res, err := resolver.New(&resolver.Config{
		HostsFile: "/nonexistent",
		Hosts:     map[string][]netip.Addr{"proxy.test": {netip.MustParseAddr("127.0.0.1")}},
		LookupHost: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return nil, &resolverNotFound{host}
		},
	})
	require.NoError(t, err)
	c := New(&Config{Resolver: res, TLS: TLSConfig{Client: &tlsflow.Config{RootCAs: ca.Pool}}})
	t.Cleanup(func() { c.Close(); res.Close() })
	return c
}
