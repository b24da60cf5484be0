package conduit

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deadlineFlow is a Flow whose Read and Write return at once and which
// records the deadlines it is given.
type deadlineFlow struct {
	Flow
	mu     sync.Mutex
	rd, wd time.Time
	sets   int
}

func (f *deadlineFlow) Read(b []byte) (int, error)  { return len(b), nil }
func (f *deadlineFlow) Write(b []byte) (int, error) { return len(b), nil }
func (f *deadlineFlow) Writev(bufs net.Buffers) (int64, error) {
	var n int64
	for _, b := range bufs {
		n += int64(len(b))
	}
	return n, nil
}
func (f *deadlineFlow) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rd = t
	f.sets++
	return nil
}

func (f *deadlineFlow) SetWriteDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wd = t
	f.sets++
	return nil
}

func (f *deadlineFlow) state() (rd, wd time.Time, sets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rd, f.wd, f.sets
}

// fakeClock is an injected time.Since.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) since(time.Time) time.Duration { return time.Duration(c.now.Load()) }
func (c *fakeClock) advance(d time.Duration)       { c.now.Add(int64(d)) }

func TestIdleFlowDeadlines(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const timeout = 16 * time.Second // slack 1 s
	clock := &fakeClock{}
	inner := &deadlineFlow{}
	f := newIdleFlowClock(inner, timeout, base, clock.since)
	at := func(d time.Duration) time.Time { return base.Add(d) }

	rd, wd, sets := inner.state()
	assert.Equal(t, at(17*time.Second), rd, "first deadlines: timeout+slack from the accept")
	assert.Equal(t, at(17*time.Second), wd)
	assert.Equal(t, 2, sets)

	// Calls within the slack do not touch the deadlines: no cost on the
	// hot path.
	clock.advance(900 * time.Millisecond)
	f.Read(make([]byte, 1))
	f.Write([]byte("x"))
	_, _, sets2 := inner.state()
	assert.Equal(t, sets, sets2)

	// Past the slack, a Read pushes both deadlines (a Write blocked on a
	// peer that does not read is extended by reads, and the other way).
	clock.advance(200 * time.Millisecond) // 1.1 s
	f.Read(make([]byte, 1))
	rd, wd, _ = inner.state()
	assert.Equal(t, at(1100*time.Millisecond+17*time.Second), rd)
	assert.Equal(t, rd, wd)
	clock.advance(5 * time.Second)
	f.Writev(net.Buffers{[]byte("y")})
	rd, wd, _ = inner.state()
	assert.Equal(t, at(6100*time.Millisecond+17*time.Second), wd)
	assert.Equal(t, wd, rd)

	// The caller's earlier deadline wins, and stays through pushes; a
	// later one does not extend the idle deadline.
	mine := at(8 * time.Second)
	require.NoError(t, f.SetReadDeadline(mine))
	rd, wd, _ = inner.state()
	assert.Equal(t, mine, rd)
	assert.Equal(t, at(6100*time.Millisecond+17*time.Second), wd)
	clock.advance(2 * time.Second)
	f.Write([]byte("z"))
	rd, wd, _ = inner.state()
	assert.Equal(t, mine, rd)
	assert.Equal(t, at(8100*time.Millisecond+17*time.Second), wd)
	require.NoError(t, f.SetDeadline(at(time.Hour)))
	rd, wd, _ = inner.state()
	assert.Equal(t, at(8100*time.Millisecond+17*time.Second), rd)
	assert.Equal(t, rd, wd)
	require.NoError(t, f.SetDeadline(time.Time{}))
	rd, _, _ = inner.state()
	assert.Equal(t, at(8100*time.Millisecond+17*time.Second), rd, "clearing the caller's deadline leaves the idle one")

	// A stale push (a slower goroutine) never moves the deadline back.
	f.push(3 * time.Second)
	rd, _, _ = inner.state()
	assert.Equal(t, at(8100*time.Millisecond+17*time.Second), rd)
}

// handlerErrs collects the error each handler invocation ended with.
type handlerErrs struct {
	ch chan error
}

func newHandlerErrs(n int) *handlerErrs { return &handlerErrs{ch: make(chan error, n)} }

// echo is an echo handler that records the error its copy ended with.
func (h *handlerErrs) echo() Handler {
	return HandlerFunc(func(_ context.Context, f Flow) {
		_, err := io.Copy(f, f)
		h.ch <- err
	})
}

