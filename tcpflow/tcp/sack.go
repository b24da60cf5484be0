package tcp

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// txSeg is one segment of the retransmission queue (the sender's
// scoreboard of RFC 6675): the sequence space it covers as first sent,
// when it was last sent and what the peer told us about it.
type txSeg struct {
	start, end seqnum.Value // end includes the FIN
	fin        bool
	sentAt     time.Time // last transmission
	xmit       uint64    // transmission order of the last transmission
	retrans    bool      // sent more than once: no RTT sample (Karn)
	sacked     bool      // selectively acknowledged
	lost       bool      // deemed lost and not yet retransmitted
}

func (s *txSeg) size() int { return int(s.start.Size(s.end)) }

// dataLen is the number of data bytes (the FIN excluded).
func (s *txSeg) dataLen() int {
	if s.fin {
		return s.size() - 1
	}
	return s.size()
}

// maxIdleTxq is the largest retransmission queue array a connection
// keeps once its queue is empty.
const maxIdleTxq = 64

// dupThresh is the duplicate ACK threshold of RFC 5681 and RFC 6675.
const dupThresh = 3

// scoreboard sums the retransmission queue, so that the questions asked
// on every ACK cost nothing: what is in flight, is anything lost, can
// the order of transmissions be read from the queue's order.
type scoreboard struct {
	bytes       int // sequence space of the queue
	sackedBytes int
	lostBytes   int
	lost        int // segments marked lost
	sacked      int // segments SACKed
	retrans     int // segments sent more than once
	// Of the retransmitted segments: a lower bound of the transmission
	// order of those neither SACKed nor marked lost (exact after each
	// pass of detectLoss over them), and the end of the highest one.
	retransMinXmit uint64
	retransHigh    seqnum.Value
}

// forget removes n bytes of s (all of it, or an acknowledged head).
func (sb *scoreboard) forget(s *txSeg, n int) {
	sb.bytes -= n
	switch {
	case s.sacked:
		sb.sackedBytes -= n
		if n == s.size() {
			sb.sacked--
		}
	case s.lost:
		sb.lostBytes -= n
		if n == s.size() {
			sb.lost--
		}
	}
}

// markLost marks s lost unless it is SACKed or marked already; it
// reports whether it did.
func (e *endpoint) markLost(s *txSeg) bool {
	if s.sacked || s.lost {
		return false
	}
	s.lost = true
	e.sb.lost++
	e.sb.lostBytes += s.size()
	return true
}

// pipe is the data estimated in flight (RFC 6675 section 4): bytes
// neither SACKed nor deemed lost (a retransmitted segment counts again
// once retransmitted, as its lost mark is then cleared).
func (e *endpoint) pipe() int {
	return e.sb.bytes - e.sb.sackedBytes - e.sb.lostBytes
}

// firstLost returns the index of the first segment to retransmit, or -1.
func (e *endpoint) firstLost() int {
	if e.sb.lost == 0 {
		return -1
	}
	for i := range e.txq {
		if e.txq[i].lost {
			return i
		}
	}
	return -1
}

// sendTx (re)sends e.txq[i] and records when.
func (e *endpoint) sendTx(i int) {
	s := &e.txq[i]
	if !s.sentAt.IsZero() && !s.retrans {
		s.retrans = true
		if e.sb.retrans++; e.sb.retrans == 1 {
			e.sb.retransMinXmit, e.sb.retransHigh = math.MaxUint64, s.end
		}
	}
	if s.lost {
		s.lost = false
		e.sb.lost--
		e.sb.lostBytes -= s.size()
	}
	if e.inRecovery {
		e.prrOut += s.size()
	}
	s.sentAt = e.now()
	e.xmitCount++
	s.xmit = e.xmitCount
	if s.retrans {
		e.sb.retransMinXmit = min(e.sb.retransMinXmit, s.xmit)
		if s.end.GreaterThan(e.sb.retransHigh) {
			e.sb.retransHigh = s.end
		}
	}
	e.transmit(s.start, s.dataLen(), s.fin)
}

