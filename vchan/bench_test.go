package vchan

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/conduit-go/conduit/internal/testutil"
)

// benchPairs are the transports compared in one run: a vchan over the
// shared-memory backend and a Unix stream socket, both between two
// goroutines of this process. The *2Proc benchmarks compare them (and
// TCP) between two processes, as the issue asks.
var benchPairs = []struct {
	name string
	pair func(b *testing.B) (a, c net.Conn)
}{
	{"vchan", func(b *testing.B) (net.Conn, net.Conn) {
		srv, cli := shmPair(b, &Config{Dir: testStore(b)})
		return srv, cli
	}},
	{"unix", unixPair},
}

func unixPair(b *testing.B) (net.Conn, net.Conn) {
	l, err := net.Listen("unix", filepath.Join(b.TempDir(), "s"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			b.Error(err)
		}
		ch <- c
	}()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	a := <-ch
	b.Cleanup(func() { a.Close(); c.Close() })
	return a, c
}

// procNetworks are the transports compared between two processes, in
// one run: vchan, a Unix stream socket and loopback TCP.
var procNetworks = []string{"vchan", "unix", "tcp"}

// procConn starts a helper process serving all three transports and
// connects to it over network, telling it mode: 's' (sink, ack at EOF)
// or 'e' (echo).
func procConn(b *testing.B, network string, mode byte) net.Conn {
	dir := testStore(b)
	p := startHelperB(b, "serve", dir)
	m := p.WaitLine(b, regexp.MustCompile(`^ready (\d+) (\S+)$`), 30*time.Second)
	domid, _ := strconv.Atoi(m[1])
	var c net.Conn
	var err error
	switch network {
	case "vchan":
		c, err = Dial(context.Background(), &Config{Dir: dir}, domid, "bench")
	case "unix":
		c, err = net.Dial("unix", filepath.Join(dir, "bench.sock"))
	case "tcp":
		c, err = net.Dial("tcp", m[2])
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte{mode}); err != nil {
		b.Fatal(err)
	}
	return c
}

func startHelperB(b *testing.B, mode, dir string) *testutil.Process {
	b.Setenv(helperEnv, mode)
	b.Setenv(helperDir, dir)
	return testutil.StartProcess(b, os.Args[0], "-test.run=^$")
}

// BenchmarkThroughput: one goroutine writes 64 KiB buffers, another reads.
func BenchmarkThroughput(b *testing.B) {
	for _, p := range benchPairs {
		b.Run(p.name, func(b *testing.B) {
			r, w := p.pair(b)
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			done := make(chan error, 1)
			go func() {
				_, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, make([]byte, 64<<10))
				done <- err
			}()
			b.ResetTimer()
			for range b.N {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if cw, ok := w.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkPingPong: a 1-byte message and its 1-byte echo per op.
func BenchmarkPingPong(b *testing.B) {
	for _, p := range benchPairs {
		b.Run(p.name, func(b *testing.B) {
			a, c := p.pair(b)
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 1)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 1)
			b.ResetTimer()
			for range b.N {
				if _, err := a.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(a, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			a.Close()
			<-done
		})
	}
}

// BenchmarkThroughput2Proc: this process writes 64 KiB buffers, a helper
// process reads them (and acks the end, so the timing covers delivery).
func BenchmarkThroughput2Proc(b *testing.B) {
	for _, network := range procNetworks {
		b.Run(network, func(b *testing.B) {
			w := procConn(b, network, 's')
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for range b.N {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			w.(interface{ CloseWrite() error }).CloseWrite()
			if _, err := io.ReadFull(w, buf[:1]); err != nil { // the helper has read everything
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkPingPong2Proc: a 1-byte message to a helper process and its
// 1-byte echo per op.
func BenchmarkPingPong2Proc(b *testing.B) {
	for _, network := range procNetworks {
		b.Run(network, func(b *testing.B) {
			a := procConn(b, network, 'e')
			buf := make([]byte, 1)
			b.ResetTimer()
			for range b.N {
				if _, err := a.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(a, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIdle2Proc measures the CPU a helper process uses while its
// Read waits on an idle vchan (50 ms per op) and reports it as idle-cpu-%
// of the wall time. A spinning implementation would show ~100.
func BenchmarkIdle2Proc(b *testing.B) {
	cpu, wall := idleCPU(b, time.Duration(b.N)*50*time.Millisecond)
	b.ReportMetric(100*float64(cpu)/float64(wall), "idle-cpu-%")
}
