package tlsflow

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
)

// noSessions is a client session cache that keeps nothing, so every
// handshake is a full one.
type noSessions struct{}

func (noSessions) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (noSessions) Put(string, *tls.ClientSessionState)        {}

// side is one way of running a handshake: ours or raw crypto/tls.
type side struct {
	name   string
	client func(ctx context.Context, c net.Conn) (net.Conn, error)
	server func(ctx context.Context, c net.Conn) (net.Conn, error)
}

func sides(b *testing.B) []side {
	p := getPKI(b)
	ccfg := &Config{ServerName: "example.test", RootCAs: p.caPool, MinVersion: tls.VersionTLS13, SessionCache: noSessions{}}
	scfg := &Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS13}
	// Both clients offer session tickets (so both servers issue them) but
	// keep none, so every handshake is a full one doing the same work.
	rawC := &tls.Config{ServerName: "example.test", RootCAs: p.caPool, MinVersion: tls.VersionTLS13, ClientSessionCache: noSessions{}}
	rawS := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS13}
	rawHS := func(tc *tls.Conn, ctx context.Context) (net.Conn, error) {
		if err := tc.HandshakeContext(ctx); err != nil {
			tc.Close()
			return nil, err
		}
		return tc, nil
	}
	return []side{
		{
			name:   "tlsflow",
			client: func(ctx context.Context, c net.Conn) (net.Conn, error) { return Client(ctx, c, ccfg) },
			server: func(ctx context.Context, c net.Conn) (net.Conn, error) { return Server(ctx, c, scfg) },
		},
		{
			name:   "crypto-tls",
			client: func(ctx context.Context, c net.Conn) (net.Conn, error) { return rawHS(tls.Client(c, rawC), ctx) },
			server: func(ctx context.Context, c net.Conn) (net.Conn, error) { return rawHS(tls.Server(c, rawS), ctx) },
		},
	}
}

func loopback(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return ln
}

// BenchmarkBulk measures 64 KiB writes over loopback TCP.
func BenchmarkBulk(b *testing.B) {
	for _, s := range sides(b) {
		b.Run(s.name, func(b *testing.B) {
			ctx := context.Background()
			ln := loopback(b)
			drained := make(chan error, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					drained <- err
					return
				}
				c, err := s.server(ctx, raw)
				if err != nil {
					drained <- err
					return
				}
				_, err = io.Copy(io.Discard, c)
				c.Close()
				drained <- err
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			c, err := s.client(ctx, raw)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c.Close()
			if err := <-drained; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkHandshake measures full TLS 1.3 handshakes (ECDSA P-256) over
// loopback TCP, connection setup included.
func BenchmarkHandshake(b *testing.B) {
	for _, s := range sides(b) {
		b.Run(s.name, func(b *testing.B) {
			ctx := context.Background()
			ln := loopback(b)
			done := make(chan error, 1)
			go func() {
				for {
					raw, err := ln.Accept()
					if err != nil {
						done <- nil
						return
					}
					c, err := s.server(ctx, raw)
					if err != nil {
						done <- err
						return
					}
					c.(interface{ NetConn() net.Conn }).NetConn().Close()
				}
			}()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				raw, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				c, err := s.client(ctx, raw)
				if err != nil {
					b.Fatal(err)
				}
				if c.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState().DidResume {
					b.Fatal("resumed")
				}
				raw.Close()
			}
			b.StopTimer()
			ln.Close()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
