package stack

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
)

// filterLink wraps a link endpoint; drop, when set, discards outgoing
// packets for which it returns true.
type filterLink struct {
	link.Endpoint
	drop atomic.Pointer[func(header.IPv4) bool]
}

func (f *filterLink) WritePacket(pkt []byte) error {
	if d := f.drop.Load(); d != nil && (*d)(header.IPv4(pkt)) {
		return nil
	}
	return f.Endpoint.WritePacket(pkt)
}

// The optional link interfaces are passed through, so that the stack
// runs over a filterLink as it does over the channel link itself.

func (f *filterLink) WritePacketv(hdr, payload []byte) error {
	if d := f.drop.Load(); d != nil && (*d)(header.IPv4(append(append([]byte(nil), hdr...), payload...))) {
		return nil
	}
	return f.Endpoint.(link.GatherWriter).WritePacketv(hdr, payload)
}

func (f *filterLink) ChecksumOffload() bool {
	co, ok := f.Endpoint.(link.ChecksumOffloader)
	return ok && co.ChecksumOffload()
}

func (f *filterLink) SetLendingReceiver(fn func(*[]byte) bool) {
	f.Endpoint.(link.Lender).SetLendingReceiver(fn)
}

func (f *filterLink) Return(b *[]byte) { f.Endpoint.(link.Lender).Return(b) }

func (f *filterLink) setDrop(d func(header.IPv4) bool) {
	if d == nil {
		f.drop.Store(nil)
		return
	}
	f.drop.Store(&d)
}

func dropAll(header.IPv4) bool { return true }

type pair struct {
	a, b   *Stack
	la, lb *filterLink
	clk    clock.Clock
}

type pairOpts struct {
	mtu    int
	faults channel.FaultOptions
	clk    clock.Clock
	tcp    tcp.Options
	bufs   int
}

// newPair returns two stacks, 10.0.0.1 and 10.0.0.2, over a channel pair.
func newPair(t testing.TB, po pairOpts) *pair {
	t.Helper()
	if po.mtu == 0 {
		po.mtu = 1500
	}
	if po.clk == nil {
		po.clk = clock.NewManual(time.Unix(1_700_000_000, 0))
	}
	if po.faults.Clock == nil {
		po.faults.Clock = po.clk
	}
	ea, eb := channel.NewPair(po.mtu, po.faults)
	la, lb := &filterLink{Endpoint: ea}, &filterLink{Endpoint: eb}
	mk := func(addr netip.Addr, l link.Endpoint) *Stack {
		to := po.tcp
		to.TimeWait = 60 * time.Second
		if po.bufs != 0 {
			to.SendBuffer, to.RecvBuffer = po.bufs, po.bufs
		}
		s, err := New(Options{Addr: netip.PrefixFrom(addr, 24), Link: l, Clock: po.clk, TCP: to})
		require.NoError(t, err)
		return s
	}
	p := &pair{a: mk(addrA, la), b: mk(addrB, lb), la: la, lb: lb, clk: po.clk}
	t.Cleanup(func() {
		p.a.Close()
		p.b.Close()
		ea.Close()
		eb.Close()
	})
	return p
}

// connect has b listen on port and a dial it; it returns a's and b's
// flows.
func (p *pair) connect(t testing.TB, port uint16, ka *tcpflow.Keepalive) (tcpflow.Flow, tcpflow.Flow) {
	t.Helper()
	ln, err := p.b.ListenFlows(context.Background(), netip.AddrPortFrom(addrB, port), nil)
	require.NoError(t, err)
	defer ln.Close()
	type res struct {
		f   tcpflow.Flow
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := ln.AcceptFlow()
		ch <- res{f, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fa, err := p.a.CreateConnection(ctx, netip.AddrPortFrom(addrB, port), tcpflow.DialOptions{Keepalive: ka})
	require.NoError(t, err)
	r := <-ch
	require.NoError(t, r.err)
	t.Cleanup(func() { fa.Close(); r.f.Close() })
	return fa, r.f
}

// randomBytes returns n seeded pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// transfer writes data on w (in chunks, then CloseWrite) while reading
// everything from r; it returns the SHA-256 of what was read.
func transfer(t testing.TB, w, r tcpflow.Flow, data []byte) (sum [32]byte, werr, rerr error) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for off := 0; off < len(data); {
			n := min(len(data)-off, 40_000)
			m, err := w.Write(data[off : off+n])
			off += m
			if err != nil {
				werr = err
				return
			}
		}
		werr = w.CloseWrite()
	}()
	h := sha256.New()
	_, rerr = io.Copy(h, r)
	wg.Wait()
	copy(sum[:], h.Sum(nil))
	return sum, werr, rerr
}

// eventually polls cond (the link delivers in its own goroutine).
func eventually(t testing.TB, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting: " + msg)
		}
		time.Sleep(time.Millisecond)
	}
}

// drive advances a manual clock by step every millisecond of real time
// until the test ends, for transfers where losses need the RTO.
func drive(t testing.TB, clk clock.Clock, step time.Duration) {
	m, ok := clk.(*clock.Manual)
	if !ok {
		return
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				m.Advance(step)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// watchdog logs the stacks' connections if the test runs longer than d.
func (p *pair) watchdog(t testing.TB, d time.Duration) {
	tm := time.AfterFunc(d, func() {
		println("WATCHDOG a:\n" + p.a.tcp.DebugDump() + "b:\n" + p.b.tcp.DebugDump())
	})
	t.Cleanup(func() { tm.Stop() })
}
