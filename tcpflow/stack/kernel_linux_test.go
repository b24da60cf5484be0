//go:build linux

package stack

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/link/tun"
)

// kernelNet is a network namespace with a TUN device: the kernel is
// 10.99.X.1/24 (Kernel) inside it, our stack 10.99.X.2 (Ours) on the
// device's fd.
type kernelNet struct {
	*testutil.TunNet
	s *Stack
}

func newKernelNet(t *testing.T) *kernelNet {
	kn := &kernelNet{TunNet: testutil.NewTunNet(t, "conduit-stk")}
	var ep *tun.Endpoint
	var err error
	kn.Do(t, func() { ep, err = tun.Open(kn.Dev, tun.Options{}) })
	require.NoError(t, err)
	t.Cleanup(func() { ep.Close() })
	kn.s, err = New(Options{Addr: netip.PrefixFrom(kn.Ours, 24), Link: ep})
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
	kn.Do(t, func() { ln, err = net.Listen("tcp4", kn.Kernel.String()+":0") })
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
	ln, err := kn.s.ListenFlows(context.Background(), netip.AddrPortFrom(kn.Ours, 8080), nil)
	require.NoError(t, err)
	defer ln.Close()
	var c net.Conn
	kn.Do(t, func() {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.Dial("tcp4", netip.AddrPortFrom(kn.Ours, 8080).String())
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
	_, err := kn.s.CreateConnection(ctx, netip.AddrPortFrom(kn.Kernel, 1), tcpflow.DialOptions{})
	assert.ErrorIs(t, err, tcpflow.ErrRefused)
}

func TestKernelAnswersKeepalive(t *testing.T) {
	kn := newKernelNet(t)
	var ln net.Listener
	var err error
	kn.Do(t, func() {
		// Linux limits the ACKs it sends to out-of-window segments such as
		// keepalive probes to one per 500 ms; the probes here are closer.
		if err = os.WriteFile("/proc/sys/net/ipv4/tcp_invalid_ratelimit", []byte("0"), 0); err != nil {
			return
		}
		ln, err = net.Listen("tcp4", kn.Kernel.String()+":0")
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
	kn.Do(t, func() { ln, err = net.Listen("tcp4", kn.Kernel.String()+":0") })
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
