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

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
)

func TestHandshakeAndEcho(t *testing.T) {
	p := newPair(t, pairOpts{})
	fa, fb := p.connect(t, 80, nil)
	assert.Equal(t, netip.AddrPortFrom(addrB, 80), fa.Dst())
	assert.Equal(t, addrA, fa.Src().Addr())
	assert.Equal(t, fa.Src(), fb.Dst())
	assert.Equal(t, fa.Dst(), fb.Src())
	assert.GreaterOrEqual(t, fa.Src().Port(), uint16(49152))

	_, err := fa.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 100)
	n, err := fb.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf[:n]))

	_, err = fb.WriteNodelay([]byte("world"))
	require.NoError(t, err)
	n, err = io.ReadFull(fa, buf[:5])
	require.NoError(t, err)
	assert.Equal(t, "world", string(buf[:n]))

	nv, err := fa.Writev(net.Buffers{[]byte("a"), []byte("bc"), []byte("def")})
	require.NoError(t, err)
	assert.EqualValues(t, 6, nv)
	_, err = io.ReadFull(fb, buf[:6])
	require.NoError(t, err)
	assert.Equal(t, "abcdef", string(buf[:6]))
	nv, err = fa.WritevNodelay(net.Buffers{[]byte("x"), []byte("yz")})
	require.NoError(t, err)
	assert.EqualValues(t, 3, nv)
	_, err = io.ReadFull(fb, buf[:3])
	require.NoError(t, err)
	assert.Equal(t, "xyz", string(buf[:3]))
}

func TestListenProcessAndListeners(t *testing.T) {
	p := newPair(t, pairOpts{})
	done := make(chan string, 2)
	echo := func(f tcpflow.Flow) {
		b, _ := io.ReadAll(f)
		f.Write(b)
		done <- string(b)
	}
	require.NoError(t, p.b.Listen(7, tcpflow.Listener{Process: echo}))
	assert.Error(t, p.b.Listen(7, tcpflow.Listener{Process: echo}))
	p.b.SetListeners(func(port uint16) *tcpflow.Listener {
		if port == 8 {
			return &tcpflow.Listener{Process: echo}
		}
		return nil
	})
	for _, port := range []uint16{7, 8} {
		f, err := p.a.CreateConnection(context.Background(), netip.AddrPortFrom(addrB, port), tcpflow.DialOptions{})
		require.NoError(t, err)
		_, err = f.Write([]byte("ping"))
		require.NoError(t, err)
		require.NoError(t, f.CloseWrite())
		b, err := io.ReadAll(f)
		require.NoError(t, err)
		assert.Equal(t, "ping", string(b))
		assert.Equal(t, "ping", <-done)
		f.Close()
	}
	_, err := p.a.CreateConnection(context.Background(), netip.AddrPortFrom(addrB, 9), tcpflow.DialOptions{})
	assert.ErrorIs(t, err, tcpflow.ErrRefused)
	p.b.Unlisten(7)
	_, err = p.a.CreateConnection(context.Background(), netip.AddrPortFrom(addrB, 7), tcpflow.DialOptions{})
	assert.ErrorIs(t, err, tcpflow.ErrRefused)
}

func TestRefused(t *testing.T) {
	p := newPair(t, pairOpts{})
	_, err := p.a.CreateConnection(context.Background(), netip.AddrPortFrom(addrB, 81), tcpflow.DialOptions{})
	require.Error(t, err)
	assert.ErrorIs(t, err, tcpflow.ErrRefused)
	var te *tcpflow.Error
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "dial", te.Op)
	assert.Equal(t, 0, p.a.NumConnections())
	assert.EqualValues(t, 1, p.b.Stats().TCP.ResetsOut)
}

func TestDialTimeout(t *testing.T) {
	p := newPair(t, pairOpts{})
	p.la.setDrop(dropAll)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.a.CreateConnection(ctx, netip.AddrPortFrom(addrB, 80), tcpflow.DialOptions{})
	assert.ErrorIs(t, err, tcpflow.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 0, p.a.NumConnections())
}

func TestSYNRetriesTimeout(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p := newPair(t, pairOpts{clk: clk})
	p.la.setDrop(dropAll)
	errc := make(chan error, 1)
	go func() {
		_, err := p.a.CreateConnection(context.Background(), netip.AddrPortFrom(addrB, 80), tcpflow.DialOptions{})
		errc <- err
	}()
	for i := 0; i < 200; i++ {
		select {
		case err := <-errc:
			assert.ErrorIs(t, err, tcpflow.ErrTimeout)
			return
		default:
		}
		clk.Advance(5 * time.Second)
		time.Sleep(time.Millisecond)
	}
	t.Fatal("dial did not time out")
}

