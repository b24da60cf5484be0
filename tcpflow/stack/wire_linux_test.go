//go:build linux

package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/link/netem"
	"github.com/conduit-go/conduit/tcpflow/link/tun"
)

// The kernel-over-TUN tests and benchmarks on an impaired wire
// (tcpflow/link/netem). Two topologies, both in namespaces made for the
// test:
//
//   - ours: our stack on a TUN device's descriptor, through netem.Wrap,
//     and the kernel of the device's namespace;
//   - linux: two namespaces with a TUN device each, their descriptors
//     joined by netem.Bridge, a kernel in each.
//
// Side A is our stack, or the kernel standing in its place; side B is
// always a kernel. The wire's AtoB direction carries what A sends.

var (
	wireCC         = flag.String("wire.cc", "cubic", "congestion control of the kernels in the wire tests' namespaces (net.ipv4.tcp_congestion_control)")
	wireSeed       = flag.Uint64("wire.seed", 1, "seed of the wire's impairments")
	wireBytes      = flag.Int("wire.bytes", 0, "bytes per transfer in BenchmarkKernelWire (0: each setting's own, 4 to 16 MiB)")
	wireTest       = flag.Int("wire.testbytes", 1<<20, "bytes each way in TestKernelWire")
	wireTxQueue    = flag.Int("wire.txqueue", tunTxQueue, "txqueuelen of the TUN devices")
	wireTCPInfo    = flag.Bool("wire.tcpinfo", false, "log a kernel sender's minimum RTT, SRTT and reordering (TCP_INFO) with the transfer's retransmissions, D-SACKs and RTOs, and the wire's late packets, after each transfer of BenchmarkKernelWire")
	wireStartSpur  = flag.Bool("wire.startspur", false, "report startspur/op in BenchmarkKernelWire: the sender's retransmissions in a connection's first 50 ms that the receiver D-SACKed")
	wireOurLatency = flag.Duration("wire.ourlatency", 0, "latency added to our stack's direction of the wire in BenchmarkKernelWire's tcp=ours (netem's Latency, which the short cut of reordering takes too)")
	wireNstat      = flag.Bool("wire.nstat", false, "log the TcpExt counters (/proc/net/netstat) of the kernels' namespaces that moved over BenchmarkKernelWire's transfers (with -test.v)")
	wirePcap       = flag.String("wire.pcap", "", "directory to write pcaps of each wire to: NAME.pcap what was offered to it, NAME.out.pcap what it handed on and when (a pair per test or sub-benchmark; headers only)")
	wireDevPcap    = flag.Bool("wire.devpcap", false, "with -wire.pcap, also capture kernel B at its TUN device, with the kernel's timestamps: NAME.dev.sent.pcap what it handed to the device, NAME.dev.got.pcap what it was handed")
)

// wireTimeout bounds one transfer (a deadline on both ends).
const wireTimeout = 3 * time.Minute

// wireCase is one setting of the wire, the same in both directions.
type wireCase struct {
	name  string
	imp   netem.Impairment
	bytes int // sent per op in BenchmarkKernelWire
}

// wireCases are the settings of issue 19's comparison: a path of 1 ms
// each way, clean, with loss and netem's reordering, with burst loss,
// and with a bottleneck of 100 Mbit/s and a 64-packet queue.
func wireCases() []wireCase {
	const d = time.Millisecond
	reo := func(loss float64) netem.Impairment {
		return netem.Impairment{Delay: d, Loss: loss, Reorder: 0.25}
	}
	// The sizes keep each transfer near a second or less, well past
	// slow start: the clean path and the bottleneck run an order of
	// magnitude faster than the lossy ones.
	return []wireCase{
		{"clean", netem.Impairment{Delay: d}, 16 << 20},
		{"loss=1%,reorder=25%", reo(0.01), 4 << 20},
		{"loss=2%,reorder=25%", reo(0.02), 4 << 20},
		{"loss=5%,reorder=25%", reo(0.05), 4 << 20},
		{"burstloss=2%", netem.Impairment{Delay: d, Bursts: netem.Bursts(0.02, 4)}, 4 << 20},
		{"rate=100Mbit,queue=64", netem.Impairment{Delay: d, Rate: 100 * netem.Mbps, QueueLimit: 64}, 8 << 20},
	}
}

