package tcp

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// TestRACKTooSoon: an ACK that comes back sooner than the minimum RTT
// after a retransmission acknowledges the first transmission, so RACK
// must not take the retransmission's send time as delivered (RFC 8985
// section 6.2 step 2); a segment sent once always counts.
func TestRACKTooSoon(t *testing.T) {
	p := newTestProtocol(t)
	e := p.newEndpoint(connID{}, nil)
	now := time.Unix(100, 0)
	once := txSeg{start: 0, end: 100, sentAt: now.Add(-3 * time.Millisecond), xmit: 1}
	e.markDelivered(&once, now)
	assert.Equal(t, 3*time.Millisecond, e.minRTT)
	assert.EqualValues(t, 1, e.rackXmit)

	soon := txSeg{start: 100, end: 200, sentAt: now.Add(-time.Millisecond), xmit: 3, retrans: true}
	e.markDelivered(&soon, now)
	assert.EqualValues(t, 1, e.rackXmit, "an ACK 1 ms after a retransmission, minimum RTT 3 ms")

	late := txSeg{start: 200, end: 300, sentAt: now.Add(-4 * time.Millisecond), xmit: 2, retrans: true}
	e.markDelivered(&late, now)
	assert.EqualValues(t, 2, e.rackXmit)
	assert.Equal(t, 4*time.Millisecond, e.rackRTT)
	assert.Equal(t, 3*time.Millisecond, e.minRTT, "retransmissions give no RTT sample")

	faster := txSeg{start: 300, end: 400, sentAt: now.Add(-2 * time.Millisecond), xmit: 4}
	e.markDelivered(&faster, now)
	assert.Equal(t, 2*time.Millisecond, e.minRTT)
	// The minimum is windowed: a sample after minRTTWindow replaces it.
	later := now.Add(minRTTWindow + time.Second)
	slower := txSeg{start: 400, end: 500, sentAt: later.Add(-5 * time.Millisecond), xmit: 5}
	e.markDelivered(&slower, later)
	assert.Equal(t, 5*time.Millisecond, e.minRTT)
}

// TestRACKReorderingWindow pins RFC 8985's reordering window: zero
// while the path has not reordered and the sender is in recovery or
// has dupThresh segments SACKed, a quarter of the minimum RTT (at most
// SRTT) otherwise; reordering is seen when a segment sent once is
// SACKed below the highest delivered sequence number, not when it is
// a retransmission or only cumulatively acknowledged.
func TestRACKReorderingWindow(t *testing.T) {
	p := newTestProtocol(t)
	e := p.newEndpoint(connID{}, nil)
	e.minRTT, e.srtt = 8*time.Millisecond, 10*time.Millisecond
	assert.Equal(t, 2*time.Millisecond, e.reoWnd())
	e.srtt = time.Millisecond
	assert.Equal(t, time.Millisecond, e.reoWnd(), "at most SRTT")
	e.srtt = 10 * time.Millisecond
	e.inRecovery = true
	assert.Zero(t, e.reoWnd(), "in recovery")
	e.inRecovery = false
	e.sb.sacked = dupThresh
	assert.Zero(t, e.reoWnd(), "dupThresh segments SACKed")

	e.fack = seqnum.Value(1000)
	e.noteFack(&txSeg{start: 100, end: 200, retrans: true}, true)
	e.noteFack(&txSeg{start: 200, end: 300}, false)
	assert.False(t, e.reordering, "a retransmission, a cumulative ACK")
	e.noteFack(&txSeg{start: 1000, end: 1100}, true)
	assert.Equal(t, seqnum.Value(1100), e.fack)
	assert.False(t, e.reordering)
	e.noteFack(&txSeg{start: 300, end: 400}, true)
	assert.True(t, e.reordering, "sent once, SACKed below the highest delivered")
	assert.Equal(t, 2*time.Millisecond, e.reoWnd(), "a window again, SACKs or not")
}

