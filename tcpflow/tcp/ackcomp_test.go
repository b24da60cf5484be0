package tcp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow/header"
)

// acksOf returns the acknowledgment number and SACK blocks of each
// segment without data in out.
func acksOf(t *testing.T, out []sentSeg) [][]uint32 {
	t.Helper()
	var r [][]uint32
	for _, s := range out {
		if len(s.seg.Payload()) > 0 {
			continue
		}
		o, err := header.ParseTCPOptions(s.seg.Options())
		require.NoError(t, err)
		a := []uint32{s.seg.AckNum()}
		for _, b := range o.SACK() {
			a = append(a, b.Start, b.End)
		}
		r = append(r, a)
	}
	return r
}

// TestSACKCompression plays a sender whose first segment is lost: the
// ACKs of the first three out-of-order arrivals go at once, the next
// ones are held for a twentieth of the 2 ms RTT and go as one ACK with
// the latest block; an arrival that opens a new block while ACKs are
// held sends them at once; a duplicate and the filled hole are
// acknowledged at once. With delayed ACKs off, nothing is held.
func TestSACKCompression(t *testing.T) {
	for _, off := range []bool{false, true} {
		o := Options{}
		if off {
			o.DelayedACK = -1
		}
		r := newRawRig(t, o)
		ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
		require.NoError(t, err)
		c, _ := r.connectWith(ln, netip.MustParseAddrPort("10.0.0.9:4000"), &header.TCPOptions{SACKPermitted: true, HasMSS: true, MSS: 1000}, 2*time.Millisecond)
		r.take()
		base := c.seq
		seg := func(i int) uint32 { return base + uint32(i)*100 }
		sendAt := func(i int) {
			c.seq = seg(i)
			c.send(header.TCPFlagACK, 65535, make([]byte, 100))
		}
		// The first 16 segments are acknowledged at once (the quick-ACK
		// start): use them up in order.
		for i := range 16 {
			sendAt(i)
		}
		r.take()
		base = seg(16)

		for i := 1; i <= 8; i++ { // segment 0 lost
			sendAt(i)
		}
		got := acksOf(t, r.take())
		if off {
			assert.Len(t, got, 8, "delayed ACKs off: every arrival acknowledged")
			ln.Close()
			continue
		}
		require.Equal(t, [][]uint32{
			{seg(0), seg(1), seg(2)},
			{seg(0), seg(1), seg(3)},
			{seg(0), seg(1), seg(4)},
		}, got, "three at once, the next held")
		r.clk.Advance(99 * time.Microsecond)
		assert.Empty(t, acksOf(t, r.take()), "held for 100 µs")
		r.clk.Advance(time.Microsecond)
		assert.Equal(t, [][]uint32{{seg(0), seg(1), seg(9)}}, acksOf(t, r.take()), "one ACK for five arrivals")

		sendAt(10) // a new block, nothing held: held
		assert.Empty(t, acksOf(t, r.take()))
		sendAt(12) // another new block while one is held: both at once
		assert.Equal(t, [][]uint32{{seg(0), seg(12), seg(13), seg(10), seg(11), seg(1), seg(9)}}, acksOf(t, r.take()))
		sendAt(13) // extends a block: held again
		assert.Empty(t, acksOf(t, r.take()))
		sendAt(5) // a duplicate: at once, its D-SACK first
		got = acksOf(t, r.take())
		require.Len(t, got, 1)
		assert.Equal(t, []uint32{seg(0), seg(5), seg(6)}, got[0][:3])
		sendAt(0) // the hole filled: at once
		got = acksOf(t, r.take())
		require.Len(t, got, 1)
		assert.Equal(t, seg(9), got[0][0], "up to the next hole")
		r.clk.Advance(time.Second)
		for _, a := range acksOf(t, r.take()) {
			assert.NotEqual(t, seg(9), a[0], "nothing held was left to send")
		}
		ln.Close()
	}
}
