//go:build linux

package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"golang.org/x/sys/unix"
)

// quickAckListener's connections acknowledge every segment at once
// (TCP_QUICKACK before each read). tinyproxy relays without TCP_NODELAY:
// the client's TLS Finished and its request, two small writes, reach the
// target as two segments, the second held by Nagle's algorithm until the
// first is acknowledged, which a delayed ACK puts off by 40 ms on most
// requests (both sides alike). Acknowledging at once takes that noise
// out of the comparison.
type quickAckListener struct{ net.Listener }

func (l quickAckListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &quickAckConn{TCPConn: tc}, nil
	}
	return c, nil
}

type quickAckConn struct{ *net.TCPConn }

func (c *quickAckConn) Read(b []byte) (int, error) {
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1) })
	}
	return c.TCPConn.Read(b)
}

// BenchmarkHTTPConnectTinyproxy: one HTTPS request through tinyproxy to
// a loopback TLS server, on a new tunnel each time (dial the proxy,
// CONNECT, TLS 1.3 handshake, GET, a 2-byte body, close). Both sides run
// the same http.Transport (DisableKeepAlives) and TLS: "ours" dials
// through HTTPConnect in its DialContext, "nethttp" is net/http's own
// CONNECT (Transport.Proxy). -count runs one side's repetitions before
// the other's: interleave them with a loop (docs/performance.md):
//
//	for i in $(seq 10); do go test -run '^$' -bench HTTPConnect -benchtime 400x ./proxy; done | go run ./internal/benchratio
func BenchmarkHTTPConnectTinyproxy(b *testing.B) {
	p := getHCPKI(b)
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	target.TLS = &tls.Config{Certificates: []tls.Certificate{p.proxy}} // for 127.0.0.1
	target.Listener = quickAckListener{target.Listener}
	target.StartTLS()
	defer target.Close()
	port := target.Listener.Addr().(*net.TCPAddr).Port
	tp := hcTinyproxy(b, tinyproxyConfig{connectPorts: []int{port}})
	tlsConfig := &tls.Config{RootCAs: p.ca.Pool, MinVersion: tls.VersionTLS13}

	var d net.Dialer
	ours := &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   tlsConfig,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "tcp", tp)
			if err != nil {
				return nil, err
			}
			tc, err := HTTPConnect(ctx, c, addr, nil)
			if err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		},
	}
	theirs := &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   tlsConfig,
		Proxy:             http.ProxyURL(&url.URL{Scheme: "http", Host: tp}),
	}
	defer ours.CloseIdleConnections()
	defer theirs.CloseIdleConnections()
	sides := []struct {
		name string
		rt   *http.Transport
	}{{"ours", ours}, {"nethttp", theirs}}
	get := func(b *testing.B, client *http.Client) {
		resp, err := client.Get(target.URL + "/")
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "ok" {
			b.Fatalf("body %q, %v", body, err)
		}
	}
	// Warm up both sides (and tinyproxy's threads) before either is
	// measured, so the first does not pay for the start.
	for range 20 {
		for _, side := range sides {
			get(b, &http.Client{Transport: side.rt})
		}
	}
	for _, side := range sides {
		b.Run(side.name, func(b *testing.B) {
			client := &http.Client{Transport: side.rt}
			for b.Loop() {
				get(b, client)
			}
		})
	}
}
