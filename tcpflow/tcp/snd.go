package tcp

import (
	"time"

	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// canSend reports whether the state lets data and FINs go out.
func (e *endpoint) canSend() bool {
	switch e.state {
	case stateEstablished, stateCloseWait, stateFinWait1, stateClosing, stateLastAck:
		return true
	}
	return false
}

// output retransmits the segments deemed lost, then sends new data, as
// far as the send and congestion windows and Nagle's algorithm allow.
// e.mu is held.
func (e *endpoint) output() {
	if !e.canSend() {
		return
	}
	pipe := e.pipe()
	for {
		if i := e.firstLost(); i >= 0 {
			n := e.txq[i].size()
			if pipe > 0 && pipe+n > e.cwnd {
				return
			}
			e.sendTx(i)
			pipe += n
			e.rtoTimer.setIfStopped(e.rtoCur())
			continue
		}
		outstanding := int(e.sndUna.Size(e.sndNxt))
		usable := min(int(e.sndWnd)-outstanding, e.cwnd-pipe)
		off := int(e.sndBufStart.Size(e.sndNxt))
		remaining := e.sndBuf.Len() - off
		if remaining > 0 {
			n := min(remaining, e.mss)
			if usable < n {
				if usable <= 0 || outstanding > 0 {
					// Window-limited: wait for ACKs (sender silly window
					// avoidance), or probe a zero window.
					if e.sndWnd == 0 && outstanding == 0 && !e.persistTimer.armed() {
						e.startPersist()
					}
					return
				}
				n = usable
			} else if n < e.mss && outstanding > 0 && e.pushSeq.LessThan(e.sndNxt.Add(seqnum.Size(n))) && !e.finQueued {
				return // Nagle: a small segment waits for the ACKs
			}
			fin := e.finQueued && n == remaining
			e.sendNew(n, fin)
			pipe += n
			continue
		}
		if e.finQueued && e.sndNxt == e.finSeq() {
			e.sendNew(0, true)
		}
		return
	}
}

// sendNew sends n new bytes (and a FIN) from sndNxt and queues them for
// retransmission.
func (e *endpoint) sendNew(n int, fin bool) {
	size := seqnum.Size(n)
	if fin {
		size++
	}
	if e.sndUna == e.sndNxt {
		e.restartEpoch()
		e.stallAt = e.p.since(e.now()) // data waits for the peer from now
	}
	e.txq, e.txqBase = appendReuse(e.txq, e.txqBase, txSeg{start: e.sndNxt, end: e.sndNxt.Add(size), fin: fin})
	e.sb.bytes += int(size)
	e.sendTx(len(e.txq) - 1)
	e.sndNxt = e.sndNxt.Add(size)
	if e.sndNxt.GreaterThan(e.sndMax) {
		e.sndMax = e.sndNxt
	}
	e.rtoTimer.setIfStopped(e.rtoCur())
	if !e.tlpTimer.armed() {
		e.armTLP()
	}
}

// rtoCur is the retransmission timeout with its exponential backoff.
func (e *endpoint) rtoCur() time.Duration {
	return min(e.rto<<min(e.backoff, 20), e.p.o.RTOMax)
}

// transmit sends n bytes of the send buffer starting at seq, and a FIN
// after them if fin. It does not move sndNxt.
func (e *endpoint) transmit(seq seqnum.Value, n int, fin bool) {
	off := int(e.sndBufStart.Size(seq))
	data, wrapped := e.sndBuf.Peek(off, n)
	if len(wrapped) > 0 {
		// The segment wraps around the end of the ring: once per
		// buffer's worth of data, it is copied to be contiguous.
		bp := getRingBuf(n)
		defer putRingBuf(bp)
		copy((*bp)[copy(*bp, data):], wrapped)
		data = (*bp)[:n]
	}
	flags := header.TCPFlagACK
	if off+n == e.sndBuf.Len() && n > 0 {
		flags |= header.TCPFlagPSH
	}
	if fin {
		flags |= header.TCPFlagFIN
	}
	if seq.LessThan(e.sndMax) {
		e.p.stats.retrans.Add(1)
	}
	e.sendSegment(seq, flags, data)
}

// sendSegment sends one segment with ACK number, window and options.
func (e *endpoint) sendSegment(seq seqnum.Value, flags header.TCPFlags, data []byte) {
	var o header.TCPOptions
	if e.tsOK {
		o.HasTimestamps, o.TSVal, o.TSEcr = true, e.tsNow(), e.tsRecent
	}
	if e.sackOK && len(data) == 0 && (len(e.ooo) > 0 || e.dsack) {
		maxBlocks := header.TCPMaxSACKBlocks
		if e.tsOK {
			maxBlocks = 3
		}
		if e.dsack {
			// RFC 2883: the duplicate first, once.
			o.SACKBlocks[0] = header.SACKBlock{Start: uint32(e.dsackStart), End: uint32(e.dsackEnd)}
			o.NumSACKBlocks = 1
			e.dsack = false
		}
		e.sackBlocks(&o, maxBlocks)
	}
	var buf [header.TCPMaxOptionsSize]byte
	n, _ := o.Marshal(buf[:])
	f := header.TCPFields{
		SrcPort: e.id.local.Port(), DstPort: e.id.remote.Port(),
		SeqNum: uint32(seq), AckNum: uint32(e.rcvNxt), Flags: flags,
		WindowSize: e.windowField(false),
		Options:    buf[:n],
	}
	e.rcvAcked, e.acksHeld = e.rcvNxt, 0
	e.delackTimer.stop()
	e.p.writeFieldsBuf(e.id, &f, data, &e.hdrBuf)
}

// sendAck sends an acknowledgment of what we received.
func (e *endpoint) sendAck() { e.sendSegment(e.sndNxt, header.TCPFlagACK, nil) }

// tsNow is our timestamp clock: milliseconds.
func (e *endpoint) tsNow() uint32 { return uint32(e.now().UnixMilli()) }

// tsRTT is the round-trip time an echoed timestamp measures.
func (e *endpoint) tsRTT(ecr uint32) time.Duration {
	return time.Duration(int32(e.tsNow()-ecr)) * time.Millisecond
}

// processAck handles the acknowledgment, SACK blocks and window of s
// (RFC 9293 3.10.7.4, fifth step); it returns false to drop the segment.
func (e *endpoint) processAck(s *segment) bool {
	ack := s.ack
	if ack.GreaterThan(e.sndMax) {
		e.sendAck()
		return false
	}
	windowChanged := false
	if e.sndUna.LessThanEq(ack) && (e.sndWl1.LessThan(s.seq) || e.sndWl1 == s.seq && e.sndWl2.LessThanEq(ack)) {
		w := uint32(s.window) << e.sndShift
		windowChanged = w != e.sndWnd
		e.sndWnd, e.sndWl1, e.sndWl2 = w, s.seq, ack
		e.maxSndWnd = max(e.maxSndWnd, w)
		if w > 0 && e.persistTimer.armed() {
			// The window opened: the probes' backoff ends with it.
			e.persistTimer.stop()
			e.backoff = 0
		}
	}
	if e.sndUna.LessThanEq(ack) {
		e.probes = 0
	}
	now := e.now()
	e.rttCandOK = false
	sackedBefore := e.sb.sackedBytes
	newSACK := e.applySACK(s, now)
	advanced := ack.GreaterThan(e.sndUna)
	var acked seqnum.Size
	flight := int(e.sndUna.Size(e.sndMax)) // before this ACK
	if advanced {
		acked = e.sndUna.Size(ack)
		e.ackTxq(ack, now)
		n := min(int(e.sndBufStart.Size(ack)), e.sndBuf.Len())
		e.sndBuf.Discard(n)
		e.sndBufStart = e.sndBufStart.Add(seqnum.Size(n))
		e.sndUna = ack
		if e.sndNxt.LessThan(ack) {
			e.sndNxt = ack
		}
		if e.pushSeq.LessThan(ack) {
			e.pushSeq = ack
		}
		e.retries = 0
		e.backoff = 0
		e.dupAcks = 0
		e.stallAt = e.p.since(now)
	}
	if e.rttCandOK {
		// Only segments sent once give samples (Karn's algorithm).
		e.rttSample(e.rttCand)
	}
	if !advanced && ack == e.sndUna && len(s.data) == 0 && !s.has(header.TCPFlagFIN|header.TCPFlagSYN) && !windowChanged && e.sndUna != e.sndMax {
		e.dupAcks++
		// Three duplicate ACKs (RFC 5681) mark the first segment lost
		// until the path is seen to reorder; after that, with SACK,
		// RACK decides (as in detectLoss).
		if e.dupAcks == dupThresh && len(e.txq) > 0 && !e.inRecovery && !(e.sackOK && e.reordering) {
			e.markLost(&e.txq[0])
		}
	}
	if advanced && e.inRecovery && !e.sackOK && e.sndUna.LessThan(e.recover) &&
		len(e.txq) > 0 && e.txq[0].xmit < e.recXmit {
		// NewReno partial acknowledgment (RFC 6582): the next hole is
		// lost too.
		e.markLost(&e.txq[0])
		e.sendTx(0)
	}
	if advanced || newSACK || e.dupAcks >= dupThresh {
		if e.detectLoss(now) || e.firstLost() >= 0 && e.dupAcks == dupThresh {
			e.enterRecovery()
		}
	}
	if e.inRecovery && e.sackOK {
		// Delivered: the cumulative advance and the change in SACKed
		// bytes (those the advance covered leave the SACKed sum).
		e.prrUpdate(int(acked) + e.sb.sackedBytes - sackedBefore)
	}
	if advanced {
		e.onAck(acked, flight, now)
		e.tlpProbes = 0
		if e.sndUna == e.sndMax {
			e.rtoTimer.stop()
			e.rackTimer.stop()
			e.tlpTimer.stop()
		} else {
			e.rtoTimer.set(e.rtoCur())
			e.armTLP()
		}
		e.broadcast()
	}
	return true
}

// ackTxq removes the segments ack covers from the retransmission queue.
func (e *endpoint) ackTxq(ack seqnum.Value, now time.Time) {
	retransAcked := false
	i := 0
	for ; i < len(e.txq); i++ {
		s := &e.txq[i]
		if s.end.GreaterThan(ack) {
			if s.start.LessThan(ack) {
				// A partial acknowledgment.
				e.sb.forget(s, int(s.start.Size(ack)))
				s.start = ack
			}
			break
		}
		if !s.sacked {
			e.noteFack(s, false)
			e.markDelivered(s, now)
		}
		e.sb.forget(s, s.size())
		if s.retrans {
			e.sb.retrans--
			retransAcked = true
		}
	}
	if retransAcked {
		// Karn's algorithm for the whole ACK, as Linux applies it
		// (FLAG_RETRANS_DATA_ACKED): one that fills a hole with a
		// retransmission also acknowledges segments whose SACKs were
		// lost or crowded out, sent long before, and their time
		// measures the recovery, not the path.
		e.rttCandOK = false
	}
	e.txq = e.txq[i:]
	if len(e.txq) == 0 {
		// Keep a small array for the next segments; give a large one
		// back (an idle connection should not hold a window's worth).
		if cap(e.txqBase) > maxIdleTxq {
			e.txqBase = nil
		}
		e.txq = e.txqBase[:0]
	}
}

// rttSample updates SRTT, RTTVAR and RTO (RFC 6298 section 2).
func (e *endpoint) rttSample(r time.Duration) {
	if r <= 0 {
		r = time.Millisecond
	}
	if e.srtt == 0 {
		e.srtt, e.rttvar = r, r/2
	} else {
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.rto = min(max(e.srtt+max(4*e.rttvar, time.Millisecond), e.p.o.RTOMin), e.p.o.RTOMax)
}

// onRTO is the retransmission timeout (RFC 6298 section 5): every
// segment not SACKed is deemed lost and resent in order as slow start
// allows, and the timeout backs off until a new acknowledgment.
func (e *endpoint) onRTO() {
	o := &e.p.o
	switch e.state {
	case stateSynSent, stateSynRcvd:
		if e.sndUna != e.iss {
			break // SYN-RECEIVED of a simultaneous open with data in flight
		}
		e.retries++
		e.rttTiming = false
		if int(e.retries) > o.SYNRetries {
			if e.state == stateSynRcvd && e.listener != nil {
				e.closeLocked(nil)
				return
			}
			e.fail(errRetransmit)
			return
		}
		e.rto = min(2*e.rto, o.RTOMax)
		e.sendSYN()
		e.rtoTimer.set(e.rto)
		return
	case stateClosed, stateTimeWait:
		return
	}
	if e.sndUna == e.sndMax {
		return
	}
	if e.userTimedOut() {
		e.abortUserTimeout()
		return
	}
	e.retries++
	e.p.stats.timeouts.Add(1)
	if int(e.retries) > o.MaxRetransmits {
		e.sendReset()
		e.fail(errRetransmit)
		return
	}
	if e.backoff == 0 {
		e.reduceSsthresh()
	}
	e.cwnd = e.mss
	e.recover = e.sndMax
	e.recoverRTO = true
	e.inRecovery = false
	e.dupAcks = 0
	e.backoff++
	for i := range e.txq {
		e.markLost(&e.txq[i])
	}
	e.rackTimer.stop()
	e.tlpTimer.stop()
	e.output()
	e.rtoTimer.set(e.clampUserTimeout(e.rtoCur()))
}

// startPersist arms the zero-window probe timer: data waits, nothing
// is in flight, and the peer's window is closed. The first probe goes
// after the RTO (RFC 9293 section 3.8.6.1); the user timeout runs from
// now.
func (e *endpoint) startPersist() {
	e.stallAt = e.p.since(e.now())
	e.persistTimer.set(e.clampUserTimeout(e.rtoCur()))
}

// onPersist probes a zero window: a segment with an old sequence number
// and no data makes the peer answer with its window. The interval
// doubles from the RTO up to RTOMax (RFC 9293 section 3.8.6.1, RFC 1122
// section 4.2.2.17), sharing the RTO's backoff, whether the peer
// answers or not: answers only keep the connection from failing after
// MaxRetransmits unanswered probes. A peer that answers while keeping
// its window closed is given up on after the user timeout.
func (e *endpoint) onPersist() {
	if !e.canSend() || e.sndWnd > 0 {
		return
	}
	if e.userTimedOut() {
		e.abortUserTimeout()
		return
	}
	e.probes++
	if int(e.probes) > e.p.o.MaxRetransmits {
		e.sendReset()
		e.fail(errRetransmit)
		return
	}
	e.sendSegment(e.sndUna.Sub(1), header.TCPFlagACK, nil)
	e.backoff++
	e.persistTimer.set(e.clampUserTimeout(e.rtoCur()))
}

// userTimedOut reports whether data has waited for the peer for the
// user timeout (Options.UserTimeout).
func (e *endpoint) userTimedOut() bool {
	ut := e.p.o.UserTimeout
	return ut > 0 && e.p.since(e.now())-e.stallAt >= ut
}

// clampUserTimeout shortens a timer's delay d so that it fires when the
// user timeout ends, if that comes first.
func (e *endpoint) clampUserTimeout(d time.Duration) time.Duration {
	ut := e.p.o.UserTimeout
	if ut <= 0 {
		return d
	}
	return max(min(d, e.stallAt+ut-e.p.since(e.now())), 0)
}

// abortUserTimeout resets the connection at the end of its user
// timeout.
func (e *endpoint) abortUserTimeout() {
	e.p.stats.userTimeouts.Add(1)
	e.sendReset()
	e.fail(errUserTimeout)
}

// startKeepalive arms the keepalive timer of an established connection.
func (e *endpoint) startKeepalive() {
	if e.ka != nil {
		e.kaTimer.set(e.ka.After)
	}
}

// onKeepalive sends a probe once the connection has been idle for
// After, then every Interval; after Probes unanswered probes it resets
// the connection with a timeout (RFC 1122 section 4.2.3.6).
func (e *endpoint) onKeepalive() {
	if e.ka == nil {
		return
	}
	switch e.state {
	case stateEstablished, stateCloseWait, stateFinWait1, stateFinWait2:
	default:
		return
	}
	now := e.now()
	if e.kaProbes == 0 {
		if idle := now.Sub(e.lastRecv); idle < e.ka.After {
			e.kaTimer.set(e.ka.After - idle)
			return
		}
		if e.sndUna != e.sndMax {
			// Data in flight: the retransmission timer watches the peer.
			e.kaTimer.set(e.ka.After)
			return
		}
	}
	if e.kaProbes >= e.ka.Probes {
		e.sendReset()
		e.fail(errKeepalive)
		return
	}
	e.kaProbes++
	e.sendSegment(e.sndUna.Sub(1), header.TCPFlagACK, nil)
	e.kaTimer.set(e.ka.Interval)
}
