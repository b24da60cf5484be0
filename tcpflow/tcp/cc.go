package tcp

import (
	"math"
	"strconv"
	"time"

	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// CongestionControl selects how a connection's congestion window grows
// and how it answers loss. Slow start, loss recovery (RFC 6675, RACK)
// and the RTO are the same for all.
type CongestionControl uint8

const (
	// CUBIC (RFC 9438), the default, as in Linux, Windows and macOS:
	// the window shrinks by 30 % at a loss and grows back along a
	// cubic function of the time since, fast far from the window that
	// last saw loss and slowly near it; on short paths it grows at
	// least as fast as NewReno would.
	CUBIC CongestionControl = iota
	// NewReno (RFC 5681, RFC 6582): the window halves at a loss and
	// grows by one segment per round trip.
	NewReno
)

func (c CongestionControl) String() string {
	switch c {
	case CUBIC:
		return "cubic"
	case NewReno:
		return "newreno"
	}
	return "CongestionControl(" + strconv.Itoa(int(c)) + ")"
}

// maxCwnd caps the congestion window.
const maxCwnd = 1 << 30

// CUBIC's constants (RFC 9438 section 5).
const (
	cubicC     = 0.4                                   // window growth, segments per second cubed
	cubicBeta  = 0.7                                   // multiplicative decrease
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta) // Reno-friendly additive increase
)

// cubicState is CUBIC's memory of a connection, windows in segments.
type cubicState struct {
	wMax   float64       // the window before the last reduction
	epoch  time.Duration // start of this growth epoch (Protocol.since); zero until its first ACK
	k      float64       // seconds from epoch to reaching origin
	origin float64       // the plateau of this epoch's cubic function
	wEst   float64       // the window NewReno would have (section 4.3)
	frac   float64       // growth below one byte, carried over
}

// onAck grows the congestion window for acked new bytes outside loss
// recovery, and ends recovery once the data outstanding when it began
// is acknowledged (RFC 6675 section 5, RFC 6582). flight is what was
// outstanding before the ACK: a window the sender does not use is not
// grown (RFC 7661's reasoning, with Linux's rule): in slow start while
// at least half of it was in flight, in congestion avoidance while all
// but a segment was.
func (e *endpoint) onAck(acked seqnum.Size, flight int, now time.Time) {
	if e.inRecovery {
		if e.sndUna.GreaterThanEq(e.recover) {
			e.inRecovery = false
			e.cwnd = max(e.ssthresh, e.mss)
		}
		return
	}
	if slowStart := e.cwnd < e.ssthresh; slowStart && 2*flight < e.cwnd || !slowStart && flight+e.mss < e.cwnd {
		return // application- or receive-window-limited
	}
	switch {
	case e.cwnd < e.ssthresh:
		// Slow start with appropriate byte counting (RFC 3465, L = 2):
		// an ACK of two segments, delayed, counts for two; HyStart++
		// may end it before the bottleneck's queue overflows.
		var rtt time.Duration
		if e.rttCandOK {
			rtt = e.rttCand // the ACK's RTT sample (processAck)
		}
		e.slowStartAck(int(acked), rtt, now)
	case e.p.o.CongestionControl == NewReno:
		// Congestion avoidance counting bytes (RFC 3465 section 2.1):
		// a segment more per window of data acknowledged, however many
		// ACKs carried it (per-ACK growth halves with delayed ACKs).
		e.caBytes += int(acked)
		if e.caBytes >= e.cwnd {
			e.caBytes -= e.cwnd
			e.cwnd += e.mss
		}
	default:
		e.cubicAck(int(acked), now)
	}
	e.cwnd = min(e.cwnd, maxCwnd)
}

// cubicAck is CUBIC's congestion avoidance (RFC 9438 sections 4.2 to
// 4.5) for an ACK of acked new bytes. Before the first congestion event
// (slow start ended by HyStart++, hystart.go, with no window yet known
// to have been too large) the window grows by at least 5 % per round
// trip, as Linux's CUBIC has it (bictcp_update's cnt of at most 20):
// an exit below the path's bandwidth-delay product, where the cubic
// function starting at the window climbs slowly and the Reno-friendly
// rate adds a segment per round trip, is made up in a few round trips.
func (e *endpoint) cubicAck(acked int, now time.Time) {
	before := e.cwnd
	e.cubicGrow(acked, now)
	if g := acked / 20; e.cubic.wMax == 0 && e.cwnd-before < g && !e.queueing() {
		e.cwnd = before + g
	}
}