// wireConn is what both ends of a transfer are: a flow of our stack or
// a kernel socket.
type wireConn interface {
	io.ReadWriteCloser
	CloseWrite() error
	SetDeadline(time.Time) error
}

// wireNet is a topology: A (our stack, or a kernel) and a kernel B
// across a netem wire.
type wireNet struct {
	stack   *Stack           // A, if it is our stack
	nsA     *testutil.TunNet // A's namespace, if A is a kernel
	nsB     *testutil.TunNet // B's namespace
	a, b    netip.Addr       // their addresses
	stats   func() netem.Stats
	kernels []*testutil.TunNet // the namespaces of the kernels
	ln      net.Listener       // B's, inside nsB
	port    uint16
	spur    *startSpurious // with -wire.startspur
}

// setCC is a net.Dialer and net.ListenConfig Control that sets the
// socket's congestion control to -wire.cc (a namespace other than the
// first may only make the controls of
// net.ipv4.tcp_allowed_congestion_control its default, a socket of a
// process with CAP_NET_ADMIN any). Accepted connections inherit the
// listener's.
func setCC(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, *wireCC)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("TCP_CONGESTION %q: %w", *wireCC, serr)
	}
	return nil
}

// checkCC fails unless the kernel connection c runs -wire.cc.
func checkCC(tb testing.TB, c *net.TCPConn) {
	tb.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	var cc string
	var gerr error
	rc.Control(func(fd uintptr) { cc, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION) })
	if gerr != nil || strings.TrimRight(cc, "\x00") != *wireCC {
		tb.Fatalf("kernel connection runs %q (%v), want %q", cc, gerr, *wireCC)
	}
}

// tunTxQueue is the transmit queue of the test's TUN devices, in
// packets: the kernel's TCP small queues let one flow queue far more
// than the default 500 on a device, so a burst would be dropped there,
// before the wire, whenever the reading goroutine is a little late.
const tunTxQueue = 10000

// tunDrops returns the packets the kernel of n dropped at its TUN
// device (tx dropped: the device's queue was full).
func tunDrops(tb testing.TB, n *testutil.TunNet) uint64 {
	tb.Helper()
	out, err := exec.Command("ip", "-s", "-j", "-n", n.NS, "link", "show", "dev", n.Dev).Output()
	if err != nil {
		tb.Fatalf("ip -s link show %s: %v", n.Dev, err)
	}
	var links []struct {
		Stats64 struct {
			TX struct {
				Dropped uint64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		tb.Fatalf("ip -s -j link show %s: %v: %s", n.Dev, err, out)
	}
	return links[0].Stats64.TX.Dropped
}

func openTun(tb testing.TB, n *testutil.TunNet) *tun.Endpoint {
	tb.Helper()
	testutil.IP(tb, "-n", n.NS, "link", "set", "dev", n.Dev, "txqueuelen", strconv.Itoa(*wireTxQueue))
	var ep *tun.Endpoint
	var err error
	n.Do(tb, func() { ep, err = tun.Open(n.Dev, tun.Options{}) })
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ep.Close() })
	return ep
}

// pcapFile returns a Pcap writing to the file name in -wire.pcap, which
// it closes when tb ends.
func pcapFile(tb testing.TB, name string) *netem.Pcap {
	f, err := os.Create(filepath.Join(*wirePcap, name))
	if err != nil {
		tb.Fatal(err)
	}
	pc := netem.NewPcap(f, 128)
	tb.Cleanup(func() {
		if err := errors.Join(pc.Err(), f.Close()); err != nil {
			tb.Error(err)
		}
	})
	return pc
}

// pcapName is the prefix of tb's files in -wire.pcap.
func pcapName(tb testing.TB) string {
	return strings.NewReplacer("/", "_", "%", "", ",", "_", "=", "-").Replace(tb.Name())
}

