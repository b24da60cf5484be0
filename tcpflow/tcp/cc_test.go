package tcp

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// ccEndpoint returns an established-looking endpoint in congestion
// avoidance: 1000-byte segments, cwnd segments in flight.
func ccEndpoint(t *testing.T, cc CongestionControl, cwnd int) *endpoint {
	p := newTestProtocol(t)
	p.o.CongestionControl = cc
	e := p.newEndpoint(connID{}, nil)
	e.mss, e.cwnd, e.ssthresh = 1000, cwnd*1000, 2000
	e.sndUna, e.sndNxt, e.sndMax = 0, 0, 0
	return e
}

// loss is a congestion event with the window full in flight, as
// enterRecovery makes it.
func loss(e *endpoint) {
	e.sndMax = e.sndUna.Add(seqnum.Size(e.cwnd))
	e.reduceSsthresh()
	e.cwnd = e.ssthresh
	e.sndMax = e.sndUna
}

// TestNewRenoByteCounting: past ssthresh the window grows by one
// segment per window of acknowledged bytes, however they are split
// across ACKs (RFC 3465 section 2.1), and halves at a loss.
func TestNewRenoByteCounting(t *testing.T) {
	e := ccEndpoint(t, NewReno, 4)
	now := time.Unix(100, 0)
	e.onAck(2000, e.cwnd, now)
	assert.Equal(t, 4000, e.cwnd)
	e.onAck(2000, e.cwnd, now)
	assert.Equal(t, 5000, e.cwnd, "a window of bytes acknowledged by two stretch ACKs")
	for range 5 {
		e.onAck(1000, e.cwnd, now)
	}
	assert.Equal(t, 6000, e.cwnd, "five single-segment ACKs")
	e.onAck(7000, e.cwnd, now) // a window's worth and 1000 bytes toward the next
	assert.Equal(t, 7000, e.cwnd)
	e.onAck(6000, e.cwnd, now)
	assert.Equal(t, 8000, e.cwnd, "the remainder carries over")
	loss(e)
	assert.Equal(t, 4000, e.cwnd)
	assert.Equal(t, 4000, e.ssthresh)
}

// ackRounds feeds rounds round trips of ACKs, one per segment of the
// window, rtt apart, and returns the time after them.
func ackRounds(e *endpoint, now time.Time, rtt time.Duration, rounds int) time.Time {
	for range rounds {
		n := e.cwnd / e.mss
		for range n {
			e.onAck(seqnum.Size(e.mss), e.cwnd, now)
		}
		now = now.Add(rtt)
	}
	return now
}

// TestCUBICReduction: a loss cuts the window to 70 % of what was in
// flight and remembers the window it cut; a second loss before the
// window grew back remembers less of it (fast convergence, RFC 9438
// section 4.7). An RTO's reduction is the same.
func TestCUBICReduction(t *testing.T) {
	e := ccEndpoint(t, CUBIC, 100)
	loss(e)
	assert.Equal(t, 70_000, e.cwnd)
	assert.Equal(t, 70_000, e.ssthresh)
	assert.InDelta(t, 100, e.cubic.wMax, 1e-9)
	loss(e)
	assert.Equal(t, 49_000, e.cwnd)
	assert.InDelta(t, 70*1.7/2, e.cubic.wMax, 1e-9, "fast convergence")

	r := ccEndpoint(t, CUBIC, 100)
	r.state = stateEstablished
	r.sndMax = r.sndUna.Add(100_000)
	r.onRTO()
	assert.Equal(t, 70_000, r.ssthresh)
	assert.Equal(t, 1000, r.cwnd)
}