func TestBulkBothWays(t *testing.T) {
	p := newPair(t, pairOpts{})
	drive(t, p.clk, time.Millisecond)
	p.watchdog(t, 5*time.Second)
	fa, fb := p.connect(t, 80, nil)
	const size = 4 << 20
	da, db := randomBytes(size, 1), randomBytes(size, 2)
	type result struct {
		sum        [32]byte
		werr, rerr error
	}
	ch := make(chan result, 1)
	go func() {
		s, w, r := transfer(t, fb, fa, db)
		ch <- result{s, w, r}
	}()
	sum, werr, rerr := transfer(t, fa, fb, da)
	require.NoError(t, werr)
	require.NoError(t, rerr)
	assert.Equal(t, sha256.Sum256(da), sum)
	r := <-ch
	require.NoError(t, r.werr)
	require.NoError(t, r.rerr)
	assert.Equal(t, sha256.Sum256(db), r.sum)
	t.Logf("a: %+v", p.a.Stats())
	t.Logf("link a: %+v", p.la.Endpoint.(*channel.Endpoint).Stats())
}

func TestHalfClose(t *testing.T) {
	p := newPair(t, pairOpts{})
	fa, fb := p.connect(t, 80, nil)
	_, err := fa.Write([]byte("request"))
	require.NoError(t, err)
	require.NoError(t, fa.CloseWrite())
	_, err = fa.Write([]byte("more"))
	assert.Error(t, err)
	b, err := io.ReadAll(fb)
	require.NoError(t, err)
	assert.Equal(t, "request", string(b))
	// b can still answer.
	_, err = fb.Write([]byte("response"))
	require.NoError(t, err)
	require.NoError(t, fb.Close())
	b, err = io.ReadAll(fa)
	require.NoError(t, err)
	assert.Equal(t, "response", string(b))
}

func TestResetOnStackClose(t *testing.T) {
	p := newPair(t, pairOpts{})
	fa, fb := p.connect(t, 80, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := fa.Read(make([]byte, 10))
		errc <- err
	}()
	p.b.Close() // aborts its connections with a reset
	err := <-errc
	assert.ErrorIs(t, err, tcpflow.ErrReset)
	_, err = fa.Write([]byte("x"))
	assert.ErrorIs(t, err, tcpflow.ErrReset)
	_, err = fb.Read(make([]byte, 1))
	assert.ErrorIs(t, err, net.ErrClosed)
}

func TestCloseErrClosed(t *testing.T) {
	p := newPair(t, pairOpts{})
	fa, _ := p.connect(t, 80, nil)
	require.NoError(t, fa.Close())
	assert.ErrorIs(t, fa.Close(), net.ErrClosed)
	_, err := fa.Read(make([]byte, 1))
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = fa.Write([]byte("x"))
	assert.ErrorIs(t, err, net.ErrClosed)
}

func TestReadDeadline(t *testing.T) {
	p := newPair(t, pairOpts{})
	fa, _ := p.connect(t, 80, nil)
	require.NoError(t, fa.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err := fa.Read(make([]byte, 1))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
}

func TestTimeWaitExpiry(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p := newPair(t, pairOpts{clk: clk})
	fa, fb := p.connect(t, 80, nil)
	require.NoError(t, fa.Close()) // a closes first: a ends in TIME-WAIT
	_, err := io.ReadAll(fb)
	require.NoError(t, err)
	require.NoError(t, fb.Close())
	eventually(t, func() bool { return p.b.NumConnections() == 0 }, "b's LAST-ACK ends")
	eventually(t, func() bool { return p.a.NumConnections() == 1 && stateOf(p.a) == "TIME-WAIT" }, "a in TIME-WAIT")
	clk.Advance(59 * time.Second)
	assert.Equal(t, 1, p.a.NumConnections())
	clk.Advance(time.Second)
	assert.Equal(t, 0, p.a.NumConnections())
}

func TestRTORetransmission(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p := newPair(t, pairOpts{clk: clk})
	fa, fb := p.connect(t, 80, nil)
	// Lose a's first data segment.
	lost := make(chan struct{}, 1)
	p.la.setDrop(func(ip header.IPv4) bool {
		if len(header.TCP(ip.Payload()).Payload()) > 0 {
			select {
			case lost <- struct{}{}:
				return true
			default:
			}
		}
		return false
	})
	_, err := fa.WriteNodelay([]byte("retransmitted"))
	require.NoError(t, err)
	<-lost
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 100)
		n, _ := fb.Read(b)
		got <- string(b[:n])
	}()
	select {
	case s := <-got:
		t.Fatalf("read %q before the RTO", s)
	case <-time.After(20 * time.Millisecond):
	}
	clk.Advance(time.Second)
	select {
	case s := <-got:
		assert.Equal(t, "retransmitted", s)
	case <-time.After(10 * time.Second):
		t.Fatal("not retransmitted")
	}
	assert.GreaterOrEqual(t, p.a.Stats().TCP.Timeouts, uint64(1))
	assert.GreaterOrEqual(t, p.a.Stats().TCP.Retransmits, uint64(1))
}

