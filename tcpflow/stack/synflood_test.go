package stack

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

const (
	floodBacklog  = 8
	floodMaxConns = 16
	floodPort     = 80
)

// newFloodPair is newPair with b's connection limit and SYN backlog
// set (pairOpts.tcp cannot: the stack overrides them with its own).
func newFloodPair(t *testing.T, to tcp.Options) *pair {
	t.Helper()
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	ea, eb := channel.NewPair(1500, channel.FaultOptions{Clock: clk})
	la, lb := &filterLink{Endpoint: ea}, &filterLink{Endpoint: eb}
	a, err := New(Options{Addr: netip.PrefixFrom(addrA, 24), Link: la, Clock: clk, TCP: tcp.Options{TimeWait: 60 * time.Second}})
	require.NoError(t, err)
	to.TimeWait, to.MaxConnections, to.SYNBacklog = 60*time.Second, floodMaxConns, floodBacklog
	b, err := New(Options{Addr: netip.PrefixFrom(addrB, 24), Link: lb, Clock: clk, TCP: to})
	require.NoError(t, err)
	p := &pair{a: a, b: b, la: la, lb: lb, clk: clk}
	t.Cleanup(func() {
		p.a.Close()
		p.b.Close()
		ea.Close()
		eb.Close()
	})
	return p
}

// spoofed returns a random spoofed source of a flood: an address of
// 10.0.0.0/24 that is neither stack's, and a port.
func spoofed(r *rand.Rand) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(3 + r.IntN(250))}), uint16(1024+r.IntN(60000)))
}

// craft returns an IPv4 packet carrying a TCP segment from src to b.
func craft(t *testing.T, src netip.AddrPort, f header.TCPFields, o *header.TCPOptions) header.IPv4 {
	var buf [header.TCPMaxOptionsSize]byte
	if o != nil {
		n, err := o.Marshal(buf[:])
		require.NoError(t, err)
		f.Options = buf[:n]
	}
	f.SrcPort, f.DstPort = src.Port(), floodPort
	seg := make(header.TCP, f.EncodedLen())
	seg.Encode(&f)
	seg.SetChecksumFor(src.Addr(), addrB)
	return ipPacket(src.Addr(), addrB, header.ProtocolTCP, seg)
}

// flood hands b n SYNs from spoofed sources, like a real client's (with
// every option), checking the connection bound after each.
func flood(t *testing.T, p *pair, n int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range n {
		o := header.TCPOptions{
			HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7,
			SACKPermitted: true, HasTimestamps: true, TSVal: r.Uint32(),
		}
		p.b.deliver(craft(t, spoofed(r), header.TCPFields{SeqNum: r.Uint32(), Flags: header.TCPFlagSYN, WindowSize: 65535}, &o))
		if got := p.b.NumConnections(); got > floodMaxConns {
			t.Fatalf("after %d SYNs: %d connections", i+1, got)
		}
	}
}

// halfOpen counts b's connections in SYN-RECEIVED.
func halfOpen(p *pair) int { return strings.Count(stateOf(p.b), "SYN-RECEIVED") }

// segmentLog records the TCP segments a filterLink sends to one address.
type segmentLog struct {
	mu   sync.Mutex
	segs []header.TCP
}

func (l *segmentLog) add(ip header.IPv4) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.segs = append(l.segs, append(header.TCP(nil), ip.Payload()...))
}

func (l *segmentLog) all() []header.TCP {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]header.TCP(nil), l.segs...)
}