// captureB starts, with -wire.pcap and -wire.devpcap, the capture of
// kernel B at its device.
func captureB(tb testing.TB, nb *testutil.TunNet) {
	if *wirePcap != "" && *wireDevPcap {
		startDevCapture(tb, nb, pcapName(tb))
	}
}

// wireConfig is the configuration of a wire with imp in both
// directions; with -wire.pcap, its packets' headers go to a pcap named
// after tb, and with -wire.startspur spur counts them.
func wireConfig(tb testing.TB, imp netem.Impairment, spur *startSpurious) netem.Config {
	c := netem.Config{Seed: *wireSeed, AtoB: imp, BtoA: imp}
	var taps []func(netem.Dir, time.Time, []byte)
	if *wirePcap != "" {
		name := pcapName(tb)
		taps = append(taps, pcapFile(tb, name+".pcap").Tap)
		c.DeliverTap = pcapFile(tb, name+".out.pcap").Tap
	}
	if spur != nil {
		taps = append(taps, spur.Tap)
	}
	if len(taps) > 0 {
		c.Tap = func(d netem.Dir, at time.Time, pkt []byte) {
			for _, tap := range taps {
				tap(d, at, pkt)
			}
		}
	}
	return c
}

// newOursNet is our stack (A) over the wire to the kernel of a TUN
// namespace (B).
func newOursNet(tb testing.TB, imp netem.Impairment, o Options) *wireNet {
	tb.Helper()
	n := testutil.NewTunNet(tb, "conduit-wire")
	ep := openTun(tb, n)
	captureB(tb, n)
	spur := newStartSpurious()
	cfg := wireConfig(tb, imp, spur)
	cfg.AtoB.Latency = *wireOurLatency
	w, err := netem.Wrap(ep, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close() })
	o.Addr, o.Link = netip.PrefixFrom(n.Ours, 24), w
	s, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	wn := &wireNet{stack: s, nsB: n, a: n.Ours, b: n.Kernel, stats: w.Stats, kernels: []*testutil.TunNet{n}, spur: spur}
	wn.listen(tb)
	return wn
}

// newLinuxNet is two kernels, each in a TUN namespace of its own, their
// devices bridged by the wire: A in the first, B in the second.
func newLinuxNet(tb testing.TB, imp netem.Impairment) *wireNet {
	tb.Helper()
	na := testutil.NewTunNet(tb, "conduit-wirea")
	nb := testutil.NewTunNet(tb, "conduit-wireb")
	for nb.Kernel.As4()[2] == na.Kernel.As4()[2] { // the same /24: draw again
		nb = testutil.NewTunNet(tb, "conduit-wireb")
	}
	testutil.IP(tb, "-n", na.NS, "route", "add", nb.Kernel.String()+"/32", "dev", na.Dev)
	testutil.IP(tb, "-n", nb.NS, "route", "add", na.Kernel.String()+"/32", "dev", nb.Dev)
	ea, eb := openTun(tb, na), openTun(tb, nb)
	captureB(tb, nb)
	spur := newStartSpurious()
	w, err := netem.Bridge(ea, eb, wireConfig(tb, imp, spur))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.Close() })
	wn := &wireNet{nsA: na, nsB: nb, a: na.Kernel, b: nb.Kernel, stats: w.Stats, kernels: []*testutil.TunNet{na, nb}, spur: spur}
	wn.listen(tb)
	return wn
}

