//go:build linux

package stack

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/link/tun"
)

// kernelNet is a network namespace with a TUN device: the kernel is
// 10.99.X.1/24 inside it, our stack 10.99.X.2 on the device's fd.
type kernelNet struct {
	ns, dev      string
	kernel, ours netip.Addr
	s            *Stack
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %v: %s", args, out)
}

// inNetns runs f on a thread switched into the namespace ns.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	target, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(target)
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns: %v", err)
	}
	f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		t.Fatalf("setns back: %v", err) // the thread stays locked and dies
	}
	runtime.UnlockOSThread()
}

func newKernelNet(t *testing.T) *kernelNet {
	testutil.RequireRoot(t, "creates a network namespace and a TUN device")
	testutil.RequirePeer(t, "ip", "iproute2")
	x := 1 + rand.IntN(254)
	id := rand.Uint32()
	kn := &kernelNet{
		ns:     fmt.Sprintf("conduit-stk-%08x", id),
		dev:    fmt.Sprintf("cstk%08x", id),
		kernel: netip.AddrFrom4([4]byte{10, 99, byte(x), 1}),
		ours:   netip.AddrFrom4([4]byte{10, 99, byte(x), 2}),
	}
	ipCmd(t, "netns", "add", kn.ns)
	t.Cleanup(func() { ipCmd(t, "netns", "del", kn.ns) })
	var ep *tun.Endpoint
	var err error
	inNetns(t, kn.ns, func() { ep, err = tun.Open(kn.dev, tun.Options{}) })
	require.NoError(t, err)
	t.Cleanup(func() { ep.Close() })
	ipCmd(t, "-n", kn.ns, "addr", "add", kn.kernel.String()+"/24", "dev", kn.dev)
	ipCmd(t, "-n", kn.ns, "link", "set", kn.dev, "up")
	kn.s, err = New(Options{Addr: netip.PrefixFrom(kn.ours, 24), Link: ep})
	require.NoError(t, err)
	t.Cleanup(func() { kn.s.Close() })
	return kn
}

// kernelBulk sends data on c and reads everything from it, returning
// the hash of what it read.
func kernelBulk(c *net.TCPConn, data []byte) ([32]byte, error) {
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	_, err := io.Copy(h, c)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if e := <-werr; err == nil {
		err = e
	}
	return sum, err
}

// bothWays runs a bulk transfer in each direction between our flow and
// the kernel's connection.
func bothWays(t *testing.T, f tcpflow.Flow, c *net.TCPConn) {
	const size = 4 << 20
	ours, theirs := randomBytes(size, 21), randomBytes(size, 22)
	type res struct {
		sum [32]byte
		err error
	}
	kc := make(chan res, 1)
	go func() {
		s, err := kernelBulk(c, theirs)
		kc <- res{s, err}
	}()
	start := time.Now()
	sum, werr, rerr := transfer(t, f, f, ours)
	require.NoError(t, werr)
	require.NoError(t, rerr)
	k := <-kc
	require.NoError(t, k.err)
	assert.Equal(t, sha256.Sum256(theirs), sum, "kernel to us")
	assert.Equal(t, sha256.Sum256(ours), k.sum, "us to kernel")
	t.Logf("%d bytes each way in %v; stats %+v", size, time.Since(start), kn(f))
}

func kn(f tcpflow.Flow) string { return f.Src().String() + "->" + f.Dst().String() }

func TestKernelListensWeDial(t *testing.T) {
	kn := newKernelNet(t)
	var ln net.Listener
	var err error
	inNetns(t, kn.ns, func() { ln, err = net.Listen("tcp4", kn.kernel.String()+":0") })
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c.(*net.TCPConn)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	f, err := kn.s.CreateConnection(ctx, dst, tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	c := <-accepted
	require.NotNil(t, c)
	defer c.Close()
	bothWays(t, f, c)
	t.Logf("stack: %+v", kn.s.Stats())
}

func TestKernelDialsWeListen(t *testing.T) {
	kn := newKernelNet(t)
	ln, err := kn.s.ListenFlows(context.Background(), netip.AddrPortFrom(kn.ours, 8080), nil)
	require.NoError(t, err)
	defer ln.Close()
	var c net.Conn
	inNetns(t, kn.ns, func() {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.Dial("tcp4", netip.AddrPortFrom(kn.ours, 8080).String())
	})
	require.NoError(t, err)
	defer c.Close()
	f, err := ln.AcceptFlow()
	require.NoError(t, err)
	defer f.Close()
	bothWays(t, f, c.(*net.TCPConn))
}

func TestKernelRefuses(t *testing.T) {
	kn := newKernelNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := kn.s.CreateConnection(ctx, netip.AddrPortFrom(kn.kernel, 1), tcpflow.DialOptions{})
	assert.ErrorIs(t, err, tcpflow.ErrRefused)
}

func TestKernelAnswersKeepalive(t *testing.T) {
	kn := newKernelNet(t)
	var ln net.Listener
	var err error
	inNetns(t, kn.ns, func() {
		// Linux limits the ACKs it sends to out-of-window segments such as
		// keepalive probes to one per 500 ms; the probes here are closer.
		if err = os.WriteFile("/proc/sys/net/ipv4/tcp_invalid_ratelimit", []byte("0"), 0); err != nil {
			return
		}
		ln, err = net.Listen("tcp4", kn.kernel.String()+":0")
	})
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	ka := &tcpflow.Keepalive{After: 100 * time.Millisecond, Interval: 50 * time.Millisecond, Probes: 2}
	f, err := kn.s.CreateConnection(context.Background(), ln.Addr().(*net.TCPAddr).AddrPort(), tcpflow.DialOptions{Keepalive: ka})
	require.NoError(t, err)
	defer f.Close()
	before := kn.s.Stats().TCP
	time.Sleep(600 * time.Millisecond) // several idle periods, real clock
	after := kn.s.Stats().TCP
	assert.GreaterOrEqual(t, after.SegmentsOut-before.SegmentsOut, uint64(3), "probes sent")
	assert.GreaterOrEqual(t, after.SegmentsIn-before.SegmentsIn, uint64(3), "probes answered")
	_, err = f.Write([]byte("still alive"))
	assert.NoError(t, err)
}

func TestKernelHalfClose(t *testing.T) {
	kn := newKernelNet(t)
	var ln net.Listener
	var err error
	inNetns(t, kn.ns, func() { ln, err = net.Listen("tcp4", kn.kernel.String()+":0") })
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c) // until our FIN
		c.Write(append([]byte("got "), b...))
	}()
	f, err := kn.s.CreateConnection(context.Background(), ln.Addr().(*net.TCPAddr).AddrPort(), tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write([]byte("request"))
	require.NoError(t, err)
	require.NoError(t, f.CloseWrite())
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	assert.Equal(t, "got request", string(b))
}