// TestCUBICCurve: on a long path (100 ms round trips) the window grows
// back to the one the loss cut in K = cbrt(W_max (1-beta) / C) seconds,
// slowly as it nears it (concave), then faster beyond it (convex),
// following W(t) = C (t-K)^3 + W_max (RFC 9438 section 4.2).
func TestCUBICCurve(t *testing.T) {
	e := ccEndpoint(t, CUBIC, 1000)
	rtt := 100 * time.Millisecond
	e.srtt = rtt
	loss(e)
	require.Equal(t, 700_000, e.cwnd)
	// RFC 9438's constants, written out: C = 0.4, beta = 0.7.
	k := math.Cbrt(1000 * 0.3 / 0.4) // 9.09 s
	start := time.Unix(100, 0)
	w := func(t float64) float64 { return 0.4*math.Pow(t-k, 3) + 1000 }

	now := ackRounds(e, start, rtt, 1) // the epoch starts at the first ACK
	for _, at := range []float64{2, 5, k, k + 3} {
		end := start.Add(time.Duration(at * float64(time.Second)))
		for now.Before(end) {
			now = ackRounds(e, now, rtt, 1)
		}
		got := float64(e.cwnd) / 1000
		// The window follows the curve within the growth of a round
		// trip (it aims at W(t + RTT)).
		assert.InDelta(t, w(at), got, w(at+0.2)-w(at-0.2)+2, "window at t=%.2f s", at)
	}
	assert.Greater(t, e.cwnd, 1000_000, "convex beyond W_max")
}

// TestCUBICRenoFriendly: on a short path the cubic function barely
// moves between losses; the window grows as NewReno's would with
// CUBIC's smaller decrease (alpha = 3(1-beta)/(1+beta) segments per
// round trip), then by a segment per round trip past W_max.
func TestCUBICRenoFriendly(t *testing.T) {
	e := ccEndpoint(t, CUBIC, 100)
	rtt := 100 * time.Microsecond
	e.srtt = rtt
	loss(e)
	require.Equal(t, 70_000, e.cwnd)
	now := ackRounds(e, time.Unix(100, 0), rtt, 20)
	assert.InDelta(t, 70+20*(3*0.3/1.7), float64(e.cwnd)/1000, 1)
	now = ackRounds(e, now, rtt, 60) // W_est reaches W_max = 100 within these
	before := e.cwnd
	ackRounds(e, now, rtt, 10)
	assert.InDelta(t, 10, float64(e.cwnd-before)/1000, 1, "a segment per round trip past W_max")
}

// TestCUBICIdleRestart: time without data in flight does not count as
// growth time: the next epoch starts when sending resumes.
func TestCUBICIdleRestart(t *testing.T) {
	e := ccEndpoint(t, CUBIC, 100)
	rtt := 100 * time.Millisecond
	e.srtt = rtt
	loss(e)
	now := ackRounds(e, time.Unix(100, 0), rtt, 2)
	w := e.cwnd
	e.restartEpoch()
	now = now.Add(time.Hour) // idle
	ackRounds(e, now, rtt, 1)
	assert.Less(t, e.cwnd, w+w/10, "an hour idle did not grow the window")
}

func TestCongestionControlOption(t *testing.T) {
	assert.Equal(t, "cubic", CUBIC.String())
	assert.Equal(t, "newreno", NewReno.String())
	assert.Equal(t, "CongestionControl(7)", CongestionControl(7).String())
	_, err := New(Options{
		Addr:              netip.MustParseAddr("10.0.0.1"),
		Output:            func(src, dst netip.Addr, h, payload []byte) error { return nil },
		CongestionControl: 7,
	})
	assert.ErrorContains(t, err, "unknown Options.CongestionControl CongestionControl(7)")
}

// TestPRR: in recovery, sending follows deliveries at the rate
// ssthresh/RecoverFS while more than ssthresh is in flight: with 100
// segments in flight, one lost, and ssthresh 70, it sends about 7 for
// every 10 delivered from the first ACK on, rather than nothing until
// 30 have been delivered and then one per ACK (RFC 6937 section 3);
// below ssthresh, it grows back no faster than the deliveries plus a
// segment (PRR-SSRB).
func TestPRR(t *testing.T) {
	e := ccEndpoint(t, CUBIC, 100)
	e.recoverFS, e.ssthresh = 100_000, 70_000
	e.prrDelivered, e.prrOut = 0, 1000 // the retransmission sent on entry
	pipe := 100_000                    // 99 in flight and the retransmission
	sent := 0
	maxGap, last := 0, 0
	for ack := 1; ack <= 30; ack++ {
		pipe -= 1000 // one segment delivered
		e.sb.bytes = pipe
		e.prrUpdate(1000)
		for e.cwnd-pipe >= 1000 { // what output sends: whole segments
			pipe += 1000
			e.prrOut += 1000
			sent++
			if last > 0 {
				maxGap = max(maxGap, ack-last)
			}
			last = ack
		}
	}
	assert.Equal(t, 20, sent, "30 * 0.7 - 1 after 30 deliveries")
	assert.LessOrEqual(t, last, 30)
	assert.LessOrEqual(t, maxGap, 2, "spread over the ACKs, from the third on")

	// Far below ssthresh (a burst of losses): a segment more than
	// delivered per ACK.
	e.prrDelivered, e.prrOut = 0, 0
	e.sb.bytes = 2000
	e.prrUpdate(1000)
	assert.Equal(t, 2000+2000, e.cwnd)
	e.sb.bytes = 69_500
	e.prrUpdate(1000)
	assert.Equal(t, 70_000, e.cwnd, "up to ssthresh")
}