// TestSACKBlocks: the blocks of the latest out-of-order arrivals come
// first, most recent first, then the others in sequence order, as many
// as fit; adjacent queued segments make one block, and a block the
// cumulative ACK passed is not reported.
func TestSACKBlocks(t *testing.T) {
	p := newTestProtocol(t)
	e := p.newEndpoint(connID{}, nil)
	e.rcvNxt = 50
	arrive := func(start, end int) {
		e.insertOOO(seqnum.Value(start), make([]byte, end-start), false)
		e.noteRecentOOO(seqnum.Value(start))
	}
	for _, r := range [][2]int{{100, 200}, {200, 300}, {400, 500}, {600, 650}, {650, 700}, {800, 900}} {
		arrive(r[0], r[1])
	}
	blocks := func(max int) [][2]uint32 {
		var o header.TCPOptions
		e.sackBlocks(&o, max)
		var r [][2]uint32
		for _, b := range o.SACK() {
			r = append(r, [2]uint32{b.Start, b.End})
		}
		return r
	}
	assert.Equal(t, [][2]uint32{{800, 900}, {600, 700}, {400, 500}}, blocks(3))
	assert.Equal(t, [][2]uint32{{800, 900}, {600, 700}, {400, 500}, {100, 300}}, blocks(4))
	assert.Equal(t, [][2]uint32{{800, 900}, {600, 700}}, blocks(2))

	arrive(300, 350) // extends the oldest block: now the most recent
	assert.Equal(t, [][2]uint32{{100, 350}, {800, 900}, {600, 700}}, blocks(3))
	assert.Equal(t, [][2]uint32{{100, 350}, {800, 900}, {600, 700}, {400, 500}}, blocks(4))
	arrive(350, 400) // joins it to 400-500: one block, one entry
	assert.Equal(t, [][2]uint32{{100, 500}, {800, 900}, {600, 700}}, blocks(3))

	e.rcvNxt = 100
	e.drainOOO()
	require.Equal(t, seqnum.Value(500), e.rcvNxt)
	assert.Equal(t, [][2]uint32{{800, 900}, {600, 700}}, blocks(3), "the passed block's entry is skipped")

	arrive(620, 640) // a duplicate inside 600-700 (RFC 2883: its block follows the D-SACK)
	assert.Equal(t, [][2]uint32{{600, 700}, {800, 900}}, blocks(3))
	arrive(1000, 1100)
	arrive(1200, 1300)
	arrive(1400, 1500)
	assert.Equal(t, [][2]uint32{{1400, 1500}, {1200, 1300}, {1000, 1100}, {600, 700}}, blocks(4),
		"three remembered, then sequence order")
}

// detectLossReference is the plain form of detectLoss: every segment
// visited, from the tail. It returns the segments it marks lost and the
// reordering timer's wait.
func detectLossReference(txq []txSeg, rackXmit uint64, wnd time.Duration, now time.Time, dupThreshRule bool) (lost []bool, next time.Duration) {
	lost = make([]bool, len(txq))
	sackedAbove := 0
	for i := len(txq) - 1; i >= 0; i-- {
		s := &txq[i]
		if s.sacked {
			sackedAbove++
			continue
		}
		if s.lost {
			lost[i] = true
			continue
		}
		if dupThreshRule && sackedAbove >= dupThresh && !s.retrans {
			lost[i] = true
			continue
		}
		if s.xmit < rackXmit {
			if left := s.sentAt.Add(wnd).Sub(now); left <= 0 {
				lost[i] = true
			} else if next == 0 || left < next {
				next = left
			}
		}
	}
	return lost, next
}

