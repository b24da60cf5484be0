package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow/header"
)

// TestReoWndMeasured: a D-SACK widens RACK's reordering window to the
// reordering it shows, not by a quarter of the minimum RTT alone, and
// past SRTT when the reordering is longer (up to SRTT + 4 RTTVAR). The
// path's RTT is 1 ms and its short cut 50 µs (the minimum RTT), as on
// netem's "reorder 25%" wire, where a quarter of the minimum RTT is a
// hundredth of the reordering.
//
// Eight segments go at once; the second, carried ahead, is SACKed after
// 50 µs, and the first is deemed lost 12.5 µs later and sent again. The
// ACK of them all comes at 1 ms (937.5 µs after the retransmission),
// then a D-SACK for the retransmission: the window is 950 µs, where
// SRTT is 881.25 µs. Four segments more, the same way: the second
// SACKed after 50 µs, the first acknowledged after 950 µs. The window
// measured waits for it; bounded by SRTT it was sent again at 931.25
// µs, and the step alone (two quarters of 50 µs) had it sent again at
// 75 µs.
func TestReoWndMeasured(t *testing.T) {
	r, c, f, seq := newSACKSender(t, 8)
	e := f.(*endpoint)
	r.clk.Advance(50 * time.Microsecond)
	c.ackSACK(seq[0], [2]uint32{seq[1], seq[2]})
	r.clk.Advance(50 * time.Microsecond)
	again := dataSegs(r.take())
	require.Len(t, again, 1, "the first deemed lost")
	require.Equal(t, seq[0], again[0].SeqNum())

	r.clk.Advance(900 * time.Microsecond)
	c.ackSACK(seq[8]) // the first transmissions, the first one's with them
	r.clk.Advance(50 * time.Microsecond)
	c.ackSACK(seq[8], [2]uint32{seq[0], seq[1]}) // D-SACK: the retransmission
	r.take()
	e.mu.Lock()
	wnd, srtt, rttvar, minRTT := e.reoWnd(), e.srtt, e.rttvar, e.minRTT
	e.mu.Unlock()
	// The handshake's 1 ms sample (none is shorter), then the SACK's
	// 50 µs; the ACK of the retransmission gives none.
	require.Equal(t, 50*time.Microsecond, minRTT)
	require.Equal(t, 881250*time.Nanosecond, srtt)
	require.Equal(t, 612500*time.Nanosecond, rttvar)
	assert.Equal(t, 950*time.Microsecond, wnd, "a quarter of the minimum RTT and the 937.5 µs measured")
	assert.EqualValues(t, 1, r.p.Stats().DSACKs)

	_, err := f.WriteNodelay(make([]byte, 4000))
	require.NoError(t, err)
	require.Len(t, dataSegs(r.take()), 4)
	base := seq[8]
	r.clk.Advance(50 * time.Microsecond)
	c.ackSACK(base, [2]uint32{base + 1000, base + 2000})
	for range 18 {
		r.clk.Advance(50 * time.Microsecond)
		assert.Zero(t, len(dataSegs(r.take())), "within the reordering measured")
	}
	c.ackSACK(base + 4000)
	assert.EqualValues(t, 1, r.p.Stats().Retransmits)
}

// TestReoWndMeasuredMatch: only a D-SACK for the retransmission whose
// first transmission was delivered last measures the window (another's
// lateness is not known); the measure is used once, adds to the window
// in force, is at most SRTT + 4 RTTVAR (the step, at most SRTT), and
// lasts dsackPersist recoveries without a D-SACK.
func TestReoWndMeasuredMatch(t *testing.T) {
	p := newTestProtocol(t)
	e := p.newEndpoint(connID{}, nil)
	e.setISS(1000)
	e.minRTT, e.srtt, e.rttvar = 40*time.Microsecond, 2*time.Millisecond, 250*time.Microsecond
	e.sndUna, e.sndNxt, e.sndMax = 1000, 9000, 9000
	now := time.Unix(100, 0)
	e.minRTTAt = max(p.since(now), 1)
	e.markDelivered(&txSeg{start: 3000, end: 4000, sentAt: now.Add(-700 * time.Microsecond), retrans: true, xmit: 5}, now)

	e.onDSACK(header.SACKBlock{Start: 4000, End: 5000})
	assert.Equal(t, 20*time.Microsecond, e.reoWnd(), "another segment's D-SACK: the step")
	e.onDSACK(header.SACKBlock{Start: 3000, End: 4000})
	assert.Equal(t, 720*time.Microsecond, e.reoWnd(), "the window then and the lateness")
	e.onDSACK(header.SACKBlock{Start: 3000, End: 4000})
	assert.Equal(t, 720*time.Microsecond, e.reoWnd(), "measured once")

	e.markDelivered(&txSeg{start: 5000, end: 6000, sentAt: now.Add(-900 * time.Microsecond), retrans: true, xmit: 6}, now)
	e.onDSACK(header.SACKBlock{Start: 5000, End: 6000})
	assert.Equal(t, 1620*time.Microsecond, e.reoWnd(), "added to the window in force")

	e.markDelivered(&txSeg{start: 6000, end: 7000, sentAt: now.Add(-5 * time.Millisecond), retrans: true, xmit: 7}, now)
	e.onDSACK(header.SACKBlock{Start: 6000, End: 7000})
	assert.Equal(t, 3*time.Millisecond, e.reoWnd(), "at most SRTT + 4 RTTVAR")

	for range dsackPersist {
		e.enterRecovery()
		e.inRecovery = false
	}
	assert.Equal(t, 10*time.Microsecond, e.reoWnd(), "back to a quarter after dsackPersist recoveries")
}
