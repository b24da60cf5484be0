package stack

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

// The attack of issue 14: peers that complete the handshake, then
// advertise a zero window and never open it, while answering every
// probe. Each pins what the server wrote to it.

// demuxLink is the far end of a stack's link, shared by a second stack
// (the real client, at addrA) and raw peers (every other address):
// packets for addrA go to the stack's receiver, the others to the raw
// peers. Both answer from the link's delivery goroutine.
type demuxLink struct {
	ep   *channel.Endpoint
	recv atomic.Pointer[func([]byte)]
	// tap, when set, sees every packet for addrA first.
	tap atomic.Pointer[func(header.IPv4)]
	raw func(header.IPv4)
}

func newDemuxLink(ep *channel.Endpoint, raw func(header.IPv4)) *demuxLink {
	d := &demuxLink{ep: ep, raw: raw}
	ep.SetReceiver(func(pkt []byte) {
		ip := header.IPv4(pkt)
		if ip.Dst() != addrA {
			d.raw(ip)
			return
		}
		if t := d.tap.Load(); t != nil {
			(*t)(ip)
		}
		if f := d.recv.Load(); f != nil {
			(*f)(pkt)
		}
	})
	return d
}

func (d *demuxLink) MTU() int                       { return d.ep.MTU() }
func (d *demuxLink) WritePacket(pkt []byte) error   { return d.ep.WritePacket(pkt) }
func (d *demuxLink) WritePacketv(h, p []byte) error { return d.ep.WritePacketv(h, p) }
func (d *demuxLink) ChecksumOffload() bool          { return d.ep.ChecksumOffload() }
func (d *demuxLink) Close() error                   { return nil } // the test closes ep
func (d *demuxLink) SetReceiver(f func([]byte)) {
	if f == nil {
		d.recv.Store(nil)
		return
	}
	d.recv.Store(&f)
}

// zwPeers plays any number of zero-window peers of a server stack, by
// raw segments on the link: a SYN, the ACK of the SYN-ACK with a zero
// window, and an ACK with a zero window to anything that arrives
// (probes), forever. A reset ends a peer.
type zwPeers struct {
	ep     *channel.Endpoint
	server netip.AddrPort

	mu     sync.Mutex
	conns  map[netip.AddrPort]*zwConn
	next   uint16
	events chan zwEvent // established or reset, in order
	probes atomic.Uint64
	// clk, when set, times what log records.
	clk clock.Clock
	log []zwRecord
}

// zwRecord is a probe (n < 0), data (n bytes) or a reset (n = 0)
// received by a peer, with the clock's time.
type zwRecord struct {
	at   time.Time
	peer netip.AddrPort
	n    int
}

type zwConn struct {
	seq, ack    uint32
	established bool
	// openAfter, when positive, opens the window (once) in the answer
	// to that probe: the peer takes one segment of data, then closes it
	// again.
	openAfter, probes int
	data              []byte
}

type zwEvent struct {
	peer  netip.AddrPort
	reset bool
}

var zwAddr = netip.MustParseAddr("10.0.0.3")

func newZWPeers(ep *channel.Endpoint, server netip.AddrPort) *zwPeers {
	return &zwPeers{ep: ep, server: server, conns: map[netip.AddrPort]*zwConn{}, next: 1024, events: make(chan zwEvent, 4096)}
}

func (z *zwPeers) send(src netip.AddrPort, c *zwConn, flags header.TCPFlags, window uint16, o *header.TCPOptions) {
	f := header.TCPFields{SrcPort: src.Port(), DstPort: z.server.Port(), SeqNum: c.seq, AckNum: c.ack, Flags: flags, WindowSize: window}
	var buf [header.TCPMaxOptionsSize]byte
	if o != nil {
		n, _ := o.Marshal(buf[:])
		f.Options = buf[:n]
	}
	seg := make(header.TCP, f.EncodedLen())
	seg.Encode(&f)
	seg.SetChecksumFor(src.Addr(), z.server.Addr())
	_ = z.ep.WritePacket(ipPacket(src.Addr(), z.server.Addr(), header.ProtocolTCP, seg))
}

// open starts one more peer: it sends its SYN; the handshake completes
// in the link's goroutine (see handle), and events reports it.
func (z *zwPeers) open() netip.AddrPort { return z.openAfter(0) }