// queueing reports whether the RTT shows a queue building on the path:
// SRTT above the minimum RTT by HyStart++'s threshold (RFC 9406's
// RttThresh, 4 to 16 ms). The window then is the path's and more, and
// CUBIC's 5 % floor before the first loss stops: the window creeps on
// by the cubic function and the Reno-friendly rate alone, so that the
// queue overflows by a segment or two rather than by a round trip's 5 %.
func (e *endpoint) queueing() bool {
	return e.minRTT > 0 && e.srtt > e.minRTT+hystartThresh(e.minRTT)
}

// cubicGrow is cubicAck's growth along the cubic function or the
// Reno-friendly estimate.
func (e *endpoint) cubicGrow(acked int, now time.Time) {
	c := &e.cubic
	mss := float64(e.mss)
	cwnd := float64(e.cwnd) / mss
	if c.epoch == 0 {
		c.epoch, c.wEst, c.frac = max(e.p.since(now), 1), cwnd, 0
		if cwnd < c.wMax {
			c.k, c.origin = math.Cbrt((c.wMax-cwnd)/cubicC), c.wMax
		} else {
			c.k, c.origin = 0, cwnd
		}
	}
	alpha := cubicAlpha
	if c.wEst >= c.wMax {
		alpha = 1
	}
	segs := float64(acked) / mss
	c.wEst += alpha * segs / cwnd
	t := (e.p.since(now) - c.epoch).Seconds()
	if w := c.origin + cubicC*math.Pow(t-c.k, 3); w < c.wEst {
		// The Reno-friendly region: short paths, or soon after a loss.
		e.cwnd = max(e.cwnd, int(c.wEst*mss))
		return
	}
	// Concave or convex region: close a share of the gap to where the
	// cubic function will be an RTT from now, at most half the window.
	target := c.origin + cubicC*math.Pow(t+e.srtt.Seconds()-c.k, 3)
	target = min(max(target, cwnd), 1.5*cwnd)
	c.frac += (target - cwnd) / cwnd * segs * mss
	if c.frac >= 1 {
		inc := math.Floor(c.frac)
		e.cwnd += int(inc)
		c.frac -= inc
	}
}

// reduceSsthresh sets ssthresh at a congestion event (a loss detected,
// or the first RTO of a backoff): half the data in flight for NewReno
// (RFC 5681 equation 4), 70 % for CUBIC, which also remembers the
// window the loss cut (with fast convergence: less of it when the
// window had not grown back to the last one, RFC 9438 section 4.7).
// The data in flight counts no more than the window: after a long
// recovery the SACKed data above the holes is outstanding too, and a
// reduction from all of it set ssthresh above the window, so that at a
// bottleneck each recovery began from a larger one (Linux reduces from
// the window).
func (e *endpoint) reduceSsthresh() {
	flight := min(int(e.sndUna.Size(e.sndMax)), e.cwnd)
	e.caBytes = 0
	e.hy.phase = hyDone // a loss ends HyStart++'s slow start (RFC 9406 section 4.2)
	if e.p.o.CongestionControl == NewReno {
		e.ssthresh = max(flight/2, 2*e.mss)
		return
	}
	c := &e.cubic
	cwnd := float64(e.cwnd) / float64(e.mss)
	if cwnd < c.wMax {
		c.wMax = cwnd * (1 + cubicBeta) / 2
	} else {
		c.wMax = cwnd
	}
	c.epoch = 0
	e.ssthresh = max(int(float64(flight)*cubicBeta), 2*e.mss)
}

// restartEpoch is called when a connection sends after it had nothing
// in flight: the time it sat idle (or application-limited) must not
// count as time the window grew along CUBIC's curve.
func (e *endpoint) restartEpoch() { e.cubic.epoch = 0 }