// TestSYNFloodCookies floods a listener with SYNs from spoofed sources:
// b keeps only its backlog's worth of half-open connections and answers
// the rest with cookies; a real client then connects through a cookie
// while the flood still fills the backlog, and keeps window scale, SACK
// and timestamps.
func TestSYNFloodCookies(t *testing.T) {
	p := newFloodPair(t, tcp.Options{})
	ln, err := p.b.ListenFlows(context.Background(), netip.AddrPortFrom(addrB, floodPort), nil)
	require.NoError(t, err)
	defer ln.Close()

	// What b sends: to a, logged; to the spoofed sources, counted and
	// dropped.
	var toA segmentLog
	var mu sync.Mutex
	spoofedSYNACKs := 0
	p.lb.setDrop(func(ip header.IPv4) bool {
		if ip.Dst() == addrA {
			toA.add(ip)
			return false
		}
		if header.TCP(ip.Payload()).Flags() == header.TCPFlagSYN|header.TCPFlagACK {
			mu.Lock()
			spoofedSYNACKs++
			mu.Unlock()
		}
		return true
	})

	const n = 10_000
	timersBefore := p.clk.(*clock.Manual).Pending()
	flood(t, p, n, 1)
	st := p.b.Stats().TCP
	assert.Equal(t, floodBacklog, p.b.NumConnections(), "only the backlog holds state")
	assert.Equal(t, floodBacklog, halfOpen(p))
	assert.Equal(t, uint64(floodBacklog), st.PassiveOpens)
	assert.Equal(t, uint64(n-floodBacklog), st.SYNCookiesSent)
	assert.Equal(t, uint64(0), st.SYNDropped)
	assert.Equal(t, uint64(0), st.SYNCookiesValid)
	mu.Lock()
	assert.Equal(t, n, spoofedSYNACKs, "every SYN was answered")
	mu.Unlock()
	// The cookies armed no timer: only the half-open connections' RTOs.
	assert.LessOrEqual(t, p.clk.(*clock.Manual).Pending()-timersBefore, floodBacklog)

	// A real client connects while the flood fills the backlog.
	type res struct {
		f   tcpflow.Flow
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		f, err := ln.AcceptFlow()
		accepted <- res{f, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fa, err := p.a.CreateConnection(ctx, netip.AddrPortFrom(addrB, floodPort), tcpflow.DialOptions{})
	require.NoError(t, err)
	defer fa.Close()
	var r res
	select {
	case r = <-accepted:
	case <-time.After(10 * time.Second): // a guard, not a timing
		t.Fatal("b accepted nothing")
	}
	require.NoError(t, r.err)
	fb := r.f
	defer fb.Close()
	st = p.b.Stats().TCP
	assert.Equal(t, uint64(1), st.SYNCookiesValid, "the client came through a cookie")
	assert.Equal(t, uint64(n-floodBacklog+1), st.SYNCookiesSent)
	assert.Equal(t, uint64(0), st.SYNCookiesInvalid)
	assert.Equal(t, floodBacklog, halfOpen(p), "the flood still fills the backlog")
	assert.Equal(t, floodBacklog+1, p.b.NumConnections())

	// The cookie SYN-ACK kept the options: b announced window scale 5
	// (1 MB buffers), SACK and timestamps to a.
	segs := toA.all()
	require.NotEmpty(t, segs)
	require.Equal(t, header.TCPFlagSYN|header.TCPFlagACK, segs[0].Flags())
	o, err := header.ParseTCPOptions(segs[0].Options())
	require.NoError(t, err)
	assert.True(t, o.HasWindowScale && o.WindowScale == 5 && o.SACKPermitted && o.HasTimestamps, "%+v", o)

	// Data both ways; the first transmission of a's third data segment
	// is lost, so that b must SACK what follows.
	var dropMu sync.Mutex
	seen := map[uint32]bool{}
	p.la.setDrop(func(ip header.IPv4) bool {
		tcpHdr := header.TCP(ip.Payload())
		if ip.Dst() != addrB || len(tcpHdr.Payload()) == 0 {
			return false
		}
		dropMu.Lock()
		defer dropMu.Unlock()
		if seen[tcpHdr.SeqNum()] {
			return false
		}
		seen[tcpHdr.SeqNum()] = true
		return len(seen) == 3
	})
	drive(t, p.clk, 100*time.Microsecond)
	// Guards, not timings: a broken connection fails instead of hanging.
	fa.SetDeadline(time.Now().Add(60 * time.Second))
	fb.SetDeadline(time.Now().Add(60 * time.Second))
	da, db := randomBytes(300_000, 1), randomBytes(200_000, 2)
	var wg sync.WaitGroup
	var sumB [32]byte
	var werrB, rerrB error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sumB, werrB, rerrB = transfer(t, fb, fa, db)
	}()
	sumA, werrA, rerrA := transfer(t, fa, fb, da)
	wg.Wait()
	require.NoError(t, werrA)
	require.NoError(t, rerrA)
	require.NoError(t, werrB)
	require.NoError(t, rerrB)
	assert.Equal(t, sha256.Sum256(da), sumA)
	assert.Equal(t, sha256.Sum256(db), sumB)

	// What b sent a after the handshake: timestamps on every segment,
	// a scaled window (1 MB >> 5 fits in 15 bits, unscaled it would
	// read 65535) and SACK blocks once a segment was lost.
	sacked := false
	for _, s := range toA.all()[1:] {
		o, err := header.ParseTCPOptions(s.Options())
		require.NoError(t, err)
		require.True(t, o.HasTimestamps, "timestamps on every segment")
		if s.Flags()&header.TCPFlagRST == 0 {
			require.LessOrEqual(t, s.WindowSize(), uint16(1<<20>>5), "window scaled")
		}
		sacked = sacked || o.NumSACKBlocks > 0
	}
	assert.True(t, sacked, "b sent SACK blocks")
}

// TestSYNFloodForgedACK sends an ACK with a wrong cookie during a flood:
// it is reset and creates nothing.
func TestSYNFloodForgedACK(t *testing.T) {
	p := newFloodPair(t, tcp.Options{})
	require.NoError(t, p.b.Listen(floodPort, tcpflow.Listener{Process: func(f tcpflow.Flow) { io.Copy(io.Discard, f) }}))
	var mu sync.Mutex
	var synacks, resets []header.TCP
	p.lb.setDrop(func(ip header.IPv4) bool {
		s := append(header.TCP(nil), ip.Payload()...)
		mu.Lock()
		defer mu.Unlock()
		switch s.Flags() {
		case header.TCPFlagSYN | header.TCPFlagACK:
			synacks = append(synacks, s)
		case header.TCPFlagRST:
			resets = append(resets, s)
		}
		return true
	})
	flood(t, p, 100, 2)
	require.Equal(t, uint64(100-floodBacklog), p.b.Stats().TCP.SYNCookiesSent)

	// The forger answers the last cookie SYN-ACK, wrongly: another
	// source port, another sequence number, another cookie.
	mu.Lock()
	last := synacks[len(synacks)-1]
	mu.Unlock()
	peerAddr := netip.MustParseAddr("10.0.0.77")
	forged := []struct {
		src      netip.AddrPort
		seq, ack uint32
	}{
		{netip.AddrPortFrom(peerAddr, 4444), last.AckNum(), last.SeqNum() + 1},
		{netip.AddrPortFrom(peerAddr, last.DstPort()), last.AckNum() + 1, last.SeqNum() + 1},
		{netip.AddrPortFrom(peerAddr, last.DstPort()), last.AckNum(), last.SeqNum() + 2},
	}
	for i, f := range forged {
		p.b.deliver(craft(t, f.src, header.TCPFields{SeqNum: f.seq, AckNum: f.ack, Flags: header.TCPFlagACK, WindowSize: 1000}, nil))
		mu.Lock()
		require.Len(t, resets, i+1, "forgery %d reset", i)
		assert.Equal(t, f.ack, resets[i].SeqNum())
		assert.Equal(t, f.src.Port(), resets[i].DstPort())
		mu.Unlock()
	}
	st := p.b.Stats().TCP
	assert.Equal(t, uint64(len(forged)), st.SYNCookiesInvalid)
	assert.Equal(t, uint64(0), st.SYNCookiesValid)
	assert.Equal(t, uint64(floodBacklog), st.PassiveOpens)
	assert.Equal(t, floodBacklog, p.b.NumConnections(), "nothing created")
}

// TestSYNFloodNoCookies disables cookies: a full backlog drops SYNs, the
// real client's included (the old behaviour).
func TestSYNFloodNoCookies(t *testing.T) {
	p := newFloodPair(t, tcp.Options{NoSYNCookies: true})
	ln, err := p.b.ListenFlows(context.Background(), netip.AddrPortFrom(addrB, floodPort), nil)
	require.NoError(t, err)
	defer ln.Close()
	var mu sync.Mutex
	toA := 0
	p.lb.setDrop(func(ip header.IPv4) bool {
		if ip.Dst() == addrA {
			mu.Lock()
			toA++
			mu.Unlock()
		}
		return true
	})
	const n = 1000
	flood(t, p, n, 3)
	st := p.b.Stats().TCP
	assert.Equal(t, uint64(n-floodBacklog), st.SYNDropped)
	assert.Equal(t, uint64(0), st.SYNCookiesSent)
	assert.Equal(t, floodBacklog, p.b.NumConnections())

	// The client's SYN is dropped: no answer (the clock stands still, so
	// it is not retransmitted), and the dial fails when cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		f, err := p.a.CreateConnection(ctx, netip.AddrPortFrom(addrB, floodPort), tcpflow.DialOptions{})
		if f != nil {
			f.Close()
		}
		errc <- err
	}()
	eventually(t, func() bool { return p.b.Stats().TCP.SYNDropped == n-floodBacklog+1 }, "the client's SYN dropped")
	cancel()
	assert.Error(t, <-errc)
	mu.Lock()
	assert.Equal(t, 0, toA, "b never answered a")
	mu.Unlock()
	assert.Equal(t, uint64(0), p.b.Stats().TCP.SYNCookiesValid)
}

