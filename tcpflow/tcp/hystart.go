package tcp

import (
	"time"

	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// HyStart++'s constants (RFC 9406 section 4.3).
const (
	hyMinRTTThresh     = 4 * time.Millisecond
	hyMaxRTTThresh     = 16 * time.Millisecond
	hyMinRTTDivisor    = 8
	hyNRTTSample       = 8 // RTT samples a round needs before its minimum counts
	hyCSSGrowthDivisor = 4 // Conservative Slow Start grows a quarter as fast
	hyCSSRounds        = 5 // rounds of CSS before congestion avoidance

	// The ACK train (Linux's HyStart, tcp_cubic.c): from this window
	// on, a round whose ACKs have come without a pause for half an RTT
	// ends slow start.
	hyLowWindow   = 16
	hyMaxACKDelta = 2 * time.Millisecond // a longer pause ends the train
)

// hystartPhase is where a connection is in its first slow start.
type hystartPhase uint8

const (
	hyIdle hystartPhase = iota // slow start, no round begun yet
	hySS                       // standard slow start, its rounds timed
	hyCSS                      // Conservative Slow Start (RFC 9406 section 4.2)
	hyDone                     // slow start over (or HyStart++ off): nothing to do
)

// hystart is HyStart++'s state (RFC 9406) during a connection's first
// slow start, which is the only one it watches (section 4.2: later slow
// starts end at the ssthresh a loss set). Each round of slow start,
// from when sndNxt was windowEnd until sndUna reaches it, keeps the
// minimum RTT of its ACKs; a round whose minimum, after hyNRTTSample
// samples, is above the last round's by a threshold ends standard slow
// start: the queue at the bottleneck has begun to grow. Conservative
// Slow Start then grows the window a quarter as fast for hyCSSRounds
// rounds, and goes back to standard slow start if the RTT falls below
// the one that ended it (the increase was jitter, not a queue), or
// ends slow start with ssthresh = cwnd. In either phase an ACK train
// as long as half the RTT (ackTrain) ends slow start at once. RTTs and
// times are in microseconds, so that the state takes 28 bytes and the
// connection stays in its allocation size class (1408 bytes); a zero
// RTT is RFC 9406's infinity (no sample yet).
type hystart struct {
	windowEnd   seqnum.Value // the round ends when sndUna reaches it
	roundStart  uint32       // when the round began (Protocol.since, microseconds, wrapping)
	lastACK     uint32       // the train's last ACK (same clock)
	lastMin     uint32       // the previous round's minimum RTT
	curMin      uint32       // this round's minimum RTT so far
	cssBaseline uint32       // the minimum RTT that began CSS
	samples     uint8        // this round's RTT samples (saturating)
	cssRounds   uint8        // rounds ended in CSS, the partial first one included
	phase       hystartPhase
}

// hystartThresh is RFC 9406's RttThresh: the RTT increase over the last
// round's minimum that ends standard slow start, an eighth of that
// minimum within [4 ms, 16 ms].
func hystartThresh(lastMin time.Duration) time.Duration {
	return max(hyMinRTTThresh, min(lastMin/hyMinRTTDivisor, hyMaxRTTThresh))
}

// microseconds returns d in whole microseconds, at least 1 (0 means no
// sample) and at most an hour.
func microseconds(d time.Duration) uint32 {
	return uint32(min(max(d/time.Microsecond, 1), time.Hour/time.Microsecond))
}

// slowStartAck grows the window in slow start for an ACK of acked new
// bytes, with the ACK's RTT sample rtt (zero if it gives none), and runs
// HyStart++ (RFC 9406 section 4.2) during the first slow start: in CSS
// the window grows by a quarter of what standard slow start would add.
// Growth counts at most two segments per ACK (appropriate byte
// counting, RFC 3465 with L = 2, more cautious than RFC 9406's L = 8
// for a sender that does not pace).
func (e *endpoint) slowStartAck(acked int, rtt time.Duration, now time.Time) {
	inc := min(acked, 2*e.mss)
	h := &e.hy
	if h.phase == hyIdle {
		if e.p.o.NoHyStart || e.ssthresh != initialSsthresh {
			h.phase = hyDone
		} else {
			h.phase, h.windowEnd = hySS, e.sndNxt
			h.roundStart = microseconds32(e.p.since(now))
			h.lastACK = h.roundStart
		}
	}
	if h.phase == hyCSS {
		inc /= hyCSSGrowthDivisor
	}
	e.cwnd += inc
	if h.phase == hyDone {
		return
	}
	if rtt > 0 {
		us := microseconds(rtt)
		if h.curMin == 0 || us < h.curMin {
			h.curMin = us
		}
		h.samples = min(h.samples+1, 255)
	}
	if e.ackTrain(now) {
		e.ssthresh = e.cwnd
		h.phase = hyDone
		e.p.stats.hyTrains.Add(1)
		return
	}
	if h.samples >= hyNRTTSample && h.curMin != 0 {
		cur := time.Duration(h.curMin) * time.Microsecond
		switch {
		case h.phase == hySS && h.lastMin != 0:
			last := time.Duration(h.lastMin) * time.Microsecond
			if cur >= last+hystartThresh(last) {
				h.phase, h.cssBaseline, h.cssRounds = hyCSS, h.curMin, 0
				e.p.stats.hyCSS.Add(1)
			}
		case h.phase == hyCSS && h.curMin < h.cssBaseline:
			// The RTT fell back: the increase was not a queue.
			h.phase, h.cssBaseline = hySS, 0
			e.p.stats.hySpurious.Add(1)
		}
	}
	if e.sndUna.LessThan(h.windowEnd) {
		return
	}
	// The round is over.
	if h.phase == hyCSS {
		if h.cssRounds++; h.cssRounds >= hyCSSRounds {
			e.ssthresh = e.cwnd
			h.phase = hyDone
			e.p.stats.hyExits.Add(1)
			return
		}
	}
	h.lastMin, h.curMin, h.samples = h.curMin, 0, 0
	h.windowEnd = e.sndNxt
	h.roundStart = microseconds32(e.p.since(now))
	h.lastACK = h.roundStart
}

// ackTrain reports whether this round's ACKs, each within a third of
// SRTT (at most hyMaxACKDelta) of the one before, have come for longer
// than half of SRTT: the window then holds the path's bandwidth-delay
// product, and its doubling would go to the bottleneck's queue (Ha and
// Rhee's HyStart, as Linux's CUBIC has it). RFC 9406's delay increase
// needs a queue of 4 ms to grow between rounds, and comes a round
// later than the overflow at a queue holding less than two rounds'
// growth (at 100 Mbit/s with 64 packets, 7.7 ms); the train sees the
// pipe full before the queue forms. Linux measures from the minimum
// RTT with a 2 ms pause; SRTT and a pause a third of it are not fooled
// by a path that reorders, whose minimum RTT is the short cut of a few
// segments, and a train broken by the idle time of a window smaller
// than two thirds of the path does not count. With a quarter, the
// jitter of the ACKs on a loaded machine (the peer's delayed ACKs, our
// reads of them) broke the train of several transfers in eight at
// 100 Mbit/s, whose slow start then overflowed the queue by up to a
// window. It begins at hyLowWindow.
func (e *endpoint) ackTrain(now time.Time) bool {
	h := &e.hy
	if e.cwnd < hyLowWindow*e.mss || e.srtt <= 0 {
		return false
	}
	t := microseconds32(e.p.since(now))
	delta := min(e.srtt/3, hyMaxACKDelta)
	if time.Duration(int32(t-h.lastACK))*time.Microsecond > delta {
		return false // the train is broken for this round
	}
	h.lastACK = t
	return time.Duration(int32(t-h.roundStart))*time.Microsecond > e.srtt/2
}

// microseconds32 is d in microseconds, modulo 2^32: a clock for
// intervals shorter than 35 minutes.
func microseconds32(d time.Duration) uint32 { return uint32(d / time.Microsecond) }

// initialSsthresh is the slow start threshold of a new connection:
// arbitrarily high (RFC 5681 section 3.1).
const initialSsthresh = 1 << 30
