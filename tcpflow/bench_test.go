package tcpflow_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/conduit-go/conduit/tcpflow"
)

// The benchmarks run tcpflow's kernel backend and a raw *net.TCPConn in
// the same run, as sibling sub-benchmarks; internal/benchratio turns the
// output into ratios (see docs/performance.md).

// pair returns the two ends of one loopback connection, made by tcpflow
// (ours) or by package net (raw).
func pair(b *testing.B, ours bool) (client, server net.Conn) {
	b.Helper()
	ctx := context.Background()
	if ours {
		k := tcpflow.NewKernel(nil)
		b.Cleanup(func() { k.Close() })
		ln, err := k.ListenFlows(ctx, netip.MustParseAddrPort("127.0.0.1:0"), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		c, err := k.CreateConnection(ctx, ln.Addr().(*net.TCPAddr).AddrPort(), tcpflow.DialOptions{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.AcceptFlow()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close(); s.Close() })
		return c, s
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

var sides = []struct {
	name string
	ours bool
}{{"tcpflow", true}, {"net", false}}

// BenchmarkBulk sends 64 KiB writes one way.
func BenchmarkBulk(b *testing.B) {
	for _, side := range sides {
		b.Run(side.name, func(b *testing.B) {
			c, s := pair(b, side.ours)
			done := make(chan struct{})
			go func() { io.Copy(io.Discard, s); close(done) }()
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.(interface{ CloseWrite() error }).CloseWrite()
			<-done
		})
	}
}

// BenchmarkPingPong bounces one byte: ours with WriteNodelay, raw net
// with Write (Go turns Nagle off by default).
func BenchmarkPingPong(b *testing.B) {
	for _, side := range sides {
		b.Run(side.name, func(b *testing.B) {
			c, s := pair(b, side.ours)
			write := func(conn net.Conn, p []byte) (int, error) { return conn.Write(p) }
			if side.ours {
				write = func(conn net.Conn, p []byte) (int, error) { return conn.(tcpflow.Flow).WriteNodelay(p) }
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 1)
				for {
					if _, err := s.Read(buf); err != nil {
						return
					}
					if _, err := write(s, buf); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := write(c, buf); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c.Close()
			<-done
		})
	}
}

// BenchmarkWritev sends sixteen 256-byte buffers per operation: one
// Writev of ours against a loop of Writes on a raw connection.
func BenchmarkWritev(b *testing.B) {
	bufs := make(net.Buffers, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 256)
	}
	for _, side := range []struct {
		name string
		ours bool
	}{{"writev", true}, {"write-loop", false}} {
		b.Run(side.name, func(b *testing.B) {
			c, s := pair(b, side.ours)
			done := make(chan struct{})
			go func() { io.Copy(io.Discard, s); close(done) }()
			b.SetBytes(16 * 256)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if side.ours {
					if _, err := c.(tcpflow.Flow).WritevNodelay(bufs); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for _, buf := range bufs {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
			}
			c.(interface{ CloseWrite() error }).CloseWrite()
			<-done
		})
	}
}