// TestDetectLossMatchesReference checks detectLoss, which walks only
// the part of the queue that can hold losses, against the plain walk
// over random scoreboards: segments sent once in order, some sent
// again later, some SACKed, some already marked lost.
func TestDetectLossMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := newTestProtocol(t)
	for round := range 3000 {
		e := p.newEndpoint(connID{}, nil)
		e.mss = 100
		now := p.clk.Now()
		n := 1 + rng.IntN(60)
		base := seqnum.Value(rng.Uint32())
		e.sndUna = base
		// A timeline of transmissions a millisecond apart: new segments
		// in order, and now and then one already sent, sent again.
		var xmit uint64
		t0 := now.Add(-time.Duration(rng.IntN(n+60)) * time.Millisecond)
		send := func(s *txSeg) {
			xmit++
			s.xmit, s.sentAt = xmit, t0.Add(time.Duration(xmit)*time.Millisecond)
		}
		for i := 0; i < n; {
			if i > 0 && rng.IntN(8) == 0 {
				s := &e.txq[rng.IntN(i)]
				s.retrans = true
				send(s)
				continue
			}
			e.txq = append(e.txq, txSeg{start: base.Add(seqnum.Size(i * 100)), end: base.Add(seqnum.Size(i*100 + 100))})
			send(&e.txq[i])
			i++
		}
		for i := range e.txq {
			s := &e.txq[i]
			switch r := rng.IntN(10); {
			case r < 4:
				s.sacked = true
			case r < 5:
				s.lost = true
			}
		}
		// The scoreboard as the queue's bookkeeping keeps it.
		e.sb = sumScoreboard(e.txq)
		e.sb.retransMinXmit = math.MaxUint64
		e.fack = base
		for i := range e.txq {
			s := &e.txq[i]
			if s.sacked {
				e.fack = s.end
			}
			if s.retrans {
				if !s.sacked && !s.lost {
					e.sb.retransMinXmit = min(e.sb.retransMinXmit, s.xmit)
				}
				if s.end.GreaterThan(e.sb.retransHigh) {
					e.sb.retransHigh = s.end
				}
			}
		}
		if rng.IntN(2) == 0 {
			e.sb.retransMinXmit = 0 // a stale lower bound is allowed too
		}
		e.rackXmit = uint64(rng.IntN(int(xmit) + 2))
		e.rackRTT = time.Duration(rng.IntN(20)) * time.Millisecond
		e.minRTT, e.srtt = time.Duration(rng.IntN(8))*time.Millisecond, 10*time.Millisecond
		e.reordering, e.inRecovery = rng.IntN(2) == 0, rng.IntN(2) == 0

		// RFC 6675's rule holds until the path is seen to reorder.
		want, wantNext := detectLossReference(slices.Clone(e.txq), e.rackXmit, e.rackRTT+e.reoWnd(), now, !e.reordering)
		e.detectLoss(now)
		for i := range e.txq {
			require.Equal(t, want[i], e.txq[i].lost, "round %d segment %d", round, i)
		}
		if wantNext > 0 {
			require.Equal(t, p.since(now.Add(wantNext)), e.rackTimer.at, "round %d: reordering timer", round)
		} else {
			require.False(t, e.rackTimer.armed(), "round %d: reordering timer", round)
		}
		// The bound on retransmitted segments stays a lower bound.
		for i := range e.txq {
			if s := &e.txq[i]; s.retrans && !s.sacked && !s.lost {
				require.LessOrEqual(t, e.sb.retransMinXmit, s.xmit, "round %d segment %d", round, i)
			}
		}
		e.rackTimer.release()
	}
}

// TestDSACK: a first SACK block below the ACK or inside the second is a
// D-SACK (RFC 2883); each widens RACK's reordering window by a quarter
// of the minimum RTT, once per round trip, up to SRTT, and the window
// goes back to a quarter after 16 recoveries without one (RFC 8985
// section 6.2 step 4).
func TestDSACK(t *testing.T) {
	b := func(s, e uint32) header.SACKBlock { return header.SACKBlock{Start: s, End: e} }
	assert.True(t, isDSACK([]header.SACKBlock{b(100, 200)}, 300), "below the ACK")
	assert.True(t, isDSACK([]header.SACKBlock{b(100, 200)}, 200), "up to the ACK")
	assert.True(t, isDSACK([]header.SACKBlock{b(500, 600), b(400, 700)}, 300), "inside the second block")
	assert.False(t, isDSACK([]header.SACKBlock{b(500, 600), b(700, 800)}, 300))
	assert.False(t, isDSACK([]header.SACKBlock{b(500, 600)}, 300))
	assert.False(t, isDSACK([]header.SACKBlock{b(200, 100)}, 300), "empty block")
	assert.False(t, isDSACK(nil, 300))

	p := newTestProtocol(t)
	e := p.newEndpoint(connID{}, nil)
	e.setISS(1000)
	e.minRTT, e.srtt = 4*time.Millisecond, 10*time.Millisecond
	e.sndNxt, e.sndMax = 5000, 5000
	e.inRecovery = true
	assert.Zero(t, e.reoWnd(), "no reordering seen, in recovery")
	e.onDSACK(header.SACKBlock{})
	assert.True(t, e.reordering)
	assert.Equal(t, 2*time.Millisecond, e.reoWnd(), "two quarters of min RTT")
	e.onDSACK(header.SACKBlock{})
	assert.Equal(t, 2*time.Millisecond, e.reoWnd(), "once per round trip")
	e.sndUna = 5000
	e.sndNxt, e.sndMax = 9000, 9000
	e.onDSACK(header.SACKBlock{})
	assert.Equal(t, 3*time.Millisecond, e.reoWnd())
	e.sndUna = 9000
	for range 10 {
		e.onDSACK(header.SACKBlock{})
		e.sndUna, e.sndNxt = e.sndNxt, e.sndNxt.Add(1000)
	}
	assert.Equal(t, 10*time.Millisecond, e.reoWnd(), "at most SRTT")
	assert.EqualValues(t, 13, p.Stats().DSACKs)

	e.inRecovery = false
	for range dsackPersist {
		e.enterRecovery()
		e.inRecovery = false
	}
	assert.Equal(t, time.Millisecond, e.reoWnd(), "back to a quarter after 16 recoveries")
}
