package tcpflow_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

var loopback = netip.MustParseAddr("127.0.0.1")

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo copies the flow back to itself and half-closes at the end.
func echo(f tcpflow.Flow) {
	io.Copy(f, f)
	f.CloseWrite()
}

// newKernel returns a kernel stack bound to loopback, closed at the end.
func newKernel(t *testing.T, ports ...uint16) *tcpflow.Kernel {
	k := tcpflow.NewKernel(&tcpflow.KernelConfig{Addr: loopback, Ports: ports})
	t.Cleanup(func() { require.NoError(t, k.Close()) })
	return k
}

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T) uint16 {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// listenEcho runs an echo listener on a free loopback port of k.
func listenEcho(t *testing.T, k *tcpflow.Kernel, ka *tcpflow.Keepalive) netip.AddrPort {
	for i := 0; ; i++ {
		port := freePort(t)
		err := k.Listen(port, tcpflow.Listener{Process: echo, Keepalive: ka})
		if err == nil {
			return netip.AddrPortFrom(loopback, port)
		}
		require.Less(t, i, 5, "no free port: %v", err)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestRoundTripEveryWriteKind(t *testing.T) {
	k := newKernel(t)
	dst := listenEcho(t, k, nil)
	data := randomBytes(1 << 20)
	split := func(b []byte, n int) net.Buffers {
		var bufs net.Buffers
		for len(b) > 0 {
			m := min(n, len(b))
			bufs, b = append(bufs, b[:m]), b[m:]
		}
		return bufs
	}
	for _, tc := range []struct {
		name  string
		write func(f tcpflow.Flow) error
	}{
		{"Write", func(f tcpflow.Flow) error { _, err := f.Write(data); return err }},
		{"WriteNodelay", func(f tcpflow.Flow) error { _, err := f.WriteNodelay(data); return err }},
		{"Writev", func(f tcpflow.Flow) error {
			n, err := f.Writev(split(data, 1000))
			if err == nil && n != int64(len(data)) {
				return errors.New("short writev")
			}
			return err
		}},
		{"WritevNodelay", func(f tcpflow.Flow) error { _, err := f.WritevNodelay(split(data, 3000)); return err }},
		{"mixed", func(f tcpflow.Flow) error {
			for i, chunk := range split(data, 4096) {
				var err error
				if i%2 == 0 {
					_, err = f.Write(chunk)
				} else {
					_, err = f.WriteNodelay(chunk)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := k.CreateConnection(testCtx(t), dst, tcpflow.DialOptions{})
			require.NoError(t, err)
			defer f.Close()
			assert.Equal(t, dst, f.Dst())
			assert.Equal(t, loopback, f.Src().Addr())
			got := make(chan []byte, 1)
			go func() { b, _ := io.ReadAll(f); got <- b }()
			require.NoError(t, tc.write(f))
			require.NoError(t, f.CloseWrite())
			assert.Equal(t, sha256.Sum256(data), sha256.Sum256(<-got), "echo returned other bytes")
		})
	}
}

func TestWritevLeavesBuffersIntact(t *testing.T) {
	k := newKernel(t)
	f, err := k.CreateConnection(testCtx(t), listenEcho(t, k, nil), tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	bufs := net.Buffers{[]byte("ab"), []byte("cd"), []byte("ef")}
	n, err := f.Writev(bufs)
	require.NoError(t, err)
	require.EqualValues(t, 6, n)
	require.Len(t, bufs, 3)
	require.Equal(t, []byte("ab"), bufs[0])
	got := make([]byte, 6)
	_, err = io.ReadFull(f, got)
	require.NoError(t, err)
	require.Equal(t, "abcdef", string(got))
}

// sink reads n bytes, keeping delayed ACKs on (TCP_QUICKACK off before
// each read, as a receiver that is not in a hurry), then answers one
// byte.
func sink(n int) func(tcpflow.Flow) {
	return func(f tcpflow.Flow) {
		raw, err := f.(*tcpflow.KernelFlow).SyscallConn()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		for total := 0; total < n; {
			raw.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0) })
			m, err := f.Read(buf)
			if err != nil {
				return
			}
			total += m
		}
		f.WriteNodelay([]byte{1})
		io.Copy(io.Discard, f)
	}
}

// countSegments makes n one-byte writes with write to a sink and returns
// how many data segments the kernel sent for them.
func countSegments(t *testing.T, k *tcpflow.Kernel, dst netip.AddrPort, n int, write func(tcpflow.Flow, []byte) (int, error)) uint32 {
	f, err := k.CreateConnection(testCtx(t), dst, tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	kf := f.(*tcpflow.KernelFlow)
	before, err := kf.TCPInfo()
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		_, err := write(f, []byte{byte(i)})
		require.NoError(t, err)
	}
	_, err = io.ReadFull(f, make([]byte, 1))
	require.NoError(t, err, "the sink answers once it has every byte")
	after, err := kf.TCPInfo()
	require.NoError(t, err)
	return after.Data_segs_out - before.Data_segs_out
}

// TestNagleCoalescesWrites reads the kernel's own segment counts: small
// Writes are held back while a segment is unacknowledged, WriteNodelay
// sends each at once (the kernel's autocorking may still merge a few).
func TestNagleCoalescesWrites(t *testing.T) {
	k := newKernel(t)
	const n = 2000
	port := freePort(t)
	require.NoError(t, k.Listen(port, tcpflow.Listener{Process: sink(n)}))
	dst := netip.AddrPortFrom(loopback, port)
	nagle := countSegments(t, k, dst, n, tcpflow.Flow.Write)
	nodelay := countSegments(t, k, dst, n, tcpflow.Flow.WriteNodelay)
	t.Logf("%d one-byte writes: %d segments with Write, %d with WriteNodelay", n, nagle, nodelay)
	assert.Less(t, nagle*4, nodelay, "Nagle should cut the segments by at least four")
}

// sockoptKeepalive reads the keepalive settings of a flow's socket.
func sockoptKeepalive(t *testing.T, f tcpflow.Flow) (on bool, ka tcpflow.Keepalive) {
	raw, err := f.(*tcpflow.KernelFlow).SyscallConn()
	require.NoError(t, err)
	var vals [4]int
	var errs [4]error
	require.NoError(t, raw.Control(func(fd uintptr) {
		vals[0], errs[0] = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		vals[1], errs[1] = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		vals[2], errs[2] = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		vals[3], errs[3] = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
	}))
	for _, err := range errs {
		require.NoError(t, err)
	}
	return vals[0] != 0, tcpflow.Keepalive{
		After:    time.Duration(vals[1]) * time.Second,
		Interval: time.Duration(vals[2]) * time.Second,
		Probes:   vals[3],
	}
}

func TestKeepaliveOnTheSocket(t *testing.T) {
	k := newKernel(t)
	dialKA := tcpflow.Keepalive{After: 7 * time.Second, Interval: 3 * time.Second, Probes: 4}
	listenKA := tcpflow.Keepalive{After: 11 * time.Second, Interval: 5 * time.Second, Probes: 2}
	accepted := make(chan tcpflow.Flow, 2)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	hold := func(f tcpflow.Flow) { accepted <- f; <-done }
	withKA, withoutKA := freePort(t), freePort(t)
	require.NoError(t, k.Listen(withKA, tcpflow.Listener{Process: hold, Keepalive: &listenKA}))
	require.NoError(t, k.Listen(withoutKA, tcpflow.Listener{Process: hold}))

	for _, tc := range []struct {
		name     string
		port     uint16
		dial     *tcpflow.Keepalive
		acceptKA *tcpflow.Keepalive
	}{
		{"dial and listener keepalive", withKA, &dialKA, &listenKA},
		{"none", withoutKA, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := k.CreateConnection(testCtx(t), netip.AddrPortFrom(loopback, tc.port), tcpflow.DialOptions{Keepalive: tc.dial})
			require.NoError(t, err)
			defer f.Close()
			on, ka := sockoptKeepalive(t, f)
			require.Equal(t, tc.dial != nil, on, "SO_KEEPALIVE of the dialed flow")
			if tc.dial != nil {
				require.Equal(t, *tc.dial, ka)
			}
			a := <-accepted
			on, ka = sockoptKeepalive(t, a)
			require.Equal(t, tc.acceptKA != nil, on, "SO_KEEPALIVE of the accepted flow")
			if tc.acceptKA != nil {
				require.Equal(t, *tc.acceptKA, ka)
			}
		})
	}
	// SetKeepalive changes it on a live flow.
	f, err := k.CreateConnection(testCtx(t), netip.AddrPortFrom(loopback, withoutKA), tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	<-accepted
	require.NoError(t, f.(*tcpflow.KernelFlow).SetKeepalive(&dialKA))
	on, ka := sockoptKeepalive(t, f)
	require.True(t, on)
	require.Equal(t, dialKA, ka)
}

func TestResetGivesResetError(t *testing.T) {
	k := newKernel(t)
	port := freePort(t)
	require.NoError(t, k.Listen(port, tcpflow.Listener{Process: func(f tcpflow.Flow) {
		buf := make([]byte, 1)
		io.ReadFull(f, buf)
		f.(*tcpflow.KernelFlow).Abort()
	}}))
	f, err := k.CreateConnection(testCtx(t), netip.AddrPortFrom(loopback, port), tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteNodelay([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadAll(f)
	require.Error(t, err)
	require.ErrorIs(t, err, tcpflow.ErrReset)
	require.ErrorIs(t, err, syscall.ECONNRESET, "the cause is kept")
	require.Contains(t, err.Error(), "reset")
}

func TestClosedPortIsRefused(t *testing.T) {
	k := newKernel(t)
	dst := netip.AddrPortFrom(loopback, freePort(t))
	_, err := k.CreateConnection(testCtx(t), dst, tcpflow.DialOptions{})
	require.ErrorIs(t, err, tcpflow.ErrRefused)
	require.NotErrorIs(t, err, tcpflow.ErrTimeout)
	var te *tcpflow.Error
	require.ErrorAs(t, err, &te)
	require.Equal(t, "dial", te.Op)
	require.Equal(t, dst, te.Addr)
	require.Contains(t, err.Error(), dst.String())
}

// unresponsive returns a loopback address whose SYNs the kernel drops: a
// listening socket with a backlog of 0 whose queue is full.
func unresponsive(t *testing.T) netip.AddrPort {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(fd, 0))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	dst := netip.AddrPortFrom(loopback, uint16(sa.(*unix.SockaddrInet4).Port))
	// Fill the accept queue; the connections that complete stay there.
	for i := 0; i < 4; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", dst.String())
		cancel()
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return dst
}

func TestUnansweredDialTimesOut(t *testing.T) {
	k := newKernel(t)
	dst := unresponsive(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := k.CreateConnection(ctx, dst, tcpflow.DialOptions{})
	require.ErrorIs(t, err, tcpflow.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())

	// A cancelled dial is not a timeout.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err = k.CreateConnection(ctx, dst, tcpflow.DialOptions{})
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, tcpflow.ErrTimeout)
}

func TestCreateConnectionBadInput(t *testing.T) {
	k := newKernel(t)
	for _, dst := range []netip.AddrPort{{}, netip.AddrPortFrom(loopback, 0)} {
		_, err := k.CreateConnection(testCtx(t), dst, tcpflow.DialOptions{})
		require.Error(t, err)
		require.Contains(t, err.Error(), "invalid destination")
	}
}

func TestDialFromSource(t *testing.T) {
	k := newKernel(t)
	dst := listenEcho(t, k, nil)
	src := netip.MustParseAddrPort("127.0.0.2:0")
	f, err := k.CreateConnection(testCtx(t), dst, tcpflow.DialOptions{Src: src})
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, src.Addr(), f.Src().Addr())
}

// requireDeclined dials a port whose listeners function declines: the
// kernel completes the handshake before the stack can say no, so the
// reset reaches the dialer either while it connects (ErrRefused) or on
// its first read (ErrReset).
func requireDeclined(t *testing.T, k *tcpflow.Kernel, dst netip.AddrPort) {
	t.Helper()
	f, err := k.CreateConnection(testCtx(t), dst, tcpflow.DialOptions{})
	if err != nil {
		require.ErrorIs(t, err, tcpflow.ErrRefused)
		return
	}
	defer f.Close()
	_, err = io.ReadAll(f)
	require.ErrorIs(t, err, tcpflow.ErrReset)
}

func TestListenersFunction(t *testing.T) {
	served, declined := freePort(t), freePort(t)
	k := newKernel(t, served, declined)
	k.SetListeners(func(port uint16) *tcpflow.Listener {
		if port == served {
			return &tcpflow.Listener{Process: echo}
		}
		return nil
	})

	f, err := k.CreateConnection(testCtx(t), netip.AddrPortFrom(loopback, served), tcpflow.DialOptions{})
	require.NoError(t, err)
	_, err = f.Write([]byte("hi"))
	require.NoError(t, err)
	require.NoError(t, f.CloseWrite())
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	require.Equal(t, "hi", string(b))
	f.Close()

	// A declined connection is reset.
	requireDeclined(t, k, netip.AddrPortFrom(loopback, declined))

	// Listen takes precedence over the function; Unlisten hands the port
	// back to it; a second Listen on a port is an error.
	require.NoError(t, k.Listen(declined, tcpflow.Listener{Process: echo}))
	require.ErrorContains(t, k.Listen(declined, tcpflow.Listener{Process: echo}), "already has a listener")
	f, err = k.CreateConnection(testCtx(t), netip.AddrPortFrom(loopback, declined), tcpflow.DialOptions{})
	require.NoError(t, err)
	require.NoError(t, f.CloseWrite())
	_, err = io.ReadAll(f)
	require.NoError(t, err)
	f.Close()
	k.Unlisten(declined)
	requireDeclined(t, k, netip.AddrPortFrom(loopback, declined))

	// Without the function the ports are unbound: refused.
	k.SetListeners(nil)
	_, err = k.CreateConnection(testCtx(t), netip.AddrPortFrom(loopback, served), tcpflow.DialOptions{})
	require.ErrorIs(t, err, tcpflow.ErrRefused)
}

func TestUnlistenRefuses(t *testing.T) {
	k := newKernel(t)
	dst := listenEcho(t, k, nil)
	k.Unlisten(dst.Port())
	k.Unlisten(dst.Port()) // twice is fine
	_, err := k.CreateConnection(testCtx(t), dst, tcpflow.DialOptions{})
	require.ErrorIs(t, err, tcpflow.ErrRefused)
	require.Error(t, k.Listen(1, tcpflow.Listener{}), "a listener without Process")
}

func TestCloseStopsHandlersAndWaits(t *testing.T) {
	k := tcpflow.NewKernel(&tcpflow.KernelConfig{Addr: loopback})
	port := freePort(t)
	started := make(chan struct{})
	returned := make(chan error, 1)
	require.NoError(t, k.Listen(port, tcpflow.Listener{Process: func(f tcpflow.Flow) {
		close(started)
		_, err := f.Read(make([]byte, 1)) // blocks until Close
		returned <- err
	}}))
	f, err := k.CreateConnection(testCtx(t), netip.AddrPortFrom(loopback, port), tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	<-started
	require.NoError(t, k.Close())
	select {
	case err := <-returned:
		require.ErrorIs(t, err, net.ErrClosed)
	default:
		t.Fatal("Close returned before the handler did")
	}
	require.NoError(t, k.Close(), "Close is idempotent")
	require.ErrorIs(t, k.Listen(port, tcpflow.Listener{Process: echo}), net.ErrClosed)
}

func TestFlowCloseIsIdempotentAndDeadlinesWork(t *testing.T) {
	k := newKernel(t)
	f, err := k.CreateConnection(testCtx(t), listenEcho(t, k, nil), tcpflow.DialOptions{})
	require.NoError(t, err)
	require.NoError(t, f.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err = f.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NoError(t, f.Close())
	require.NoError(t, f.Close())
	_, err = f.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = f.Read(make([]byte, 1))
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestListenFlows(t *testing.T) {
	k := newKernel(t)
	ka := tcpflow.Keepalive{After: 9 * time.Second, Interval: 2 * time.Second, Probes: 3}
	ln, err := k.ListenFlows(testCtx(t), netip.MustParseAddrPort("127.0.0.1:0"), &ka)
	require.NoError(t, err)
	defer ln.Close()
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	f, err := k.CreateConnection(testCtx(t), dst, tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	a, err := ln.AcceptFlow()
	require.NoError(t, err)
	defer a.Close()
	require.Equal(t, f.Src(), a.Dst())
	on, got := sockoptKeepalive(t, a)
	require.True(t, on)
	require.Equal(t, ka, got)
	require.NoError(t, ln.Close())
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)

	// The port can be listened on again at once (SO_REUSEADDR), even
	// with an accepted flow still on it.
	ln2, err := k.ListenFlows(testCtx(t), dst, nil)
	require.NoError(t, err)
	require.NoError(t, ln2.Close())
	_, err = k.ListenFlows(testCtx(t), netip.AddrPort{}, nil)
	require.ErrorContains(t, err, "invalid address")
}

func TestInputIsANoOpOnTheKernel(t *testing.T) {
	k := newKernel(t)
	require.NoError(t, k.Input(loopback, loopback, []byte{0xde, 0xad}))
}

// TestInteropSocatServer dials socat's echo server (a TCP stack and a
// program no one here wrote) and checks the bytes and the half-close.
func TestInteropSocatServer(t *testing.T) {
	addr := testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	k := newKernel(t)
	f, err := k.CreateConnection(testCtx(t), netip.MustParseAddrPort(addr), tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	data := randomBytes(4 << 20)
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(f); got <- b }()
	for i := 0; i < len(data); i += 64 << 10 {
		_, err := f.Writev(net.Buffers{data[i : i+32<<10], data[i+32<<10 : i+64<<10]})
		require.NoError(t, err)
	}
	require.NoError(t, f.CloseWrite())
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(<-got))
}

// TestInteropSocatClient has socat send a file through our listener and
// read the echo.
func TestInteropSocatClient(t *testing.T) {
	socat := testutil.RequirePeer(t, "socat", "socat")
	k := newKernel(t)
	dst := listenEcho(t, k, nil)
	data := randomBytes(2 << 20)
	ctx := testCtx(t)
	cmd := exec.CommandContext(ctx, socat, "-t", "30", "-", "TCP4:"+dst.String())
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(out))
}