// openAfter is open for a peer that opens its window in its answer to
// probe n (if n > 0).
func (z *zwPeers) openAfter(n int) netip.AddrPort {
	z.mu.Lock()
	src := netip.AddrPortFrom(zwAddr, z.next)
	z.next++
	c := &zwConn{seq: 7000, openAfter: n}
	z.conns[src] = c
	z.mu.Unlock()
	z.send(src, c, header.TCPFlagSYN, 65535, &header.TCPOptions{HasMSS: true, MSS: 1460})
	return src
}

// resetAll resets every peer's connection.
func (z *zwPeers) resetAll() {
	z.mu.Lock()
	defer z.mu.Unlock()
	for src, c := range z.conns {
		if c.established {
			z.send(src, c, header.TCPFlagRST, 0, nil)
		}
		delete(z.conns, src)
	}
}

// handle is the raw peers' receiver.
func (z *zwPeers) handle(ip header.IPv4) {
	if ip.Protocol() != header.ProtocolTCP {
		return
	}
	t := header.TCP(ip.Payload())
	dst := netip.AddrPortFrom(ip.Dst(), t.DstPort())
	z.mu.Lock()
	c := z.conns[dst]
	if c == nil {
		z.mu.Unlock()
		return
	}
	var ev *zwEvent
	record := func(n int) {
		if z.clk != nil {
			z.log = append(z.log, zwRecord{at: z.clk.Now(), peer: dst, n: n})
		}
	}
	switch {
	case t.Flags()&header.TCPFlagRST != 0:
		delete(z.conns, dst)
		record(0)
		ev = &zwEvent{peer: dst, reset: true}
	case t.Flags()&header.TCPFlagSYN != 0:
		if !c.established {
			c.seq++
			c.ack = t.SeqNum() + 1
			c.established = true
			ev = &zwEvent{peer: dst}
		}
		z.send(dst, c, header.TCPFlagACK, 0, nil)
	case len(t.Payload()) > 0 && t.SeqNum() == c.ack:
		// Data in the window it opened: taken, and the window closed.
		record(len(t.Payload()))
		c.data = append(c.data, t.Payload()...)
		c.ack += uint32(len(t.Payload()))
		z.send(dst, c, header.TCPFlagACK, 0, nil)
	default:
		// A probe, or anything else: the window stays closed.
		z.probes.Add(1)
		record(-1)
		c.probes++
		window := uint16(0)
		if c.probes == c.openAfter {
			window = 65535
		}
		z.send(dst, c, header.TCPFlagACK, window, nil)
	}
	z.mu.Unlock()
	if ev != nil {
		z.events <- *ev
	}
}

// floodServer accepts on ln and writes chunk to every flow, over and
// over, until the flow fails: a server whose clients never read.
// written counts the Writes that completed.
type floodServer struct {
	ln      tcpflow.FlowListener
	chunk   []byte
	wg      sync.WaitGroup
	mu      sync.Mutex
	flows   []tcpflow.Flow
	written atomic.Int64
	errs    chan error
}

func startFloodServer(ln tcpflow.FlowListener, chunk []byte) *floodServer {
	s := &floodServer{ln: ln, chunk: chunk, errs: make(chan error, 8192)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			f, err := ln.AcceptFlow()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.flows = append(s.flows, f)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				for {
					if _, err := f.Write(s.chunk); err != nil {
						s.errs <- err
						return
					}
					s.written.Add(1)
				}
			}()
		}
	}()
	return s
}

func (s *floodServer) numFlows() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.flows)
}