// markDelivered records that s reached the peer (cumulatively or
// selectively acknowledged): it updates RACK and, for a segment sent
// only once (Karn's algorithm), the minimum RTT and the RTT sample
// candidate.
func (e *endpoint) markDelivered(s *txSeg, now time.Time) {
	rtt := now.Sub(s.sentAt)
	if s.retrans {
		// If a D-SACK for it follows, this delivery was the first
		// transmission's, rtt after the retransmission (onDSACK).
		e.spurSeq, e.spurLate = s.start, rtt
		if rtt < e.minRTT {
			// RFC 8985 section 6.2 step 2: too soon to acknowledge the
			// last transmission; the first one (spuriously deemed lost,
			// or probed) got there, and RACK must not take the
			// retransmission's time as delivered.
			return
		}
	} else {
		e.updateMinRTT(rtt, now)
		// The RTT sample of an ACK is the oldest segment it delivers,
		// as Linux takes it (tcp_clean_rtx_queue's first_ackt) and as
		// an echoed timestamp would give it (RFC 7323 section 4.3):
		// on a path that reorders, the newest is the one that took a
		// short cut, and an SRTT from it is too short to bound the
		// reordering window and the probe timeout.
		if !e.rttCandOK || s.xmit < e.rttCandXmit {
			e.rttCandOK, e.rttCandXmit, e.rttCand = true, s.xmit, rtt
		}
	}
	// RACK (RFC 8985 section 6.2 step 2): RACK.rtt is the RTT of the
	// segment delivered last, as in Linux (tcp_rack_advance), however
	// long ago it was sent: when a path that reorders delivers the
	// segments it held back, their longer RTT gives the segments sent
	// before them longer too. rackXmit is the most recently sent
	// segment known delivered.
	e.rackRTT = rtt
	e.rackXmit = max(e.rackXmit, s.xmit)
}

// minRTTWindow is how long a minimum RTT sample is trusted: a longer
// path (a route change) shows within it.
const minRTTWindow = 10 * time.Second

// updateMinRTT takes an RTT sample into the windowed minimum RTT.
func (e *endpoint) updateMinRTT(rtt time.Duration, now time.Time) {
	if at := max(e.p.since(now), 1); e.minRTTAt == 0 || rtt <= e.minRTT || at-e.minRTTAt > minRTTWindow {
		e.minRTT, e.minRTTAt = rtt, at
	}
}

// noteFack records the highest sequence number delivered, and, for a
// segment sent once and SACKed below it, that the path reorders (RFC
// 8985 section 6.2 step 3). Cumulative acknowledgments do not count:
// a lost ACK can hide a segment's delivery until the hole below it is
// filled.
func (e *endpoint) noteFack(s *txSeg, sacked bool) {
	if s.end.GreaterThan(e.fack) {
		e.fack = s.end
	} else if sacked && s.end.LessThan(e.fack) && !s.retrans {
		e.reordering = true
	}
}

// applySACK marks the segments the blocks of s cover. It returns
// whether any segment was newly SACKed.
func (e *endpoint) applySACK(s *segment, now time.Time) bool {
	if !e.sackOK || s.opts.NumSACKBlocks == 0 {
		return false
	}
	news := false
	blocks := s.opts.SACK()
	if isDSACK(blocks, s.ack) {
		e.onDSACK(blocks[0])
		blocks = blocks[1:]
	}
	for _, b := range blocks {
		start, end := seqnum.Value(b.Start), seqnum.Value(b.End)
		if !start.LessThan(end) || !e.sndUna.LessThan(end) || end.GreaterThan(e.sndMax) {
			continue // old or invalid
		}
		// The queue is in sequence order: skip to the first segment
		// the block can cover.
		i := sort.Search(len(e.txq), func(i int) bool { return e.txq[i].start.GreaterThanEq(start) })
		for ; i < len(e.txq); i++ {
			x := &e.txq[i]
			if x.start.GreaterThanEq(end) {
				break
			}
			if x.sacked || x.end.GreaterThan(end) {
				continue
			}
			if x.lost {
				x.lost = false
				e.sb.lost--
				e.sb.lostBytes -= x.size()
			}
			x.sacked = true
			e.sb.sacked++
			e.sb.sackedBytes += x.size()
			e.noteFack(x, true)
			e.markDelivered(x, now)
			news = true
		}
	}
	return news
}