func TestRetransmitLimitTimesOut(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p := newPair(t, pairOpts{clk: clk})
	fa, _ := p.connect(t, 80, nil)
	p.la.setDrop(dropAll)
	_, err := fa.Write([]byte("into the void"))
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := fa.Read(make([]byte, 1))
		errc <- err
	}()
	for i := 0; i < 100; i++ {
		clk.Advance(30 * time.Second)
		select {
		case err := <-errc:
			assert.ErrorIs(t, err, tcpflow.ErrTimeout)
			var ne interface{ Timeout() bool }
			require.ErrorAs(t, err, &ne)
			assert.True(t, ne.Timeout())
			_, err = fa.Write([]byte("x"))
			assert.ErrorIs(t, err, tcpflow.ErrTimeout)
			return
		case <-time.After(time.Millisecond):
		}
	}
	t.Fatal("blocked reader never woken")
}

func TestKeepalive(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p := newPair(t, pairOpts{clk: clk})
	ka := &tcpflow.Keepalive{After: 10 * time.Second, Interval: time.Second, Probes: 3}
	fa, _ := p.connect(t, 80, ka)

	// Answered probes keep the connection.
	in0, out0 := p.a.Stats().TCP.SegmentsIn, p.a.Stats().TCP.SegmentsOut
	for i := 1; i <= 5; i++ {
		clk.Advance(10 * time.Second)
		eventually(t, func() bool { return p.a.Stats().TCP.SegmentsIn >= in0+uint64(i) }, "probe answered")
		// SegmentsIn counts the answer as it arrives: let a finish with
		// it before the clock moves on, or the next probe finds the
		// last one still unanswered.
		p.settle(t)
	}
	assert.Equal(t, uint64(5), p.a.Stats().TCP.SegmentsOut-out0, "one probe per idle period")
	assert.Equal(t, 1, p.a.NumConnections())

	// Unanswered probes reset it with a timeout.
	p.lb.setDrop(dropAll)
	errc := make(chan error, 1)
	go func() {
		_, err := fa.Read(make([]byte, 1))
		errc <- err
	}()
	clk.Advance(10 * time.Second) // first probe
	for i := 0; i < 3; i++ {
		clk.Advance(time.Second)
	}
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, tcpflow.ErrTimeout)
	case <-time.After(10 * time.Second):
		t.Fatal("keepalive did not time out")
	}
	assert.Equal(t, 0, p.a.NumConnections(), "keepalive state freed")
}