// TestUnusedWindowNotGrown: ACKs of a sender that does not fill its
// window (application- or receive-window-limited) do not grow it: in
// slow start unless half of it was in flight, in congestion avoidance
// unless all but a segment was.
func TestUnusedWindowNotGrown(t *testing.T) {
	now := time.Unix(100, 0)
	e := ccEndpoint(t, NewReno, 10)
	e.ssthresh = 1 << 30 // slow start
	e.onAck(1000, 4000, now)
	assert.Equal(t, 10_000, e.cwnd, "4 of 10 segments in flight")
	e.onAck(1000, 5000, now)
	assert.Equal(t, 11_000, e.cwnd, "half in flight")

	e.ssthresh = 2000 // congestion avoidance
	e.cwnd = 10_000
	for range 20 {
		e.onAck(1000, 8000, now)
	}
	assert.Equal(t, 10_000, e.cwnd, "8 of 10 segments in flight")
	for range 10 {
		e.onAck(1000, 9000, now)
	}
	assert.Equal(t, 11_000, e.cwnd, "all but one in flight")
}

// TestReductionFromWindow: a congestion event reduces from what is in
// flight, but from no more than the window. At a bottleneck (the netem
// wire at 100 Mbit/s with a 64-packet queue) recoveries that lasted
// ended with the SACKed data above the holes outstanding, several times
// the window, and the next recovery's ssthresh was 70 % of that: above
// the window, growing from one recovery to the next, while the queue
// dropped thousands of segments per transfer.
func TestReductionFromWindow(t *testing.T) {
	for _, tc := range []struct {
		cc                 CongestionControl
		flight, cwnd, want int // segments; ssthresh in bytes
	}{
		{CUBIC, 100, 10, 7000},
		{NewReno, 100, 10, 5000},
		{CUBIC, 4, 10, 2800}, // less in flight than the window: from the flight
		{NewReno, 4, 10, 2000},
	} {
		e := ccEndpoint(t, tc.cc, tc.cwnd)
		e.sndMax = e.sndUna.Add(seqnum.Size(tc.flight * e.mss))
		e.reduceSsthresh()
		assert.Equal(t, tc.want, e.ssthresh, "%v, %d segments in flight, window %d", tc.cc, tc.flight, tc.cwnd)
	}
}

// TestCubicFloorStopsAtQueue: before the first loss CUBIC's window
// grows at least 5 % a round trip, unless SRTT shows a queue (above the
// minimum RTT by HyStart++'s threshold): then the cubic function and the
// Reno-friendly rate alone grow it, by far less.
func TestCubicFloorStopsAtQueue(t *testing.T) {
	grow := func(srtt time.Duration) int {
		p := newTestProtocol(t)
		e := p.newEndpoint(connID{}, nil)
		e.mss, e.cwnd, e.ssthresh = 1000, 100_000, 100_000
		e.minRTT, e.srtt = 2*time.Millisecond, srtt
		now := time.Unix(10, 0)
		for range 100 { // one round trip of ACKs, one segment each
			e.cubicAck(1000, now)
			now = now.Add(srtt / 100)
		}
		return e.cwnd - 100_000
	}
	assert.GreaterOrEqual(t, grow(2*time.Millisecond), 5000, "no queue: 5 % a round trip")
	assert.GreaterOrEqual(t, grow(5*time.Millisecond), 5000, "3 ms above the minimum: below the 4 ms threshold")
	assert.Less(t, grow(7*time.Millisecond), 1500, "5 ms above: the queue is building")
}