func (wn *wireNet) listen(tb testing.TB) {
	tb.Helper()
	var err error
	wn.nsB.Do(tb, func() {
		lc := net.ListenConfig{Control: setCC}
		wn.ln, err = lc.Listen(context.Background(), "tcp4", wn.b.String()+":0")
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { wn.ln.Close() })
	wn.port = uint16(wn.ln.Addr().(*net.TCPAddr).Port)
}

// connect has A dial B; it returns A's and B's ends, with a deadline of
// wireTimeout on both.
func (wn *wireNet) connect(tb testing.TB) (wireConn, *net.TCPConn) {
	tb.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := wn.ln.Accept()
		acc <- res{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dst := netip.AddrPortFrom(wn.b, wn.port)
	var a wireConn
	var err error
	if wn.stack != nil {
		a, err = wn.stack.CreateConnection(ctx, dst, tcpflow.DialOptions{})
	} else {
		var c net.Conn
		wn.nsA.Do(tb, func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: wn.a.AsSlice()}, Control: setCC}
			c, err = d.DialContext(ctx, "tcp4", dst.String())
		})
		if err == nil {
			a = c.(*net.TCPConn)
		}
	}
	if err != nil {
		wn.ln.Close() // unblocks Accept
		<-acc
		tb.Fatalf("dial %v: %v", dst, err)
	}
	r := <-acc
	if r.err != nil {
		a.Close()
		tb.Fatalf("accept: %v", r.err)
	}
	checkCC(tb, r.c.(*net.TCPConn))
	if k, ok := a.(*net.TCPConn); ok {
		checkCC(tb, k)
	}
	deadline := time.Now().Add(wireTimeout)
	a.SetDeadline(deadline)
	r.c.SetDeadline(deadline)
	return a, r.c.(*net.TCPConn)
}

// tcpCounts are a sender's (or receiver's) segment counters over one
// connection.
type tcpCounts struct {
	segsOut, retrans, dsacks, rtos uint64
}

func (c tcpCounts) sub(d tcpCounts) tcpCounts {
	return tcpCounts{c.segsOut - d.segsOut, c.retrans - d.retrans, c.dsacks - d.dsacks, c.rtos - d.rtos}
}

// counts returns the counters of one end: TCP_INFO for a kernel socket
// (tcpi_segs_out, tcpi_total_retrans, tcpi_dsack_dups, tcpi_total_rto),
// the stack's Stats for our flows (the stack has one connection at a
// time; the caller takes the difference).
func (wn *wireNet) counts(c wireConn) (tcpCounts, error) {
	if k, ok := c.(*net.TCPConn); ok {
		info, err := tcpInfo(k)
		if err != nil {
			return tcpCounts{}, err
		}
		return tcpCounts{uint64(info.Segs_out), uint64(info.Total_retrans), uint64(info.Dsack_dups), uint64(info.Total_rto)}, nil
	}
	st := wn.stack.Stats().TCP
	return tcpCounts{st.SegmentsOut, st.Retransmits, st.DSACKs, st.Timeouts}, nil
}

// tcpInfo returns a kernel socket's TCP_INFO.
func tcpInfo(k *net.TCPConn) (*unix.TCPInfo, error) {
	rc, err := k.SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	if ierr != nil {
		return nil, fmt.Errorf("TCP_INFO: %w", ierr)
	}
	return info, nil
}

// isOurs reports whether c is a flow of our stack.
func isOurs(c wireConn) bool {
	_, k := c.(*net.TCPConn)
	return !k
}

// oneWay is the outcome of sending data from snd to rcv.
type oneWay struct {
	elapsed  time.Duration // from the first write to the receiver's EOF
	snd, rcv tcpCounts     // over the connection
	wire     netem.Stats   // the wire's counters over the transfer
}

