package conduit

import (
	"context"
	"net"
	"testing"
)

// acceptAndClose serves a loopback TCP listener that closes every
// connection it accepts, until the benchmark ends.
func acceptAndClose(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	b.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// BenchmarkDial compares conduit.Dial of a tcp:// URI with
// net.Dialer.DialContext of the same address: connections per second,
// dial and close, one caller.
//
// Each side gets a listener of its own, so the TIME-WAIT connections one
// leaves behind do not weigh on the other.
func BenchmarkDial(b *testing.B) {
	ctx := context.Background()
	b.Run("conduit", func(b *testing.B) {
		addr := acceptAndClose(b)
		c := New(nil)
		defer c.Close()
		uri := "tcp://" + addr
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			f, err := c.Dial(ctx, uri)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	})
	b.Run("net", func(b *testing.B) {
		addr := acceptAndClose(b)
		var d net.Dialer
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	})
}
