//go:build linux

package stack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link/netem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// devCapture records, with the kernel's own timestamps, the packets a
// kernel hands to its TUN device and those it is handed by it: a
// packet socket bound to the device inside its namespace, its
// timestamps taken where the kernel passes a packet to its taps
// (dev_queue_xmit_nit on the way out, netif_receive_skb on the way in).
// Beside the wire's pcaps, which time the wire's reads and writes of
// the device's descriptor, they split a packet's wait in the device's
// queue from its sender's decision.
type devCapture struct {
	f         *os.File
	closed    atomic.Bool // set before f is closed
	ifindex   int         // the device's; the socket hears every device until it is bound
	sent, got func(at time.Time, pkt []byte)
	wg        sync.WaitGroup
	err       error // the loop's, read after wg.Wait
	n         [2]int
	stop      sync.Once
	stopErr   error
}

// devSnap is the bytes of each packet kept, as the wire's pcaps keep.
const devSnap = 128

// captureDevice captures the kernel of n at its device: sent is called
// with each packet (its first devSnap bytes) the kernel hands to the
// device, got with each it is handed, in order, from one goroutine.
// Stop ends it; it fails if the socket dropped a packet. tb's end
// stops it too.
func captureDevice(tb testing.TB, n *testutil.TunNet, sent, got func(at time.Time, pkt []byte)) *devCapture {
	tb.Helper()
	ifi, err := devIndex(tb, n)
	if err != nil {
		tb.Fatal(err)
	}
	var fd int
	n.Do(tb, func() { fd, err = openPacketSocket(ifi) })
	if err != nil {
		tb.Fatalf("packet socket on %s: %v", n.Dev, err)
	}
	dc := &devCapture{f: os.NewFile(uintptr(fd), "packet:"+n.Dev), ifindex: ifi, sent: sent, got: got}
	dc.wg.Add(1)
	go dc.loop()
	tb.Cleanup(func() {
		if err := dc.Stop(); err != nil {
			tb.Errorf("capture of %s: %v", n.Dev, err)
		}
	})
	return dc
}

// Stop closes the socket and waits for the capture to end; it returns
// the capture's error, or an error if it dropped packets.
func (dc *devCapture) Stop() error {
	dc.stop.Do(func() {
		drops, serr := packetDrops(dc.f)
		dc.closed.Store(true)
		dc.f.Close()
		dc.wg.Wait()
		dc.stopErr = errors.Join(dc.err, serr)
		if drops > 0 {
			dc.stopErr = errors.Join(dc.stopErr, fmt.Errorf("dropped %d packets: the capture is incomplete", drops))
		}
	})
	return dc.stopErr
}

// Counts returns the packets captured, sent and received by the kernel.
// Call it after Stop.
func (dc *devCapture) Counts() (sent, got int) { return dc.n[0], dc.n[1] }

// startDevCapture captures the kernel of n at its device into the
// pcaps NAME.dev.sent.pcap and NAME.dev.got.pcap in -wire.pcap until tb
// ends.
func startDevCapture(tb testing.TB, n *testutil.TunNet, name string) {
	tb.Helper()
	sent, got := pcapFile(tb, name+".dev.sent.pcap"), pcapFile(tb, name+".dev.got.pcap")
	// Registered after the pcaps' cleanups, so it stops before they
	// close their files.
	dc := captureDevice(tb, n,
		func(at time.Time, pkt []byte) { sent.Tap(netem.DirAtoB, at, pkt) },
		func(at time.Time, pkt []byte) { got.Tap(netem.DirAtoB, at, pkt) })
	tb.Cleanup(func() {
		if dc.Stop() != nil {
			return // captureDevice's cleanup reports it
		}
		s, g := dc.Counts()
		tb.Logf("capture of %s: %d sent, %d received by its kernel", n.Dev, s, g)
	})
}