// isDSACK reports whether the first of blocks reports data received
// twice (RFC 2883 section 4): below the acknowledgment number ack, or
// inside the second block.
func isDSACK(blocks []header.SACKBlock, ack seqnum.Value) bool {
	if len(blocks) == 0 {
		return false
	}
	start, end := seqnum.Value(blocks[0].Start), seqnum.Value(blocks[0].End)
	if !start.LessThan(end) {
		return false
	}
	if end.LessThanEq(ack) {
		return true
	}
	return len(blocks) > 1 && seqnum.Value(blocks[1].Start).LessThanEq(start) && end.LessThanEq(seqnum.Value(blocks[1].End))
}

// maxReoWndMult bounds the reordering window's growth (it is SRTT at
// most anyway), so that a peer sending D-SACKs without end cannot
// overflow it.
const maxReoWndMult = 1 << 10

// dsackPersist is the number of recoveries a widened reordering window
// lasts without a new D-SACK (RFC 8985 section 6.2 step 4).
const dsackPersist = 16

// onDSACK takes a D-SACK for the range of b: a retransmission reached a
// peer that had the data already, so a segment was deemed lost too
// soon. The path is taken to reorder, and RACK's reordering window
// widens (RFC 8985 section 6.2 step 4) in two ways:
//
//   - by a quarter of the minimum RTT, at most once per round trip, as
//     RFC 8985 and Linux (tcp_rack_update_reo_wnd) have it;
//   - to the reordering measured, when the retransmission whose first
//     transmission the D-SACK shows delivered is the last one delivered
//     (spurSeq): its first transmission's ACK came spurLate after the
//     retransmission, so a window longer by spurLate would have waited
//     for it.
//
// The first alone, on a path whose minimum RTT is a packet and its ACK
// that both skipped a queue (a tenth of the usual RTT), takes dozens of
// round trips, each with spurious retransmissions, to reach reordering
// of a whole RTT; Linux's 4 ms timer ticks hide that. The step is at
// most SRTT, as in RFC 8985; the measure at most SRTT + 4 RTTVAR, the
// longest RTT RFC 6298 expects (reoWnd): RACK waits the reordering
// window after RACK.rtt, and when the segment delivered last took the
// short cut, RACK.rtt is a tenth of the RTT the others take, so that a
// window bounded by SRTT (which averages both) still deemed lost
// segments a whole RTT behind it (the D-SACKed retransmissions on
// netem's "delay 1ms reorder 25%" wire, as sender at 1 % loss: about
// 55 a transfer bounded by SRTT, 22–33 by SRTT + 4 RTTVAR; Linux 48–54).
// Both last dsackPersist recoveries without a new D-SACK.
func (e *endpoint) onDSACK(b header.SACKBlock) {
	e.p.stats.dsacks.Add(1)
	e.reordering = true
	if e.spurLate > 0 && seqnum.Value(b.Start).LessThanEq(e.spurSeq) && e.spurSeq.LessThan(seqnum.Value(b.End)) {
		e.reoWndMeas = min(max(e.reoWndMeas, e.reoWnd()+e.spurLate), maxReoWndMeas)
		e.spurLate = 0
		e.reoWndPersist = dsackPersist
	}
	if e.sndUna.GreaterThanEq(e.dsackRound) {
		e.reoWndMult = min(e.reoWndMult+1, maxReoWndMult)
		e.dsackRound = e.sndNxt
		e.reoWndPersist = dsackPersist
	}
}

// maxReoWndMeas bounds the measured reordering window (it is SRTT at
// most anyway).
const maxReoWndMeas = time.Minute

// reoWnd is the reordering window of RACK (RFC 8985 section 6.2 step
// 4): how long after a later segment was delivered an earlier one is
// deemed lost. Until the path has been seen to reorder, it is zero in
// loss recovery and once dupThresh segments are SACKed; otherwise a
// quarter of the minimum RTT or more, at most SRTT, or the reordering
// D-SACKs measured, at most SRTT + 4 RTTVAR (onDSACK).
func (e *endpoint) reoWnd() time.Duration {
	if !e.reordering && (e.inRecovery || e.sb.sacked >= dupThresh) {
		return 0
	}
	return max(min(time.Duration(e.reoWndMult)*e.minRTT/4, e.srtt), min(e.reoWndMeas, e.srtt+4*e.rttvar))
}

