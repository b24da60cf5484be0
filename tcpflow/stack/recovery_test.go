package stack

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow/header"
)

// TestQuickAcksAfterLoss: once out-of-order data has shown a loss, the
// receiver acknowledges the next 16 in-order segments one by one (the
// hole's retransmission included), so that a sender with a window cut
// by the loss is not left waiting for a probe when one ACK is lost;
// then it goes back to one ACK for two segments.
func TestQuickAcksAfterLoss(t *testing.T) {
	p := newPair(t, pairOpts{})
	fa, fb := p.connect(t, 80, nil)
	buf := make([]byte, 64<<10)
	// The SYN-ACK announced at most 64 KiB (unscaled): the first read
	// opens the window with an update. Get it out of the way.
	_, err := fa.WriteNodelay([]byte("warm"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, buf[:4])
	require.NoError(t, err)
	p.settle(t)
	mss := 1460 - 12

	var fromB segLog
	fromB.watch(p.lb)
	n := 0
	p.la.setDrop(func(ip header.IPv4) bool {
		if ip.Protocol() == header.ProtocolTCP && len(header.TCP(ip.Payload()).Payload()) > 0 {
			n++ // the writer's goroutine only
			return n == 1
		}
		return false
	})
	// sendSegs sends n full segments from a to b and waits until both
	// ends have handled everything; it returns b's pure ACKs.
	sendSegs := func(n int) int {
		fromB.reset()
		_, err := fa.WriteNodelay(make([]byte, n*mss))
		require.NoError(t, err)
		_, err = io.ReadFull(fb, buf[:n*mss])
		require.NoError(t, err)
		p.settle(t)
		return fromB.pureAcks()
	}
	// The first segment is lost; the second's SACK has RACK resend it
	// at once (the manual clock's RTTs are zero, and so the reordering
	// window).
	require.Equal(t, 2, sendSegs(2), "a duplicate ACK and the hole's")
	require.EqualValues(t, 1, p.a.Stats().TCP.Retransmits)
	assert.Equal(t, 15, sendSegs(15), "an ACK per segment after the loss")
	assert.Equal(t, 4, sendSegs(8), "one ACK for two segments again")
}

// TestProbeSendsNewData: when the congestion window holds back data
// the peer's window would take, the tail loss probe is the next new
// segment, whose ACK cannot be mistaken for the first transmission's
// (RFC 8985 section 7.3).
func TestProbeSendsNewData(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p := newPair(t, pairOpts{clk: clk})
	fa, fb := p.connect(t, 80, nil)
	_, err := fa.WriteNodelay([]byte("x")) // an RTT sample: 2 ms probe timeout
	require.NoError(t, err)
	_, err = io.ReadFull(fb, make([]byte, 1))
	require.NoError(t, err)
	p.settle(t)
	clk.Advance(time.Second)
	p.settle(t)

	var mu sync.Mutex
	var seqs []uint32
	p.la.setDrop(func(ip header.IPv4) bool {
		if s := header.TCP(ip.Payload()); len(s.Payload()) > 0 {
			mu.Lock()
			seqs = append(seqs, s.SeqNum())
			mu.Unlock()
			return true
		}
		return false
	})
	sent := func() []uint32 { mu.Lock(); defer mu.Unlock(); return append([]uint32(nil), seqs...) }
	mss := uint32(1460 - 12)
	_, err = fa.WriteNodelay(make([]byte, 12*mss)) // the initial window is 10 segments
	require.NoError(t, err)
	first := sent()
	require.Len(t, first, 10)
	clk.Advance(2 * time.Millisecond)
	all := sent()
	require.Len(t, all, 11)
	assert.Equal(t, first[0]+10*mss, all[10], "the probe is the eleventh segment, not the tenth again")
	assert.EqualValues(t, 1, p.a.Stats().TCP.LossProbes)
	assert.Zero(t, p.a.Stats().TCP.Retransmits)
}

// TestDuplicatesReported: data received wholly a second time, below
// the next expected sequence number or inside the out-of-order queue,
// is counted (the peer's spurious retransmissions) and reported once
// in a D-SACK block, first in the next ACK (RFC 2883), followed for
// queued data by the block that holds it; the sender counts the
// reports.
func TestDuplicatesReported(t *testing.T) {
	p := newPair(t, pairOpts{})
	fa, fb := p.connect(t, 80, nil)
	var fromA, fromB segLog
	fromA.watch(p.la)
	fromB.watch(p.lb)
	_, err := fa.WriteNodelay([]byte("once"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, make([]byte, 4))
	require.NoError(t, err)
	p.settle(t)
	var seg header.TCP
	for _, s := range fromA.all() {
		if string(s.Payload()) == "once" {
			seg = s
		}
	}
	require.NotNil(t, seg)
	blocks := func() [][2]uint32 {
		t.Helper()
		p.settle(t)
		segs := fromB.all()
		require.NotEmpty(t, segs)
		o, err := header.ParseTCPOptions(segs[len(segs)-1].Options())
		require.NoError(t, err)
		var r [][2]uint32
		for _, b := range o.SACK() {
			r = append(r, [2]uint32{b.Start, b.End})
		}
		return r
	}

	fromB.reset()
	p.b.deliver(ipPacket(addrA, addrB, header.ProtocolTCP, seg))
	assert.EqualValues(t, 1, p.b.Stats().TCP.DuplicateSegments)
	assert.Equal(t, [][2]uint32{{seg.SeqNum(), seg.SeqNum() + 4}}, blocks(), "a D-SACK of the duplicate")
	assert.EqualValues(t, 1, p.a.Stats().TCP.DSACKs)

	// Beyond a hole: the second copy of an out-of-order segment.
	ahead := append(header.TCP(nil), seg...)
	ahead.SetSeqNum(seg.SeqNum() + 100)
	ahead.SetChecksumFor(addrA, addrB)
	p.b.deliver(ipPacket(addrA, addrB, header.ProtocolTCP, ahead))
	assert.EqualValues(t, 1, p.b.Stats().TCP.DuplicateSegments, "first copy")
	assert.Equal(t, [][2]uint32{{seg.SeqNum() + 100, seg.SeqNum() + 104}}, blocks(), "a SACK block, no D-SACK")
	p.b.deliver(ipPacket(addrA, addrB, header.ProtocolTCP, ahead))
	assert.EqualValues(t, 2, p.b.Stats().TCP.DuplicateSegments, "second copy")
	assert.Equal(t, [][2]uint32{{seg.SeqNum() + 100, seg.SeqNum() + 104}, {seg.SeqNum() + 100, seg.SeqNum() + 104}}, blocks(),
		"the D-SACK, then the block holding it")
}
