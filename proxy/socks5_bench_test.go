package proxy

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	xproxy "golang.org/x/net/proxy"
)

// BenchmarkSOCKS5DialDanted: a TCP connection to danted, a SOCKS5
// CONNECT through it to a loopback listener, and close; ours against
// golang.org/x/net/proxy's SOCKS5 dialer, the same danted in the same
// run.
func BenchmarkSOCKS5DialDanted(b *testing.B) {
	target := socks5Serve(b, "tcp4", func(c net.Conn) {}).String() // accept and close
	danted := socks5Danted(b, socks5ClosedPort(b))
	ctx := context.Background()
	var d net.Dialer
	dial := func(b *testing.B) {
		c, err := d.DialContext(ctx, "tcp", danted)
		if err != nil {
			b.Fatal(err)
		}
		if err := SOCKS5(ctx, c, target, nil); err != nil {
			b.Fatal(err)
		}
		socks5CloseNow(c)
	}
	// Warm danted up (it starts its child processes on demand) so that
	// the first side measured does not pay for it.
	for range 300 {
		dial(b)
	}
	b.Run("ours", func(b *testing.B) {
		for b.Loop() {
			dial(b)
		}
	})
	b.Run("xnetproxy", func(b *testing.B) {
		d, err := xproxy.SOCKS5("tcp", danted, nil, &net.Dialer{})
		if err != nil {
			b.Fatal(err)
		}
		cd := d.(xproxy.ContextDialer)
		for b.Loop() {
			c, err := cd.DialContext(ctx, "tcp", target)
			if err != nil {
				b.Fatal(err)
			}
			socks5CloseNow(c)
		}
	})
}

// socks5CloseNow closes c with a reset, so that thousands of dials a
// second leave no TIME-WAIT behind to slow the next ones (both sides of
// a comparison close this way).
func socks5CloseNow(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

const socks5BulkSize = 64 << 20

// socks5Sink reads socks5BulkSize bytes, then answers one byte.
func socks5Sink(c net.Conn) {
	buf := make([]byte, 256<<10)
	for left := socks5BulkSize; left > 0; {
		n, err := c.Read(buf[:min(len(buf), left)])
		if err != nil {
			return
		}
		left -= n
	}
	c.Write([]byte{1})
}

// BenchmarkSOCKS5Bulk: 64 MiB from our client through a SOCKS5 proxy to
// a loopback sink, a new tunnel each time: through our Server, through
// microsocks and through danted, in the same run.
func BenchmarkSOCKS5Bulk(b *testing.B) {
	sink := socks5Serve(b, "tcp4", socks5Sink).String()
	ours, _ := socks5TestServer(b, &Server{Dial: socks5NetDial})
	proxies := []struct{ name, addr string }{
		{"ours", ours},
		{"microsocks", socks5Microsocks(b, "", "")},
		{"danted", socks5Danted(b, socks5ClosedPort(b))},
	}
	chunk := make([]byte, 1<<20)
	for _, p := range proxies {
		b.Run(p.name, func(b *testing.B) {
			b.SetBytes(socks5BulkSize)
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", p.addr)
				if err != nil {
					b.Fatal(err)
				}
				if err := SOCKS5(ctx, c, sink, nil); err != nil {
					b.Fatal(err)
				}
				cancel()
				for sent := 0; sent < socks5BulkSize; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				var ack [1]byte
				if _, err := io.ReadFull(c, ack[:]); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