// detectLoss marks lost segments: those with dupThresh SACKed segments
// above them (RFC 6675 IsLost), and those sent before a delivered
// segment longer than an RTT and the reordering window ago (RACK, RFC
// 8985). It arms the reordering timer for segments not yet overdue, and
// returns whether any segment was newly marked.
//
// It walks no more of the queue than can hold losses. The segments sent
// only once are in transmission order along the queue, so those that
// either rule marks are a prefix of them: the walk stops at the first
// that is neither below the dupThresh-th highest SACKed segment nor
// overdue. Retransmitted segments can sit anywhere; they are visited
// only when one may have been sent before the most recently delivered
// segment (sb.retransMinXmit) and not beyond the highest of them.
func (e *endpoint) detectLoss(now time.Time) bool {
	marked := false
	var next time.Duration
	wnd := e.rackRTT + e.reoWnd()
	// overdue applies RACK to s, sent before the most recently
	// delivered segment, and remembers the earliest deadline to come.
	overdue := func(s *txSeg) bool {
		left := s.sentAt.Add(wnd).Sub(now)
		if left > 0 && (next == 0 || left < next) {
			next = left
		}
		return left <= 0
	}
	// Segments at indexes below lowIdx have dupThresh SACKed segments
	// above them: RFC 6675's rule, until the path is seen to reorder.
	// After that RACK alone decides, as RFC 8985 has its reordering
	// window take over from DupThresh and as Linux does
	// (tp->reord_seen): on such a path, three segments SACKed above one
	// are no sign that it is lost.
	lowIdx := 0
	if e.sb.sacked >= dupThresh && !e.reordering {
		i := sort.Search(len(e.txq), func(i int) bool { return e.txq[i].end.GreaterThanEq(e.fack) })
		for n := 0; i >= 0; i-- {
			if i < len(e.txq) && e.txq[i].sacked {
				if n++; n == dupThresh {
					break
				}
			}
		}
		lowIdx = max(i, 0)
	}
	scanRetrans := e.sb.retrans > 0 && e.sb.retransMinXmit < e.rackXmit
	retransEnd := 0
	if scanRetrans {
		retransEnd = sort.Search(len(e.txq), func(i int) bool { return e.txq[i].start.GreaterThanEq(e.sb.retransHigh) })
		e.sb.retransMinXmit = math.MaxUint64 // recomputed below
	}
	onceOpen := true // still in the prefix of segments sent once that may be lost
	for i := 0; i < len(e.txq) && (onceOpen || i < retransEnd); i++ {
		s := &e.txq[i]
		if s.sacked {
			continue
		}
		if s.retrans {
			if scanRetrans {
				if !s.lost && s.xmit < e.rackXmit && overdue(s) {
					marked = e.markLost(s) || marked
				}
				if !s.lost {
					e.sb.retransMinXmit = min(e.sb.retransMinXmit, s.xmit)
				}
			}
			continue
		}
		if !onceOpen || s.lost {
			continue
		}
		if i < lowIdx || s.xmit < e.rackXmit && overdue(s) {
			marked = e.markLost(s) || marked
			continue
		}
		onceOpen = false // sent later, the rest sent once are not lost either
	}
	if next > 0 {
		e.rackTimer.set(next)
	} else {
		e.rackTimer.stop()
	}
	return marked
}

// onRackTimer runs when segments sent before a delivered one have had
// the reordering window to arrive (RFC 8985 section 6.3).
func (e *endpoint) onRackTimer() {
	if !e.canSend() || len(e.txq) == 0 {
		return
	}
	e.p.stats.reoTimeouts.Add(1)
	if e.detectLoss(e.now()) {
		e.enterRecovery()
	}
	e.output()
}

// enterRecovery starts loss recovery once losses are detected (RFC 6675
// section 5): it reduces the window once per window of data (by half,
// or by 30 % with CUBIC) and sends the first lost segment at once.
func (e *endpoint) enterRecovery() {
	if e.inRecovery {
		return
	}
	if e.sndUna.LessThan(e.recover) && e.recoverRTO {
		// Still repairing the window an RTO hit: no second reduction.
		return
	}
	if e.reoWndPersist > 0 {
		if e.reoWndPersist--; e.reoWndPersist == 0 {
			e.reoWndMult, e.reoWndMeas, e.dsackRound = 1, 0, e.sndUna
		}
	}
	e.reduceSsthresh()
	e.cwnd = e.ssthresh
	e.prrDelivered, e.prrOut, e.recoverFS = 0, 0, int(e.sndUna.Size(e.sndMax))
	e.recover = e.sndMax
	e.recoverRTO = false
	e.recXmit = e.xmitCount + 1
	e.inRecovery = true
	e.p.stats.fastRetrans.Add(1)
	if i := e.firstLost(); i >= 0 {
		e.sendTx(i) // RFC 6675 step 4.3: regardless of the window
	}
}