// sendOneWay sends data from snd to rcv, which reads it into buf; once
// rcv has read EOF it closes, and snd reads EOF too, so that both ends'
// counters are final when taken.
func (wn *wireNet) sendOneWay(snd, rcv wireConn, data, buf []byte) (oneWay, error) {
	var res oneWay
	sb, err := wn.counts(snd)
	if err != nil {
		return res, err
	}
	rb, err := wn.counts(rcv)
	if err != nil {
		return res, err
	}
	wb := wn.stats()
	werr := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := snd.Write(data)
		if err == nil {
			err = snd.CloseWrite()
		}
		werr <- err
	}()
	n, rerr := io.ReadFull(rcv, buf)
	if rerr == nil {
		var one [1]byte
		if m, err := rcv.Read(one[:]); m != 0 || err != io.EOF {
			rerr = fmt.Errorf("after %d bytes: read %d more, %v (want EOF)", n, m, err)
		}
	}
	res.elapsed = time.Since(start)
	if err := <-werr; err != nil {
		return res, fmt.Errorf("write: %w", err)
	}
	if rerr != nil {
		return res, fmt.Errorf("read %d of %d bytes: %w", n, len(data), rerr)
	}
	if !bytes.Equal(buf, data) {
		return res, errors.New("the bytes read differ from those written")
	}
	// The receiver's counters now, before its FIN; ours are the stack's,
	// so take them before the sender's side moves again.
	ra, err := wn.counts(rcv)
	if err != nil {
		return res, err
	}
	if err := rcv.Close(); err != nil {
		return res, err
	}
	if m, err := snd.Read(buf[:1]); m != 0 || err != io.EOF {
		return res, fmt.Errorf("sender: read %d bytes, %v (want EOF)", m, err)
	}
	sa, err := wn.counts(snd)
	if err != nil {
		return res, err
	}
	res.snd, res.rcv = sa.sub(sb), ra.sub(rb)
	wa := wn.stats()
	res.wire = netem.Stats{AtoB: subCounters(wa.AtoB, wb.AtoB), BtoA: subCounters(wa.BtoA, wb.BtoA)}
	return res, nil
}

// tunDrops returns the packets the kernels dropped at their devices.
func (wn *wireNet) tunDrops(tb testing.TB) uint64 {
	var n uint64
	for _, k := range wn.kernels {
		n += tunDrops(tb, k)
	}
	return n
}

func subCounters(a, b netem.Counters) netem.Counters {
	return netem.Counters{
		Packets: a.Packets - b.Packets, Bytes: a.Bytes - b.Bytes,
		Delivered: a.Delivered - b.Delivered, Lost: a.Lost - b.Lost, BurstLost: a.BurstLost - b.BurstLost,
		Duplicated: a.Duplicated - b.Duplicated, Reordered: a.Reordered - b.Reordered,
		QueueDrops: a.QueueDrops - b.QueueDrops, Overflow: a.Overflow - b.Overflow,
		Late: a.Late - b.Late, LateMax: a.LateMax, // the most over the wire's life
	}
}

// BenchmarkKernelWire compares our stack with the Linux kernel on the
// same impaired wire, in the same run: for each setting, our stack
// sending to a kernel and receiving from one (ours), against a kernel
// doing the same with another kernel (linux). One op is one transfer of
// the setting's size (or -wire.bytes) on a new connection, timed from the first write to the
// receiver's EOF. Metrics per op, all of the sender but acks/op (the
// receiver's segments) and qdrops/op (the wire's, both directions):
// segs/op, retrans/op, dsack/op (retransmissions the receiver reported
// as duplicates: spurious), rto/op; lateAB/op and lateBA/op count the
// packets the wire itself handed on late (netem.Counters.Late), in our
// direction and the kernel's: a check that the two runs met the same wire.
//
//	go test -run '^$' -bench KernelWire -benchtime 3x ./tcpflow/stack | go run ./internal/benchratio -counts
func BenchmarkKernelWire(b *testing.B) {
	for _, wc := range wireCases() {
		b.Run(wc.name, func(b *testing.B) {
			for _, dir := range []string{"send", "recv"} {
				b.Run(dir, func(b *testing.B) {
					size := wc.bytes
					if *wireBytes > 0 {
						size = *wireBytes
					}
					b.Run("tcp=ours", func(b *testing.B) {
						benchWire(b, newOursNet(b, wc.imp, Options{}), dir == "send", size)
					})
					b.Run("tcp=linux", func(b *testing.B) {
						benchWire(b, newLinuxNet(b, wc.imp), dir == "send", size)
					})
				})
			}
		})
	}
}