// TestSYNFloodListenersFunction floods a port served by the listeners
// function (SetListeners): it has a backlog and cookies like a Listen
// port, so the flood stays bounded and a real client still gets in.
func TestSYNFloodListenersFunction(t *testing.T) {
	p := newFloodPair(t, tcp.Options{})
	got := make(chan string, 1)
	p.b.SetListeners(func(port uint16) *tcpflow.Listener {
		if port != floodPort {
			return nil
		}
		return &tcpflow.Listener{Process: func(f tcpflow.Flow) {
			b := make([]byte, 5)
			if _, err := io.ReadFull(f, b); err == nil {
				got <- string(b)
			}
		}}
	})
	flood(t, p, 1000, 9)
	assert.Equal(t, floodBacklog, halfOpen(p), "the backlog bounds the half-open connections")
	assert.EqualValues(t, 1000-floodBacklog, p.b.Stats().TCP.SYNCookiesSent)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := p.a.CreateConnection(ctx, netip.AddrPortFrom(addrB, floodPort), tcpflow.DialOptions{})
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteNodelay([]byte("hello"))
	require.NoError(t, err)
	select {
	case s := <-got:
		assert.Equal(t, "hello", s)
	case <-time.After(10 * time.Second): // a guard, not a timing
		t.Fatal("the listeners function's Process never got the data")
	}
	assert.EqualValues(t, 1, p.b.Stats().TCP.SYNCookiesValid)
}