// prrUpdate sets the congestion window for an ACK in SACK loss
// recovery that reported delivered new bytes (cumulatively or
// selectively), by Proportional Rate Reduction (RFC 6937): while more
// than ssthresh is in flight, sending keeps pace with a share
// ssthresh/RecoverFS of the deliveries, so the window comes down to
// ssthresh across the round trip instead of stalling at once and then
// bursting; once below, it grows back toward ssthresh no faster than
// slow start (PRR-SSRB).
func (e *endpoint) prrUpdate(delivered int) {
	e.prrDelivered += delivered
	pipe := e.pipe()
	var sndcnt int
	if pipe > e.ssthresh {
		sndcnt = (e.prrDelivered*e.ssthresh+e.recoverFS-1)/max(e.recoverFS, 1) - e.prrOut
	} else {
		sndcnt = min(e.ssthresh-pipe, max(e.prrDelivered-e.prrOut, delivered)+e.mss)
	}
	e.cwnd = pipe + max(sndcnt, 0)
}

// oooBlock returns the contiguous run of out-of-order segments around
// ooo[i], as indexes [lo, hi), and the sequence space it covers.
func oooBlock(ooo []oooSeg, i int) (lo, hi int, start, end seqnum.Value) {
	lo, hi = i, i+1
	for lo > 0 && ooo[lo-1].end() == ooo[lo].seq {
		lo--
	}
	for hi < len(ooo) && ooo[hi-1].end() == ooo[hi].seq {
		hi++
	}
	return lo, hi, ooo[lo].seq, ooo[hi-1].end()
}

// sackRecent is how many of the latest out-of-order arrivals' blocks
// the connection remembers, for the SACK blocks of its ACKs: as many as
// fit beside timestamps.
const sackRecent = 3

// noteRecentOOO records that out-of-order data starting at seq (now in
// the queue) arrived: its block becomes the most recent, and older
// entries for the same block, or for data rcvNxt has passed, go. It
// returns the block, [start, end) (empty if seq is not queued).
func (e *endpoint) noteRecentOOO(seq seqnum.Value) (start, end seqnum.Value) {
	i := sort.Search(len(e.ooo), func(i int) bool { return e.ooo[i].end().GreaterThan(seq) })
	if i == len(e.ooo) || e.ooo[i].seq.GreaterThan(seq) {
		return seq, seq
	}
	_, _, start, end = oooBlock(e.ooo, i)
	var r [sackRecent]seqnum.Value
	r[0] = start
	n := 1
	for _, x := range e.oooRecent[:e.nOOORecent] {
		if n == len(r) {
			break
		}
		if x.LessThan(e.rcvNxt) || (start.LessThanEq(x) && x.LessThan(end)) {
			continue
		}
		r[n] = x
		n++
	}
	e.oooRecent, e.nOOORecent = r, uint8(n)
	return start, end
}

// sackBlocks fills o, after any blocks already there (a D-SACK), up to
// maxBlocks blocks describing the out-of-order queue: the blocks of the
// latest arrivals first, most recent first (RFC 2018 section 4: the
// first holds the segment that triggered the ACK, and repeating the
// recent ones covers the loss of an ACK; after a D-SACK for data in the
// queue, the block holding it, as RFC 2883 asks; Linux orders them so),
// then the others in sequence order. It walks no more of the queue than
// the blocks it reports.
func (e *endpoint) sackBlocks(o *header.TCPOptions, maxBlocks int) {
	n := o.NumSACKBlocks // after a D-SACK block
	var reported [sackRecent]int
	nr := 0
	for _, x := range e.oooRecent[:e.nOOORecent] {
		if n >= maxBlocks {
			break
		}
		i := sort.Search(len(e.ooo), func(i int) bool { return e.ooo[i].end().GreaterThan(x) })
		if i == len(e.ooo) || e.ooo[i].seq.GreaterThan(x) {
			continue // rcvNxt passed it
		}
		lo, _, start, end := oooBlock(e.ooo, i)
		if slices.Contains(reported[:nr], lo) {
			continue
		}
		reported[nr] = lo
		nr++
		o.SACKBlocks[n] = header.SACKBlock{Start: uint32(start), End: uint32(end)}
		n++
	}
	for i := 0; i < len(e.ooo) && n < maxBlocks; {
		lo, hi, start, end := oooBlock(e.ooo, i)
		if !slices.Contains(reported[:nr], lo) {
			o.SACKBlocks[n] = header.SACKBlock{Start: uint32(start), End: uint32(end)}
			n++
		}
		i = hi
	}
	o.NumSACKBlocks = n
}