func benchWire(b *testing.B, wn *wireNet, aSends bool, size int) {
	data := randomBytes(size, 19)
	buf := make([]byte, len(data))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var sum oneWay
	sndNS, rcvNS := wn.nsB, wn.nsA // rcvNS is nil for our stack
	if aSends {
		sndNS, rcvNS = wn.nsA, wn.nsB
	}
	var ext0, rext0 map[string]int64
	if *wireNstat && sndNS != nil {
		ext0 = tcpExt(b, sndNS)
	}
	if *wireNstat && rcvNS != nil {
		rext0 = tcpExt(b, rcvNS)
	}
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		a, k := wn.connect(b)
		drops := wn.tunDrops(b)
		snd, rcv := wireConn(k), a
		if aSends {
			snd, rcv = a, k
		}
		b.StartTimer()
		r, err := wn.sendOneWay(snd, rcv, data, buf)
		b.StopTimer()
		if k, ok := snd.(*net.TCPConn); ok && *wireTCPInfo {
			if info, err := tcpInfo(k); err == nil {
				b.Logf("kernel sender: min_rtt %d µs, srtt %d µs, reordering %d; this transfer: retrans %d, dsack %d, rto %d",
					info.Min_rtt, info.Rtt, info.Reordering, r.snd.retrans, r.snd.dsacks, r.snd.rtos)
			}
		}
		if *wireTCPInfo {
			b.Logf("wire: late %d/%d (max %v/%v)", r.wire.AtoB.Late, r.wire.BtoA.Late, r.wire.AtoB.LateMax, r.wire.BtoA.LateMax)
		}
		snd.Close()
		rcv.Close()
		if err != nil {
			b.Fatalf("%v (wire %+v)", err, wn.stats())
		}
		sum.snd.segsOut += r.snd.segsOut
		sum.snd.retrans += r.snd.retrans
		sum.snd.dsacks += r.snd.dsacks
		sum.snd.rtos += r.snd.rtos
		sum.rcv.segsOut += r.rcv.segsOut
		sum.wire.AtoB.QueueDrops += r.wire.AtoB.QueueDrops + r.wire.BtoA.QueueDrops
		sum.wire.AtoB.Overflow += r.wire.AtoB.Overflow + r.wire.BtoA.Overflow + wn.tunDrops(b) - drops
		sum.wire.AtoB.Late += r.wire.AtoB.Late
		sum.wire.BtoA.Late += r.wire.BtoA.Late
	}
	n := float64(b.N)
	if ext0 != nil {
		logTCPExt(b, "sender", ext0, tcpExt(b, sndNS))
	}
	if rext0 != nil {
		logTCPExt(b, "receiver", rext0, tcpExt(b, rcvNS))
	}
	b.ReportMetric(float64(sum.snd.segsOut)/n, "segs/op")
	b.ReportMetric(float64(sum.snd.retrans)/n, "retrans/op")
	b.ReportMetric(float64(sum.snd.dsacks)/n, "dsack/op")
	b.ReportMetric(float64(sum.snd.rtos)/n, "rto/op")
	b.ReportMetric(float64(sum.rcv.segsOut)/n, "acks/op")
	b.ReportMetric(float64(sum.wire.AtoB.QueueDrops)/n, "qdrops/op")
	b.ReportMetric(float64(sum.wire.AtoB.Overflow)/n, "hostdrops/op")
	b.ReportMetric(float64(sum.wire.AtoB.Late)/n, "lateAB/op")
	b.ReportMetric(float64(sum.wire.BtoA.Late)/n, "lateBA/op")
	if wn.spur != nil {
		b.ReportMetric(float64(wn.spur.total())/n, "startspur/op")
	}
}

// TestKernelWire is the kernel interop test on impaired wires: for each
// setting (and a nastier one with duplication and jitter), our stack
// and the kernel send -wire.testbytes each way at once, byte-exact,
// once with our stack dialing and once with the kernel dialing, each
// bounded by wireTimeout. The sizes are small so that CI runs it in
// full; -wire.testbytes makes it longer.
func TestKernelWire(t *testing.T) {
	cases := append(wireCases(), wireCase{name: "dup=2%,jitter=500us,loss=3%", imp: netem.Impairment{
		Delay: time.Millisecond, Jitter: 500 * time.Microsecond, Duplicate: 0.02, Loss: 0.03,
	}})
	for _, wc := range cases {
		t.Run(wc.name, func(t *testing.T) {
			for _, weDial := range []bool{true, false} {
				t.Run(map[bool]string{true: "we-dial", false: "kernel-dials"}[weDial], func(t *testing.T) {
					testWireBothWays(t, wc.imp, weDial)
				})
			}
		})
	}
}