// devIndex returns the index of n's device, in its namespace.
func devIndex(tb testing.TB, n *testutil.TunNet) (int, error) {
	var ifi *net.Interface
	var err error
	n.Do(tb, func() { ifi, err = net.InterfaceByName(n.Dev) })
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

// openPacketSocket opens a non-blocking packet socket of every
// protocol on the device ifindex of the calling thread's namespace,
// with nanosecond timestamps, a filter that keeps the first devSnap
// bytes, and a receive buffer that holds a burst of several seconds.
func openPacketSocket(ifindex int) (int, error) {
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return -1, err
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	// The filter first, so that no packet is kept whole. Until bind
	// the socket hears every device of the namespace; the capture's
	// loop keeps only the device's.
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: devSnap}}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return fail("SO_ATTACH_FILTER", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 256<<20); err != nil {
		return fail("SO_RCVBUFFORCE", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("SO_TIMESTAMPNS", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetDrops returns the packets the socket dropped (PACKET_STATISTICS;
// reading them resets them).
func packetDrops(f *os.File) (uint32, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var st *unix.TpacketStats
	var serr error
	if err := rc.Control(func(fd uintptr) {
		st, serr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("PACKET_STATISTICS: %w", serr)
	}
	return st.Drops, nil
}

// loop reads the socket until it is closed.
func (dc *devCapture) loop() {
	defer dc.wg.Done()
	rc, err := dc.f.SyscallConn()
	if err != nil {
		dc.err = err
		return
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))
	for {
		var n, oobn int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			if !dc.closed.Load() {
				dc.err = err
			}
			return
		}
		if rerr != nil {
			dc.err = rerr
			return
		}
		at, err := cmsgTime(oob[:oobn])
		if err != nil {
			dc.err = err
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Ifindex != dc.ifindex {
			continue
		}
		// The filter has cut the packet to devSnap bytes, so a pcap's
		// record of its length is that (wiretrace reads the IP
		// header's).
		pkt := buf[:min(n, devSnap)]
		switch ll.Pkttype {
		case unix.PACKET_OUTGOING:
			dc.n[0]++
			dc.sent(at, pkt)
		case unix.PACKET_HOST:
			dc.n[1]++
			dc.got(at, pkt)
		}
	}
}

// cmsgTime returns the time of an SCM_TIMESTAMPNS control message.
func cmsgTime(oob []byte) (time.Time, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, err
	}
	for _, m := range msgs {
		var ts unix.Timespec
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(ts)) {
			ts = *(*unix.Timespec)(unsafe.Pointer(&m.Data[0])) // the platform's struct timespec
			return time.Unix(ts.Unix()), nil
		}
	}
	return time.Time{}, errors.New("packet without a timestamp")
}

// TestDevCapture checks the capture against the wire: every packet the
// wire read from the kernel's device the kernel had handed to it, no
// later than the wire read it, and every packet the wire wrote to the
// device reached the kernel, no earlier than the wire wrote it; and a
// transfer of the kernel's through it is byte-exact.
func TestDevCapture(t *testing.T) {
	n := testutil.NewTunNet(t, "conduit-devcap")
	ep := openTun(t, n)
	type rec struct {
		at  time.Time
		pkt string
	}
	var mu sync.Mutex
	var read, written []rec // by the wire, from and to the device
	var sent, got []rec     // by the kernel, to and from it
	add := func(to *[]rec, at time.Time, pkt []byte) {
		if header.IPv4(pkt).Protocol() != header.ProtocolTCP {
			return // the kernel's own IPv6 and the like
		}
		mu.Lock()
		*to = append(*to, rec{at, string(pkt[:min(len(pkt), devSnap)])})
		mu.Unlock()
	}
	dc := captureDevice(t, n, func(at time.Time, pkt []byte) { add(&sent, at, pkt) }, func(at time.Time, pkt []byte) { add(&got, at, pkt) })
	cfg := netem.Config{Seed: 1,
		AtoB: netem.Impairment{Delay: time.Millisecond}, BtoA: netem.Impairment{Delay: time.Millisecond, Loss: 0.02, Reorder: 0.25},
		Tap: func(d netem.Dir, at time.Time, pkt []byte) {
			if d == netem.DirBtoA {
				add(&read, at, pkt)
			}
		},
		DeliverTap: func(d netem.Dir, at time.Time, pkt []byte) {
			if d == netem.DirAtoB {
				add(&written, at, pkt)
			}
		},
	}
	w, err := netem.Wrap(ep, cfg)
	require.NoError(t, err)
	defer w.Close()
	s, err := New(Options{Addr: netip.PrefixFrom(n.Ours, 24), Link: w})
	require.NoError(t, err)
	defer s.Close()
	wn := &wireNet{stack: s, nsB: n, a: n.Ours, b: n.Kernel, stats: w.Stats}
	wn.listen(t)
	a, k := wn.connect(t)
	data := randomBytes(256<<10, 7)
	_, err = wn.sendOneWay(k, a, data, make([]byte, len(data)))
	require.NoError(t, err)
	require.NoError(t, w.Close()) // no more reads or writes of the device
	require.NoError(t, dc.Stop())

	// The wire's packets in the capture, in order: the n-th copy of
	// given bytes in one is the n-th in the other.
	check := func(what string, wire, kernel []rec, kernelFirst bool) {
		t.Helper()
		require.NotEmpty(t, wire)
		byPkt := map[string][]time.Time{}
		for _, r := range kernel {
			byPkt[r.pkt] = append(byPkt[r.pkt], r.at)
		}
		for i, r := range wire {
			ks := byPkt[r.pkt]
			require.NotEmpty(t, ks, "%s: packet %d of %d not captured", what, i+1, len(wire))
			k := ks[0]
			byPkt[r.pkt] = ks[1:]
			if kernelFirst {
				require.False(t, k.After(r.at), "%s: packet %d captured %v after the wire read it", what, i+1, k.Sub(r.at))
			} else {
				require.False(t, k.Before(r.at), "%s: packet %d captured %v before the wire wrote it", what, i+1, r.at.Sub(k))
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	check("kernel to wire", read, sent, true)
	check("wire to kernel", written, got, false)
	assert.Len(t, got, len(written), "the kernel was handed only what the wire wrote")
}
