package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

var (
	idleConns = flag.Int("idleconns", 10000, "idle connections held open by BenchmarkIdleConns")
	showStats = flag.Bool("stats", false, "log the stacks' and links' counters at the end of each bulk benchmark")
	ccName    = flag.String("cc", "cubic", "congestion control of both stacks: cubic or reno (conduit's NewReno, gVisor's reno)")
)

const (
	portBulk = 5001
	portPing = 5002
	portIdle = 5003
	chunk    = 64 << 10 // bytes per Write in the bulk benchmarks
)

var mtus = []int{1500, 65000}

// forEachStack runs f as the sub-benchmark stack=NAME of each kind, ours
// first.
func forEachStack(b *testing.B, f func(b *testing.B, k stackKind)) {
	for _, k := range stackKinds {
		b.Run("stack="+k.name, func(b *testing.B) { f(b, k) })
	}
}

// BenchmarkBulk sends 64 KiB writes one way over one connection; the
// other end reads into a 64 KiB buffer and discards.
func BenchmarkBulk(b *testing.B) {
	for _, mtu := range mtus {
		for _, sw := range []bool{false, true} {
			csum := "offload"
			if sw {
				csum = "sw"
			}
			b.Run(fmt.Sprintf("mtu=%d/csum=%s", mtu, csum), func(b *testing.B) {
				forEachStack(b, func(b *testing.B, k stackKind) {
					bulk(b, k.newPair(b, pairConfig{mtu: mtu, swChecksum: sw}), portBulk)
				})
			})
		}
	}
}

// BenchmarkLoss is BenchmarkBulk at MTU 1500 with 5% of the packets of
// each direction dropped (seeded).
func BenchmarkLoss(b *testing.B) {
	for _, loss := range []float64{0.05} {
		b.Run(fmt.Sprintf("loss=%g%%/mtu=1500", loss*100), func(b *testing.B) {
			forEachStack(b, func(b *testing.B, k stackKind) {
				bulk(b, k.newPair(b, pairConfig{mtu: 1500, loss: loss, seed: 1}), portBulk)
			})
		})
	}
}

// bulk times 64 KiB writes on a new connection to port, and the delivery
// of the last of them: the connection is set up before the timer starts;
// after the loop the writer half-closes and the time until the reader
// sees EOF is counted too, so that ns/op and MB/s are bytes delivered,
// not bytes buffered.
func bulk(b *testing.B, ns netStack, port uint16) {
	c, s := connect(b, ns, port)
	r := startReader(b, s)
	stalled := watchdog(b, ns, "bulk transfer", r.n.Load, func() { c.Close(); s.Close() })
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatalf("write: %v (stalled: %v)", err, stalled.Load())
		}
	}
	b.StartTimer()
	werr := c.CloseWrite()
	<-r.done
	b.StopTimer()
	if werr != nil {
		b.Fatalf("CloseWrite: %v", werr)
	}
	if r.err != io.EOF {
		b.Fatalf("read: %v (stalled: %v)", r.err, stalled.Load())
	}
	if want := int64(b.N) * chunk; r.n.Load() != want {
		b.Fatalf("read %d bytes, want %d", r.n.Load(), want)
	}
	if *showStats {
		b.Logf("N=%d\n%s", b.N, ns.stats())
	}
}

// BenchmarkPingPong bounces one byte: each op is a 1-byte request and
// its 1-byte answer, written without Nagle delay.
func BenchmarkPingPong(b *testing.B) {
	b.Run("mtu=1500", func(b *testing.B) {
		forEachStack(b, func(b *testing.B, k stackKind) {
			ns := k.newPair(b, pairConfig{mtu: 1500})
			c, s := connect(b, ns, portPing)
			echoDone := make(chan struct{})
			go func() {
				defer close(echoDone)
				one := make([]byte, 1)
				for {
					if _, err := io.ReadFull(s, one); err != nil {
						return
					}
					if _, err := s.WriteNodelay(one); err != nil {
						return
					}
				}
			}()
			b.Cleanup(func() { s.Close(); <-echoDone })
			var rts atomic.Int64
			stalled := watchdog(b, ns, "ping-pong", rts.Load, func() { c.Close(); s.Close() })
			one := make([]byte, 1)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.WriteNodelay(one); err != nil {
					b.Fatalf("write: %v (stalled: %v)", err, stalled.Load())
				}
				if _, err := io.ReadFull(c, one); err != nil {
					b.Fatalf("read: %v (stalled: %v)", err, stalled.Load())
				}
				rts.Add(1)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
		})
	})
}