func testWireBothWays(t *testing.T, imp netem.Impairment, weDial bool) {
	wn := newOursNet(t, imp, Options{})
	var f tcpflow.Flow
	var k *net.TCPConn
	if weDial {
		a, kc := wn.connect(t)
		f, k = a.(tcpflow.Flow), kc
	} else {
		ln, err := wn.stack.ListenFlows(context.Background(), netip.AddrPortFrom(wn.a, 8080), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var c net.Conn
		wn.nsB.Do(t, func() {
			d := net.Dialer{Timeout: 30 * time.Second, Control: setCC}
			c, err = d.Dial("tcp4", netip.AddrPortFrom(wn.a, 8080).String())
		})
		if err != nil {
			t.Fatal(err)
		}
		if f, err = ln.AcceptFlow(); err != nil {
			c.Close()
			t.Fatal(err)
		}
		k = c.(*net.TCPConn)
		checkCC(t, k)
		deadline := time.Now().Add(wireTimeout)
		f.SetDeadline(deadline)
		k.SetDeadline(deadline)
	}
	defer f.Close()
	defer k.Close()
	ours, theirs := randomBytes(*wireTest, 41), randomBytes(*wireTest, 42)
	kc := make(chan error, 1)
	var kernelGot [32]byte
	go func() {
		var err error
		kernelGot, err = kernelBulk(k, theirs)
		kc <- err
	}()
	start := time.Now()
	got, werr, rerr := transfer(t, f, f, ours)
	kerr := <-kc
	st := wn.stats()
	if werr != nil || rerr != nil || kerr != nil {
		t.Fatalf("our write: %v, our read: %v, kernel: %v (wire %+v, stack %+v)", werr, rerr, kerr, st, wn.stack.Stats().TCP)
	}
	if got != sha256.Sum256(theirs) {
		t.Error("kernel to us: the bytes differ")
	}
	if kernelGot != sha256.Sum256(ours) {
		t.Error("us to kernel: the bytes differ")
	}
	faults := func(c netem.Counters) string {
		var s []string
		for _, f := range []struct {
			n string
			v uint64
		}{{"lost", c.Lost}, {"burst-lost", c.BurstLost}, {"dup", c.Duplicated}, {"reordered", c.Reordered}, {"queue-drops", c.QueueDrops}} {
			if f.v != 0 {
				s = append(s, fmt.Sprintf("%s %d", f.n, f.v))
			}
		}
		return fmt.Sprintf("%d packets (%s)", c.Packets, strings.Join(s, ", "))
	}
	tcp := wn.stack.Stats().TCP
	t.Logf("%d bytes each way in %v; wire to the kernel %s, from it %s; stack: %d segments out, %d retransmitted, %d RTOs, %d D-SACKs received",
		len(ours), time.Since(start).Round(time.Millisecond), faults(st.AtoB), faults(st.BtoA), tcp.SegmentsOut, tcp.Retransmits, tcp.Timeouts, tcp.DSACKs)
}

// tcpExt returns the TcpExt counters of /proc/net/netstat in ns.
func tcpExt(tb testing.TB, ns *testutil.TunNet) map[string]int64 {
	tb.Helper()
	args := ns.Exec("cat", "/proc/net/netstat")
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		tb.Fatalf("%v: %v", args, err)
	}
	m := map[string]int64{}
	lines := strings.Split(string(out), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(vals) != len(names) {
			continue
		}
		for j := 1; j < len(names); j++ {
			v, _ := strconv.ParseInt(vals[j], 10, 64)
			m[names[j]] = v
		}
	}
	return m
}

// logTCPExt logs the counters that moved from before to after, per op.
func logTCPExt(b *testing.B, who string, before, after map[string]int64) {
	var keys []string
	for k, v := range after {
		if v != before[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s=%.1f", k, float64(after[k]-before[k])/float64(b.N))
	}
	b.Logf("kernel %s's TcpExt per op:%s", who, sb.String())
}