// stop closes the listener and every flow, and waits for the writers.
func (s *floodServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for _, f := range s.flows {
		f.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// heapInUse returns the heap in use after the garbage is collected
// (twice: pooled buffers go with the second).
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// hostileRig is a server stack b on one end of a link, and on the other
// a real client stack a and zero-window peers.
type hostileRig struct {
	a, b   *Stack
	ea, eb *channel.Endpoint
	peers  *zwPeers
	dm     *demuxLink
}

func newHostileRig(t testing.TB, clk clock.Clock, o Options) *hostileRig {
	t.Helper()
	ea, eb := channel.NewPair(1500, channel.FaultOptions{Clock: clk, QueueLimit: 8192})
	r := &hostileRig{ea: ea, eb: eb}
	r.peers = newZWPeers(ea, netip.AddrPortFrom(addrB, 80))
	r.dm = newDemuxLink(ea, r.peers.handle)
	o.Addr, o.Link, o.Clock = netip.PrefixFrom(addrB, 24), eb, clk
	b, err := New(o)
	require.NoError(t, err)
	a, err := New(Options{Addr: netip.PrefixFrom(addrA, 24), Link: r.dm, Clock: clk})
	require.NoError(t, err)
	r.a, r.b = a, b
	t.Cleanup(func() {
		a.Close()
		b.Close()
		ea.Close()
		eb.Close()
	})
	return r
}

// quiet waits until every packet sent either way has been handled (and
// what it made its receiver send, in turn).
func (r *hostileRig) quiet(t testing.TB) {
	eventually(t, func() bool {
		ra, rb := r.ea.Stats().RxPackets, r.eb.Stats().RxPackets // first
		return r.ea.Stats().TxPackets == rb && r.eb.Stats().TxPackets == ra
	}, "link quiet")
}

// flood opens n zero-window peers, one after another (each once the
// previous one is established or reset); it returns how many were reset.
func (r *hostileRig) flood(t testing.TB, n int) (resets int) {
	t.Helper()
	for range n {
		r.peers.open()
		select {
		case ev := <-r.peers.events:
			if ev.reset {
				resets++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a zero-window peer got no answer")
		}
	}
	return resets
}

// echo serves port 81 of b: every flow's bytes are sent back, then a
// FIN.
func (r *hostileRig) echo(t testing.TB) {
	ln, err := r.b.ListenFlows(context.Background(), netip.AddrPortFrom(addrB, 81), nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			f, err := ln.AcceptFlow()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer f.Close()
				if _, err := io.Copy(f, f); err == nil {
					f.CloseWrite()
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// roundTrip dials b's echo port from a, sends data and reads it back; it
// returns the largest window b advertised to the connection once
// established (scaled).
func (r *hostileRig) roundTrip(t testing.TB, data []byte) (maxWindow int) {
	t.Helper()
	var mu sync.Mutex
	shift := -1
	tap := func(ip header.IPv4) {
		tc := header.TCP(ip.Payload())
		mu.Lock()
		defer mu.Unlock()
		if tc.Flags()&header.TCPFlagSYN != 0 {
			shift = 0
			if o, err := header.ParseTCPOptions(tc.Options()); err == nil && o.HasWindowScale {
				shift = int(o.WindowScale)
			}
			return
		}
		if shift >= 0 {
			maxWindow = max(maxWindow, int(tc.WindowSize())<<shift)
		}
	}
	r.dm.tap.Store(&tap)
	defer r.dm.tap.Store(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := r.a.CreateConnection(ctx, netip.AddrPortFrom(addrB, 81), tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	f.SetDeadline(time.Now().Add(60 * time.Second)) // against a hang only
	wd := time.AfterFunc(30*time.Second, func() {
		println("WATCHDOG a:\n" + r.a.tcp.DebugDump() + "b:\n" + r.b.tcp.DebugDump())
	})
	defer wd.Stop()
	sum, werr, rerr := transfer(t, f, f, data)
	require.NoError(t, werr)
	require.NoError(t, rerr)
	require.Equal(t, sha256.Sum256(data), sum, "byte-exact")
	mu.Lock()
	defer mu.Unlock()
	return maxWindow
}

// TestZeroWindowFloodHeldByBudget floods a server with zero-window peers
// to which it writes without end. The stack's buffer budget holds them:
// its accounting and the heap stay under the budget (without it each
// peer pins a full send buffer, 1 MiB), a real client on the same
// stack still connects and transfers byte-exact, with the windows the
// server advertises to it shrunk, and once even the floors left for
// new connections are taken, SYNs are reset and counted.
func TestZeroWindowFloodHeldByBudget(t *testing.T) {
	const (
		budget = 16 << 20
		peers  = 64
	)
	// The whole buffer as the window from the start, so that what the
	// budget takes is not mistaken for autotuning's growth.
	r := newHostileRig(t, clock.Real(), Options{TCP: tcp.Options{BufferBudget: budget, FixedRecvWindow: true}})
	r.echo(t)
	data := randomBytes(256<<10, 14)
	chunk := make([]byte, 1<<20)

	// Before the flood: the full receive buffer is offered.
	full := r.roundTrip(t, data)
	require.Equal(t, 1<<20, full, "window without the flood")

	ln, err := r.b.ListenFlows(context.Background(), netip.AddrPortFrom(addrB, 80), nil)
	require.NoError(t, err)
	base := heapInUse()
	srv := startFloodServer(ln, chunk)
	defer srv.stop()
	require.Zero(t, r.flood(t, peers), "resets")
	// Every writer is blocked: with a full send buffer (its first Write
	// completed), or waiting for the budget.
	eventually(t, func() bool {
		return srv.numFlows() == peers && int(srv.written.Load())+r.waitingWriters() == peers
	}, "writers blocked")
	st := r.b.Stats().TCP
	grown := int64(heapInUse()) - int64(base)
	t.Logf("%d zero-window peers: %d bytes charged (budget %d), heap +%d bytes (%d per peer), %d writers waiting, %d full",
		peers, st.BufferBytes, budget, grown, grown/peers, r.b.tcp.BudgetWaiters(), srv.written.Load())
	// The connections' own state (about 5 KB each, both timers and
	// queues) comes on top of their buffers.
	require.Less(t, grown, int64(budget+peers*16<<10), "heap held under the budget")
	require.LessOrEqual(t, st.BufferBytes, uint64(budget))
	require.Greater(t, r.b.tcp.BudgetWaiters(), 0, "writers wait for the budget")

	// A real client still connects and transfers, in smaller windows.
	shrunk := r.roundTrip(t, data)
	t.Logf("window advertised to a real client: %d bytes alone, %d under the flood", full, shrunk)
	require.Less(t, shrunk, full/8, "window shrunk")
	require.Zero(t, r.b.Stats().TCP.BudgetRefused)

	// More peers take the floors the budget keeps for new connections,
	// until it holds no more: the next SYNs are reset and counted.
	var resets int
	for more := 0; resets == 0; more++ {
		// Each holds a 4 KiB floor: the budget holds fewer.
		require.Less(t, more, budget/(4<<10), "refused once the floors are taken")
		resets = r.flood(t, 1)
		if n := peers + more + 1; resets == 0 {
			eventually(t, func() bool {
				return srv.numFlows() == n && int(srv.written.Load())+r.waitingWriters() == n
			}, "writers blocked")
		}
	}
	st = r.b.Stats().TCP
	t.Logf("refused after %d more peers: %d bytes charged, %d refused", srv.numFlows()-peers, st.BufferBytes, st.BudgetRefused)
	require.EqualValues(t, 1, st.BudgetRefused)
	require.LessOrEqual(t, st.BufferBytes, uint64(budget))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = r.a.CreateConnection(ctx, netip.AddrPortFrom(addrB, 81), tcpflow.DialOptions{})
	require.True(t, errors.Is(err, tcpflow.ErrRefused), "a real client is refused too: %v", err)

	// Once the peers are gone, everything is given back.
	r.peers.resetAll()
	srv.stop()
	eventually(t, func() bool { return r.b.Stats().TCP.BufferBytes == 0 }, "budget given back")
}

// waitingWriters returns the number of b's writers waiting for its
// buffer budget.
func (r *hostileRig) waitingWriters() int { return r.b.tcp.BudgetWaiters() }

// BenchmarkZeroWindowPeers measures what zero-window peers cost a
// server that writes to each without end (1 MiB send buffers): an op is
// one more such peer, connected and its writer blocked. heap-B/peer is
// the growth of the heap in use (after two collections) divided by the
// peers; charged-B/peer the same for the stack's budget accounting.
// budget=none is the stack without a budget (as before issue 14);
// budget=default is the default, 256 MiB; budget=16MiB a small one, to
// see it held with few peers.
//
//	go test -run '^$' -bench ZeroWindowPeers -benchtime 250x ./tcpflow/stack
func BenchmarkZeroWindowPeers(b *testing.B) {
	for _, c := range []struct {
		name   string
		budget int
	}{{"none", -1}, {"default", 0}, {"16MiB", 16 << 20}} {
		b.Run("budget="+c.name, func(b *testing.B) {
			r := newHostileRig(b, clock.Real(), Options{TCP: tcp.Options{BufferBudget: c.budget, MaxConnections: 1 << 16, SYNBacklog: 1 << 12}})
			ln, err := r.b.ListenFlows(context.Background(), netip.AddrPortFrom(addrB, 80), nil)
			require.NoError(b, err)
			chunk := make([]byte, 1<<20)
			base := heapInUse()
			srv := startFloodServer(ln, chunk)
			defer srv.stop()
			defer r.peers.resetAll()
			b.ResetTimer()
			n := 0
			for range b.N {
				if r.flood(b, 1) > 0 {
					break // refused: the budget is exhausted
				}
				n++
				eventually(b, func() bool {
					return srv.numFlows() == n && int(srv.written.Load())+r.waitingWriters() == n
				}, "writers blocked")
			}
			b.StopTimer()
			grown := float64(int64(heapInUse()) - int64(base))
			b.ReportMetric(grown/float64(b.N), "heap-B/peer")
			b.ReportMetric(float64(r.b.Stats().TCP.BufferBytes)/float64(b.N), "charged-B/peer")
			b.ReportMetric(float64(b.N-n), "refused")
		})
	}
}

// TestZeroWindowProbesOnLink is TestZeroWindowProbeBackoff of package
// tcp on the in-memory link, with the manual clock stepped 10 ms at a
// time (the link quiet between steps): a peer that answers every probe
// with a zero window sees the probes' interval double from the RTO
// (200 ms) up to RTOMax (5 s), then a reset at the user timeout (30 s),
// and the server's Write fails with tcpflow.ErrTimeout; a peer that
// opens its window in its third answer gets the data at once.
func TestZeroWindowProbesOnLink(t *testing.T) {
	const ut = 30 * time.Second
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	r := newHostileRig(t, clk, Options{TCP: tcp.Options{RTOMax: 5 * time.Second, UserTimeout: ut}})
	r.peers.clk = clk
	ln, err := r.b.ListenFlows(context.Background(), netip.AddrPortFrom(addrB, 80), nil)
	require.NoError(t, err)
	defer ln.Close()
	want := []time.Duration{200, 600, 1400, 3000, 6200, 11200, 16200, 21200, 26200}
	for i := range want {
		want[i] *= time.Millisecond
	}

	// run writes data to a new peer's flow and steps the clock until
	// the peer is reset or has data; it returns the times (since the
	// write) of the probes, the reset and the data the peer got.
	run := func(openAfter int, data string) (probes []time.Duration, reset time.Duration, got int, f tcpflow.Flow) {
		peer := r.peers.openAfter(openAfter)
		for {
			select {
			case ev := <-r.peers.events:
				if ev.peer != peer {
					continue // the previous peer's reset
				}
			case <-time.After(10 * time.Second): // against a hang only
				t.Fatal("no handshake")
			}
			break
		}
		f, err := ln.AcceptFlow()
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		r.quiet(t)
		start := clk.Now()
		_, err = f.Write([]byte(data))
		require.NoError(t, err)
		for step := 0; step < int(ut/(10*time.Millisecond))+10; step++ {
			clk.Advance(10 * time.Millisecond)
			r.quiet(t)
			r.peers.mu.Lock()
			log := r.peers.log
			r.peers.log = nil
			r.peers.mu.Unlock()
			for _, rec := range log {
				if rec.peer != peer {
					continue
				}
				switch at := rec.at.Sub(start); {
				case rec.n < 0:
					probes = append(probes, at)
				case rec.n == 0:
					reset = at
				default:
					got += rec.n
				}
			}
			if reset != 0 || got > 0 {
				break
			}
		}
		return probes, reset, got, f
	}

	probes, reset, _, f := run(0, "stuck")
	require.Equal(t, want, probes, "probe times")
	require.Equal(t, ut, reset, "reset at the user timeout")
	_, err = f.Write([]byte("more"))
	require.True(t, errors.Is(err, tcpflow.ErrTimeout), "%v", err)
	require.EqualValues(t, 1, r.b.Stats().TCP.UserTimeouts)

	probes, reset, got, _ := run(3, "resumed")
	require.Equal(t, want[:3], probes)
	require.Zero(t, reset)
	require.Equal(t, len("resumed"), got, "sent once the window opened")
}
