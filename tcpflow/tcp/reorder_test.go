package tcp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
)

// The loss detection of a sender on a path that reorders, played by
// hand on the raw rig (persist_test.go): the peer SACKs what it is
// said to have received, at the times the test chooses.

// sackPeer is a rawPeer that negotiated SACK.
type sackPeer struct {
	*rawPeer
}

// connectSACK completes a handshake with SACK permitted (no timestamps,
// no window scaling) and returns the accepted flow.
func (r *rawRig) connectSACK(ln tcpflow.FlowListener, addr netip.AddrPort) (*sackPeer, tcpflow.Flow) {
	return r.connectWith(ln, addr, &header.TCPOptions{SACKPermitted: true, HasMSS: true, MSS: 1000}, 0)
}

// connectWith completes a handshake whose SYN carries syn and whose
// SYN-ACK is answered after rtt (an RTT sample, as on a real path), and
// returns the accepted flow.
func (r *rawRig) connectWith(ln tcpflow.FlowListener, addr netip.AddrPort, syn *header.TCPOptions, rtt time.Duration) (*sackPeer, tcpflow.Flow) {
	c := &sackPeer{&rawPeer{r: r, addr: addr, seq: 1000}}
	c.sendOpts(header.TCPFlagSYN, syn)
	c.seq++
	out := r.take()
	require.Len(r.t, out, 1)
	c.ack = out[0].seg.SeqNum() + 1
	r.clk.Advance(rtt)
	c.sendOpts(header.TCPFlagACK, nil)
	f, err := ln.AcceptFlow()
	require.NoError(r.t, err)
	r.t.Cleanup(func() { f.Close() })
	return c, f
}

// sendOpts hands the protocol a segment without data, window 65535,
// with options o (may be nil).
func (c *sackPeer) sendOpts(flags header.TCPFlags, o *header.TCPOptions) {
	var ob [header.TCPMaxOptionsSize]byte
	n := 0
	if o != nil {
		n, _ = o.Marshal(ob[:])
	}
	f := header.TCPFields{SrcPort: c.addr.Port(), DstPort: rigPort, SeqNum: c.seq, AckNum: c.ack, Flags: flags, WindowSize: 65535, Options: ob[:n]}
	seg := make(header.TCP, f.EncodedLen())
	seg.Encode(&f)
	seg.SetChecksumFor(c.addr.Addr(), rigAddr)
	c.r.p.HandleSegment(c.addr.Addr(), rigAddr, seg)
}

// ackSACK acknowledges up to ack, SACKing the [start, end) ranges given
// (the first block first, as a receiver puts its latest arrival).
func (c *sackPeer) ackSACK(ack uint32, blocks ...[2]uint32) {
	c.ack = ack
	var o header.TCPOptions
	for _, b := range blocks {
		o.SACKBlocks[o.NumSACKBlocks] = header.SACKBlock{Start: b[0], End: b[1]}
		o.NumSACKBlocks++
	}
	c.sendOpts(header.TCPFlagACK, &o)
}

// dataSegs returns the data segments among out.
func dataSegs(out []sentSeg) []header.TCP {
	var d []header.TCP
	for _, s := range out {
		if len(s.seg.Payload()) > 0 {
			d = append(d, s.seg)
		}
	}
	return d
}

// newSACKSender returns a rig and a connection to it with SACK, the
// flow of which has sent n segments of 1000 bytes at once; it returns
// their sequence numbers (n+1 of them: the last is where the next
// would start).
func newSACKSender(t *testing.T, n int) (*rawRig, *sackPeer, tcpflow.Flow, []uint32) {
	r := newRawRig(t, Options{})
	ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	c, f := r.connectSACK(ln, netip.MustParseAddrPort("10.0.0.9:4000"))
	return r, c, f, sendSegs(t, r, f.(*endpoint), n)
}

// TestRACKRTTOfLastDelivered: RACK.rtt is the RTT of the segment
// delivered last, not of the most recently sent one (RFC 8985 section
// 6.2 step 2, Linux's tcp_rack_advance). Four segments go at once; the
// fourth, which the path carried ahead, is SACKed after 1 ms, the
// second after 1.2 ms. The first and third are then given 1.2 ms and
// the reordering window (a quarter of the 1 ms minimum RTT): they are
// not lost at 1.4 ms, when the peer acknowledges everything. Keeping
// the fourth's 1 ms had them retransmitted at 1.25 ms.
func TestRACKRTTOfLastDelivered(t *testing.T) {
	r, c, _, seq := newSACKSender(t, 4)
	r.clk.Advance(time.Millisecond)
	c.ackSACK(seq[0], [2]uint32{seq[3], seq[4]})
	r.clk.Advance(200 * time.Microsecond)
	c.ackSACK(seq[0], [2]uint32{seq[1], seq[2]}, [2]uint32{seq[3], seq[4]})
	r.clk.Advance(200 * time.Microsecond)
	assert.Empty(t, dataSegs(r.take()), "nothing retransmitted at 1.4 ms")
	c.ackSACK(seq[4])
	r.clk.Advance(10 * time.Millisecond)
	assert.Empty(t, dataSegs(r.take()))
	assert.Zero(t, r.p.Stats().Retransmits)
}