// BenchmarkIdleConns opens -idleconns connections between one pair of
// stacks and reports the heap they take (HeapInuse after a GC, before
// and after; both ends of each connection live in this process, so
// heap-B/conn is the cost of a client end plus a server end), then times
// a bulk transfer on one more connection while they stay open.
func BenchmarkIdleConns(b *testing.B) {
	n := *idleConns
	b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
		forEachStack(b, func(b *testing.B, k stackKind) {
			ns := k.newPair(b, pairConfig{mtu: 1500, conns: n + 1})
			ln, err := ns.listen(portIdle)
			if err != nil {
				b.Fatalf("listen: %v", err)
			}
			b.Cleanup(func() { ln.close() })
			before := heapInuse()
			start := time.Now()
			conns, err := openConns(ns, ln, portIdle, n)
			b.Cleanup(func() {
				for _, c := range conns {
					c.Close()
				}
			})
			if err != nil {
				b.Fatalf("opening %d connections: %v\n%s", n, err, ns.stats())
			}
			setup := time.Since(start)
			perConn := float64(int64(heapInuse())-int64(before)) / float64(n)
			bulk(b, ns, portBulk)
			// After the loop: b.Loop's first call drops metrics
			// reported before it.
			b.ReportMetric(perConn, "heap-B/conn")
			b.ReportMetric(float64(n)/setup.Seconds(), "opens/s")
			runtime.KeepAlive(conns)
		})
	})
}

// heapInuse returns HeapInuse after two garbage collections.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// openConns dials n connections to port (32 at a time, so that the link
// queues and the SYN backlog do not overflow) and accepts them on ln; it
// returns both ends of every connection made, even on error.
func openConns(ns netStack, ln listener, port uint16, n int) ([]conn, error) {
	const parallel = 32
	var (
		mu      sync.Mutex
		conns   = make([]conn, 0, 2*n)
		errs    []error
		next    atomic.Int64
		wg      sync.WaitGroup
		accepts = make(chan error, 1)
	)
	add := func(c conn, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if len(errs) < 3 { // the first ones; the rest are their echoes
				errs = append(errs, err)
			}
			return false
		}
		conns = append(conns, c)
		return true
	}
	go func() {
		for range n {
			if !add(ln.accept()) {
				break
			}
		}
		close(accepts)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				if !add(ns.dial(ctx, port)) {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		ln.close() // unblocks the accepter
	}
	<-accepts
	return conns, errors.Join(errs...)
}

// TestTransfer sends 1 MiB of seeded random bytes each way at once over
// one connection, then half-closes, for each stack and MTU (and, without
// -short, with 1% loss), and checks that each side read exactly what the
// other wrote.
func TestTransfer(t *testing.T) {
	type tc struct {
		mtu  int
		loss float64
	}
	cases := []tc{{1500, 0}, {65000, 0}}
	if !testing.Short() {
		cases = append(cases, tc{1500, 0.01})
	}
	for _, k := range stackKinds {
		for _, c := range cases {
			t.Run(fmt.Sprintf("stack=%s/mtu=%d/loss=%g%%", k.name, c.mtu, c.loss*100), func(t *testing.T) {
				ns := k.newPair(t, pairConfig{mtu: c.mtu, loss: c.loss, seed: 7})
				a, b := connect(t, ns, 6000)
				toB, toA := randomBytes(1<<20, 1), randomBytes(1<<20, 2)
				var progress atomic.Int64
				stalled := watchdog(t, ns, "transfer", progress.Load, func() { a.Close(); b.Close() })
				var wg sync.WaitGroup
				var gotA, gotB [32]byte
				var errA, errB error
				wg.Add(2)
				go func() { defer wg.Done(); gotB, errB = exchange(a, b, toB, &progress) }()
				go func() { defer wg.Done(); gotA, errA = exchange(b, a, toA, &progress) }()
				wg.Wait()
				if errA != nil || errB != nil {
					t.Fatalf("a→b: %v; b→a: %v (stalled: %v)\n%s", errB, errA, stalled.Load(), ns.stats())
				}
				if want := sha256.Sum256(toB); gotB != want {
					t.Errorf("a→b: SHA-256 %x, want %x", gotB, want)
				}
				if want := sha256.Sum256(toA); gotA != want {
					t.Errorf("b→a: SHA-256 %x, want %x", gotA, want)
				}
			})
		}
	}
}

// exchange writes data on w in uneven chunks and then half-closes it,
// while reading r to EOF; it returns the SHA-256 of what r read.
func exchange(w, r conn, data []byte, progress *atomic.Int64) ([32]byte, error) {
	werr := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); {
			n := min(len(data)-off, 40_000+off%7)
			m, err := w.Write(data[off : off+n])
			off += m
			progress.Add(int64(m))
			if err != nil {
				werr <- fmt.Errorf("write: %w", err)
				return
			}
		}
		werr <- w.CloseWrite()
	}()
	h := sha256.New()
	buf := make([]byte, 32<<10)
	var rerr error
	for {
		n, err := r.Read(buf)
		h.Write(buf[:n])
		progress.Add(int64(n))
		if err != nil {
			if err != io.EOF {
				rerr = fmt.Errorf("read: %w", err)
			}
			break
		}
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, errors.Join(<-werr, rerr)
}

// randomBytes returns n bytes from a PRNG seeded with seed.
func randomBytes(n int, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// TestRandomBytes guards the test data: distinct seeds give distinct,
// non-constant data.
func TestRandomBytes(t *testing.T) {
	a, b := randomBytes(4096, 1), randomBytes(4096, 2)
	if bytes.Equal(a, b) || bytes.Count(a, a[:1]) == len(a) {
		t.Fatal("randomBytes is not random enough")
	}
}