// TestIdleTimeoutClosesIdleClients: clients that connect and send nothing
// are closed at the idle timeout (over TCP and over TLS, after the
// handshake), while an active client is served.
func TestIdleTimeoutClosesIdleClients(t *testing.T) {
	srv := newTestConduit(t)
	for _, uri := range []string{"tcp://127.0.0.1:0", "tls://127.0.0.1:0?sni=" + testServerName} {
		t.Run(uri[:3], func(t *testing.T) {
			const clients = 20
			errs := newHandlerErrs(clients + 1)
			target := serve(t, srv, uri, errs.echo(), WithIdleTimeout(time.Second))
			var idle []Flow
			for range clients {
				f, err := srv.Dial(testCtx(t), target)
				require.NoError(t, err)
				defer f.Close()
				idle = append(idle, f)
			}
			active, err := srv.Dial(testCtx(t), target)
			require.NoError(t, err)
			defer active.Close()
			roundTrip(t, active, 1<<20)
			require.NoError(t, <-errs.ch, "the active client's handler ends with its EOF")

			for _, f := range idle {
				require.NoError(t, f.SetReadDeadline(time.Now().Add(30*time.Second))) // hang guard
				_, err := io.Copy(io.Discard, f)
				require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "an idle client was never closed")
			}
			for range clients {
				err := <-errs.ch
				require.ErrorIs(t, err, os.ErrDeadlineExceeded)
				var ne net.Error
				require.ErrorAs(t, err, &ne)
				require.True(t, ne.Timeout())
			}
		})
	}
}

// TestIdleTimeoutEndsNeverReader: a client that writes and never reads
// blocks the echo handler's writes; the handler ends at the idle timeout,
// and what the server held meanwhile is bounded by the socket buffers,
// not by what the client sent.
func TestIdleTimeoutEndsNeverReader(t *testing.T) {
	c := New(nil)
	defer c.Close()
	errs := newHandlerErrs(1)
	target := serve(t, c, "tcp://127.0.0.1:0", errs.echo(), WithIdleTimeout(300*time.Millisecond))
	f, err := c.Dial(testCtx(t), target)
	require.NoError(t, err)
	defer f.Close()

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var sent atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		f.SetWriteDeadline(time.Now().Add(30 * time.Second)) // hang guard
		for sent.Load() < 1<<30 {
			n, err := f.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				writerDone <- err
				return
			}
		}
		writerDone <- errors.New("the server took 1 GiB from a client that never reads")
	}()
	var werr error
	select {
	case err = <-errs.ch:
	case werr = <-writerDone:
		t.Fatalf("the client's writes ended (%v) before the handler", werr)
	}
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "the handler's blocked write timed out")
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	werr = <-writerDone
	require.False(t, errors.Is(werr, os.ErrDeadlineExceeded), "the client's writes were never failed by the server closing")
	t.Logf("client sent %d KiB before the server closed; heap %d → %d KiB", sent.Load()>>10, before.HeapInuse>>10, after.HeapInuse>>10)
	// Kernel socket buffers on both sides hold what was sent; the
	// server's own memory stays at its copy buffer.
	assert.Less(t, sent.Load(), int64(256<<20))
	assert.Less(t, int64(after.HeapInuse)-int64(before.HeapInuse), int64(8<<20))
}

// BenchmarkIdleFlow measures the cost of the idle-timeout wrapper on a
// bulk transfer over loopback TCP: the same Listener with an idle timeout
// and without, 1 MiB per op, echoed.
func BenchmarkIdleFlow(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []ListenOption
	}{
		{"idle", []ListenOption{WithIdleTimeout(time.Minute)}},
		{"plain", nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := New(nil)
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			ln, err := c.Listen(ctx, "tcp://127.0.0.1:0", tc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				errc <- ServeListener(ctx, ln, HandlerFunc(func(_ context.Context, f Flow) {
					buf := make([]byte, 64<<10)
					for {
						n, err := f.Read(buf)
						if err != nil {
							return
						}
						if _, err := f.Write(buf[:n]); err != nil {
							return
						}
					}
				}), time.Second)
			}()
			defer func() { cancel(); <-errc }()
			f, err := c.Dial(ctx, ln.URI())
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			const size = 1 << 20
			out := make([]byte, 64<<10)
			in := make([]byte, 64<<10)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				done := make(chan error, 1)
				go func() {
					for sent := 0; sent < size; sent += len(out) {
						if _, err := f.Write(out); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				for got := 0; got < size; {
					n, err := f.Read(in)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIdleFlowCall is the wrapper's cost per call, without a
// network: a Read and a Write of 64 KiB on a flow that returns at once,
// through the idle-timeout wrapper and directly.
func BenchmarkIdleFlowCall(b *testing.B) {
	buf := make([]byte, 64<<10)
	inner := &deadlineFlow{}
	for _, tc := range []struct {
		name string
		f    Flow
	}{
		{"idle", newIdleFlow(inner, time.Minute)},
		{"plain", inner},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				tc.f.Read(buf)
				tc.f.Write(buf)
			}
		})
	}
}