// TestRTTSampleOfOldest: an ACK's RTT sample is the oldest segment it
// delivers (Linux's first_ackt, what an echoed timestamp would give),
// not the newest: on a path that reorders, the newest may have taken a
// short cut. Two segments sent 4 ms apart, acknowledged together 5 ms
// after the first, give a sample of 5 ms: SRTT goes from the
// handshake's 1 ms (the floor of a sample) to 1.5 ms, and the probe
// timeout that follows the next flight is 2 SRTT, 3 ms (the newest
// segment's 1 ms left SRTT at 1 ms and the probe at 2 ms).
func TestRTTSampleOfOldest(t *testing.T) {
	r, c, f, seq := newSACKSender(t, 1)
	r.clk.Advance(4 * time.Millisecond)
	_, err := f.WriteNodelay(make([]byte, 1000))
	require.NoError(t, err)
	require.Len(t, dataSegs(r.take()), 1)
	r.clk.Advance(time.Millisecond)
	c.ackSACK(seq[1] + 1000)
	e := f.(*endpoint)
	e.mu.Lock()
	srtt := e.srtt
	e.mu.Unlock()
	assert.Equal(t, 1500*time.Microsecond, srtt)

	_, err = f.WriteNodelay(make([]byte, 2000))
	require.NoError(t, err)
	require.Len(t, dataSegs(r.take()), 2)
	start := r.clk.Now()
	var probeAt time.Duration
	for probeAt == 0 && r.clk.Now().Sub(start) < 10*time.Millisecond {
		r.clk.Advance(100 * time.Microsecond)
		if len(dataSegs(r.take())) > 0 {
			probeAt = r.clk.Now().Sub(start)
		}
	}
	assert.Equal(t, 3*time.Millisecond, probeAt, "tail loss probe after 2 SRTT")
	assert.EqualValues(t, 1, r.p.Stats().LossProbes)
}

// TestDupThreshRetiresOnReordering: once the path has been seen to
// reorder, neither three duplicate ACKs (RFC 5681) nor three segments
// SACKed above one (RFC 6675's IsLost) mark it lost: RACK's reordering
// window decides (RFC 8985; Linux once tp->reord_seen). Of six
// segments, the fifth is SACKed first, then the second (reordering
// seen), then the third, then the fourth and sixth, each in a
// duplicate ACK, all within the reordering window: the first is not
// retransmitted, and it arrives. On a path not seen to reorder, three
// duplicate ACKs SACKing the second to the fourth have it
// retransmitted at once.
func TestDupThreshRetiresOnReordering(t *testing.T) {
	for _, reordered := range []bool{true, false} {
		r, c, _, seq := newSACKSender(t, 6)
		blk := func(i int) [2]uint32 { return [2]uint32{seq[i], seq[i+1]} }
		r.clk.Advance(time.Millisecond)
		if reordered {
			c.ackSACK(seq[0], blk(4))
			c.ackSACK(seq[0], blk(1), blk(4)) // below the fifth: reordering
			c.ackSACK(seq[0], [2]uint32{seq[1], seq[3]}, blk(4))
			c.ackSACK(seq[0], [2]uint32{seq[1], seq[6]})
		} else {
			c.ackSACK(seq[0], blk(1))
			c.ackSACK(seq[0], [2]uint32{seq[1], seq[3]})
			c.ackSACK(seq[0], [2]uint32{seq[1], seq[4]})
		}
		got := dataSegs(r.take())
		if !reordered {
			require.Len(t, got, 1, "three duplicate ACKs, three SACKed above: lost")
			assert.Equal(t, seq[0], got[0].SeqNum())
			continue
		}
		assert.Empty(t, got, "on a path seen to reorder, RACK waits")
		c.ackSACK(seq[6])
		r.clk.Advance(10 * time.Millisecond)
		assert.Empty(t, dataSegs(r.take()))
		assert.Zero(t, r.p.Stats().Retransmits)
	}
}

// TestNoRTTSampleOverRetransmission: an ACK that cumulatively
// acknowledges a retransmitted segment gives no RTT sample (Karn's
// algorithm for the whole ACK, as Linux's FLAG_RETRANS_DATA_ACKED):
// the segments it acknowledges with it, whose SACKs never came, were
// sent long before, and taking the oldest as the sample made SRTT (and
// with it the probe timeout, then the RTO) measure the recovery.
// Four segments: the second is SACKed after 1 ms, the first is deemed
// lost and sent again, a tail loss probe sends the fourth again, and
// 50 ms later one ACK covers them all, the third (sent once, never
// SACKed) with them.
func TestNoRTTSampleOverRetransmission(t *testing.T) {
	r, c, f, seq := newSACKSender(t, 4)
	r.clk.Advance(time.Millisecond)
	c.ackSACK(seq[0], [2]uint32{seq[1], seq[2]})
	r.clk.Advance(2 * time.Millisecond)
	var again []uint32
	for _, s := range dataSegs(r.take()) {
		again = append(again, s.SeqNum())
	}
	require.Contains(t, again, seq[0], "the first sent again")
	require.NotContains(t, again, seq[2], "the third sent once")
	e := f.(*endpoint)
	e.mu.Lock()
	before := e.srtt
	e.mu.Unlock()
	r.clk.Advance(47 * time.Millisecond)
	c.ackSACK(seq[4])
	e.mu.Lock()
	after := e.srtt
	e.mu.Unlock()
	assert.Equal(t, before, after, "no 50 ms sample from the third")
}
