package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

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

// TestSACKBlocks: the block holding the latest out-of-order arrival
// comes first, then the others in sequence order, as many as fit;
// adjacent queued segments make one block.
func TestSACKBlocks(t *testing.T) {
	p := newTestProtocol(t)
	e := p.newEndpoint(connID{}, nil)
	e.rcvNxt = 50
	for _, r := range [][2]int{{100, 200}, {200, 300}, {400, 500}, {600, 650}, {650, 700}, {800, 900}} {
		e.insertOOO(seqnum.Value(r[0]), make([]byte, r[1]-r[0]), false)
	}
	blocks := func(last seqnum.Value, max int) [][2]uint32 {
		e.lastOOO = last
		var o header.TCPOptions
		e.sackBlocks(&o, max)
		var r [][2]uint32
		for _, b := range o.SACK() {
			r = append(r, [2]uint32{b.Start, b.End})
		}
		return r
	}
	assert.Equal(t, [][2]uint32{{600, 700}, {100, 300}, {400, 500}}, blocks(650, 3))
	assert.Equal(t, [][2]uint32{{600, 700}, {100, 300}, {400, 500}, {800, 900}}, blocks(600, 4))
	assert.Equal(t, [][2]uint32{{100, 300}, {400, 500}}, blocks(350, 2), "the latest arrival no longer queued")
	assert.Equal(t, [][2]uint32{{800, 900}, {100, 300}}, blocks(899, 2))
}