// Tail loss probes (RFC 8985 section 7).
const (
	// maxTLPProbes bounds the probes sent before the RTO (which also
	// stops them once a probe's wait would reach it). Each probe and
	// its ACK may be lost: at 5 % loss each way one in ten probes goes
	// unanswered, and three in a row (the bound before) left about one
	// transfer in thirty of the loss benchmark waiting 200 ms for an RTO.
	maxTLPProbes = 6
	// minPTO is the shortest probe timeout: about the resolution of
	// the Go runtime's timers on a loaded machine. Below it, on paths
	// of a few microseconds, the timer fires on scheduling noise
	// rather than loss (lossless bulk lost 7 % to timer wake-ups with
	// no floor; a 2 ms floor, as before, cost a third of the throughput
	// at 5 % loss).
	minPTO = 50 * time.Microsecond
	// wcDelAckT is the longest a peer may delay its ACK of a lone
	// segment (RFC 8985 section 7.2, RFC 1122).
	wcDelAckT = 200 * time.Millisecond
)

// armTLP schedules a tail loss probe 2 SRTT after the last transmission
// or new ACK, when an RTT is known and no backoff is under way; it stops
// the probe timer otherwise.
//
// Two departures from RFC 8985, both for links whose RTT is far below
// the RTO's 200 ms floor (in memory, a data centre), where every RTO
// stalls a connection for thousands of RTTs: probes are sent in loss
// recovery too (a lost retransmission with a small window has nothing
// else to reveal it), and an unanswered probe is followed by up to
// maxTLPProbes-1 more, each after twice the previous wait, before the
// RTO takes over.
func (e *endpoint) armTLP() {
	if e.tlpProbes >= maxTLPProbes || e.backoff > 0 || e.srtt == 0 || e.sndUna == e.sndMax {
		e.tlpTimer.stop()
		return
	}
	pto := max(2*e.srtt, minPTO)
	if int(e.sndUna.Size(e.sndMax)) <= e.mss {
		pto += wcDelAckT
	}
	pto <<= e.tlpProbes
	if pto >= e.rtoCur() {
		e.tlpTimer.stop()
		return
	}
	e.tlpTimer.set(pto)
}

// onTLP sends the probe (RFC 8985 section 7.3): a new segment if there
// is data the peer's window takes, otherwise the last segment not
// SACKed, sent again, so that its ACK (and SACK blocks) reveal a lost
// tail without waiting for the retransmission timeout. New data is the
// better probe: its ACK is not ambiguous.
func (e *endpoint) onTLP() {
	if !e.canSend() || e.tlpProbes >= maxTLPProbes || e.backoff > 0 || len(e.txq) == 0 {
		return
	}
	if e.sndNxt == e.sndMax {
		outstanding := int(e.sndUna.Size(e.sndNxt))
		remaining := e.sndBuf.Len() - int(e.sndBufStart.Size(e.sndNxt))
		if n := min(remaining, e.mss); n > 0 && outstanding+n <= int(e.sndWnd) {
			e.tlpProbes++
			e.p.stats.lossProbes.Add(1)
			e.sendNew(n, e.finQueued && n == remaining)
			e.rtoTimer.set(e.rtoCur())
			e.armTLP()
			return
		}
	}
	for i := len(e.txq) - 1; i >= 0; i-- {
		if !e.txq[i].sacked {
			e.tlpProbes++
			e.p.stats.lossProbes.Add(1)
			e.sendTx(i)
			e.rtoTimer.set(e.rtoCur())
			e.armTLP()
			return
		}
	}
}