func TestZeroWindowPersist(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p := newPair(t, pairOpts{clk: clk, bufs: 64 << 10})
	fa, fb := p.connect(t, 80, nil)
	data := randomBytes(512<<10, 3)
	werr := make(chan error, 1)
	go func() {
		_, err := fa.Write(data)
		if err == nil {
			err = fa.CloseWrite()
		}
		werr <- err
	}()
	// Nobody reads b yet: a fills b's window, then its own buffer, and
	// probes the zero window. Time moves until the transfer is over, so
	// that a probe is due whenever a waits on one (a single advance
	// raced with a entering the persist state).
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				clk.Advance(20 * time.Millisecond)
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	got := make([]byte, 0, len(data))
	buf := make([]byte, 8192)
	for {
		n, err := fb.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	assert.Equal(t, sha256.Sum256(data), sha256.Sum256(got))
	require.NoError(t, <-werr)
}

func TestPing(t *testing.T) {
	p := newPair(t, pairOpts{})
	p.b.Close() // we play b by hand
	replies := make(chan header.IPv4, 1)
	p.lb.SetReceiver(func(pkt []byte) {
		replies <- append(header.IPv4(nil), pkt...)
	})
	icmp := header.AppendEcho(nil, 7, 1, []byte("ping"))
	pkt := ipPacket(addrB, addrA, header.ProtocolICMPv4, icmp)
	require.NoError(t, p.lb.WritePacket(pkt))
	ip := <-replies
	require.NoError(t, ip.IsValid(len(ip)))
	m := header.ICMPv4(ip.Payload())
	require.NoError(t, m.IsValid())
	assert.Equal(t, header.ICMPv4EchoReply, m.Type())
	assert.Equal(t, "ping", string(m.Payload()))
	assert.Equal(t, addrB, ip.Dst())

	// A fragment and a bad checksum are dropped and counted.
	frag := ipPacket(addrB, addrA, header.ProtocolICMPv4, icmp)
	frag[6] |= 0x20 // MF
	frag.SetChecksum(0)
	frag.SetChecksum(^frag.CalculateChecksum())
	require.NoError(t, p.lb.WritePacket(frag))
	bad := ipPacket(addrB, addrA, header.ProtocolICMPv4, icmp)
	bad[10] ^= 1
	require.NoError(t, p.lb.WritePacket(bad))
	eventually(t, func() bool { s := p.a.Stats(); return s.IPFragmentsDropped == 1 && s.IPInvalid == 1 }, "counted")
}

func TestICMPPortUnreachableRefuses(t *testing.T) {
	p := newPair(t, pairOpts{})
	p.b.Close()
	// b answers every SYN with an ICMP port unreachable.
	p.lb.SetReceiver(func(pkt []byte) {
		ip := header.IPv4(pkt)
		if ip.Protocol() != header.ProtocolTCP {
			return
		}
		icmp := header.AppendDestUnreachable(nil, header.ICMPv4PortUnreachable, 0, ip)
		p.lb.WritePacket(ipPacket(addrB, addrA, header.ProtocolICMPv4, icmp))
	})
	_, err := p.a.CreateConnection(context.Background(), netip.AddrPortFrom(addrB, 80), tcpflow.DialOptions{})
	assert.ErrorIs(t, err, tcpflow.ErrRefused)
}

func TestSimultaneousOpen(t *testing.T) {
	p := newPair(t, pairOpts{})
	type res struct {
		f   tcpflow.Flow
		err error
	}
	ch := make(chan res, 2)
	go func() {
		f, err := p.a.CreateConnection(context.Background(), netip.AddrPortFrom(addrB, 5000), tcpflow.DialOptions{Src: netip.AddrPortFrom(addrA, 6000)})
		ch <- res{f, err}
	}()
	go func() {
		f, err := p.b.CreateConnection(context.Background(), netip.AddrPortFrom(addrA, 6000), tcpflow.DialOptions{Src: netip.AddrPortFrom(addrB, 5000)})
		ch <- res{f, err}
	}()
	r1, r2 := <-ch, <-ch
	// Either a true simultaneous open, or one SYN was reset first.
	if r1.err != nil || r2.err != nil {
		t.Logf("not simultaneous: %v / %v", r1.err, r2.err)
		for _, r := range []res{r1, r2} {
			if r.f != nil {
				r.f.Close()
			}
		}
		return
	}
	defer r1.f.Close()
	defer r2.f.Close()
	_, err := r1.f.Write([]byte("hi"))
	require.NoError(t, err)
	b := make([]byte, 2)
	_, err = io.ReadFull(r2.f, b)
	require.NoError(t, err)
	assert.Equal(t, "hi", string(b))
}

func TestAcceptAfterListenerClose(t *testing.T) {
	p := newPair(t, pairOpts{})
	ln, err := p.b.ListenFlows(context.Background(), netip.AddrPortFrom(netip.IPv4Unspecified(), 0), nil)
	require.NoError(t, err)
	assert.NotZero(t, ln.Addr().(*net.TCPAddr).Port)
	require.NoError(t, ln.Close())
	_, err = ln.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)
}

func ipPacket(src, dst netip.Addr, proto uint8, payload []byte) header.IPv4 {
	pkt := make(header.IPv4, header.IPv4MinimumSize, header.IPv4MinimumSize+len(payload))
	pkt.Encode(&header.IPv4Fields{
		TotalLength: uint16(header.IPv4MinimumSize + len(payload)), ID: 1,
		TTL: 64, Protocol: proto, Src: src, Dst: dst,
	})
	pkt.SetChecksum(^pkt.CalculateChecksum())
	return append(pkt, payload...)
}

func stateOf(s *Stack) string { return s.tcp.DebugStates() }
