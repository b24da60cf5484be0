package tcp

import (
	"time"

	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// pawsIdle is the silence after which PAWS trusts any timestamp again
// (RFC 7323 section 5.5).
const pawsIdle = 24 * 24 * time.Hour

// pawsWindow is how many ticks of the peer's timestamp clock a segment
// may be older than the last one recorded and still pass PAWS (Linux's
// TCP_PAWS_WINDOW).
const pawsWindow = 1

// disorderedAck reports whether s, age ticks older than the last
// timestamp recorded, is a duplicate ACK that later segments overtook:
// no data, at rcvNxt, acknowledging sndUna, not updating the window,
// and younger than an RTO (taking the peer's ticks for milliseconds).
// Its SACK blocks are news; an old duplicate from before the sequence
// numbers wrapped would not match sndUna and rcvNxt (Linux's
// tcp_disordered_ack).
func (e *endpoint) disorderedAck(s *segment, age int32) bool {
	if len(s.data) != 0 || s.flags&(header.TCPFlagSYN|header.TCPFlagFIN|header.TCPFlagACK) != header.TCPFlagACK {
		return false
	}
	if s.seq != e.rcvNxt || s.ack != e.sndUna {
		return false
	}
	// Not a window update: a wider or a zero window (Linux's
	// tcp_may_update_window) must come in order.
	w := uint32(s.window) << e.sndShift
	if s.seq.GreaterThan(e.sndWl1) || s.seq == e.sndWl1 && (w > e.sndWnd || w == 0) {
		return false
	}
	return time.Duration(age)*time.Millisecond <= e.rto
}

// minMSS is the MSS assumed when the peer announces none (RFC 9293
// section 3.7.1).
const minMSS = 536

// setISS starts the send sequence space at iss, with our SYN sent and
// not yet acknowledged. e.mu is held.
func (e *endpoint) setISS(iss seqnum.Value) {
	e.iss = iss
	e.sndUna, e.sndNxt, e.sndMax = iss, iss.Add(1), iss.Add(1)
	e.sndBufStart, e.pushSeq, e.recover, e.fack, e.dsackRound = e.sndNxt, e.sndNxt, iss, iss, iss
}

// activeOpen sends the SYN. e.mu is held.
func (e *endpoint) activeOpen() {
	e.setISS(e.p.keys.isn(e.id, e.now()))
	e.state = stateSynSent
	e.rttTiming, e.rttStart = true, e.p.since(e.now())
	e.sendSYN()
	e.rtoTimer.set(e.rto)
}

// passiveOpen answers a SYN with a SYN-ACK. e.mu is held.
func (e *endpoint) passiveOpen(s *segment) {
	e.setISS(e.p.keys.isn(e.id, e.now()))
	e.synOptions(s)
	e.sndWnd = uint32(s.window) // never scaled in a SYN
	e.maxSndWnd = e.sndWnd
	e.sndWl1, e.sndWl2 = s.seq, e.iss
	e.state = stateSynRcvd
	e.rttTiming, e.rttStart = true, e.p.since(e.now())
	e.sendSYN()
	e.rtoTimer.set(e.rto)
}

// synOptions records the peer's SYN: its sequence number and options.
func (e *endpoint) synOptions(s *segment) {
	e.irs = s.seq
	e.rcvNxt = s.seq.Add(1)
	e.rcvAdvEdge, e.rcvAcked = e.rcvNxt, e.rcvNxt
	mss := minMSS
	if s.opts.HasMSS && s.opts.MSS > 0 {
		mss = int(s.opts.MSS)
	}
	e.mss = max(min(e.p.o.MSS, mss), 64)
	e.wsOK = s.opts.HasWindowScale
	if e.wsOK {
		e.sndShift = min(s.opts.WindowScale, 14)
	} else {
		e.sndShift, e.rcvShift = 0, 0
	}
	e.sackOK = s.opts.SACKPermitted
	e.tsOK = s.opts.HasTimestamps
	if e.tsOK {
		e.tsRecent = s.opts.TSVal
		e.mss -= 12 // every segment carries the timestamps option
	}
	e.cwnd = 10 * e.mss // RFC 6928
	e.ssthresh = initialSsthresh
}

// sendSYN sends (or resends) the SYN or SYN-ACK with our options.
func (e *endpoint) sendSYN() {
	var o header.TCPOptions
	o.HasMSS, o.MSS = true, uint16(min(e.p.o.MSS, 0xffff))
	flags := header.TCPFlagSYN
	if e.state == stateSynSent {
		o.HasWindowScale, o.WindowScale = true, e.rcvShift
		o.SACKPermitted = true
		o.HasTimestamps, o.TSVal = true, e.tsNow()
	} else {
		flags |= header.TCPFlagACK
		o.HasWindowScale, o.WindowScale = e.wsOK, e.rcvShift
		o.SACKPermitted = e.sackOK
		o.HasTimestamps, o.TSVal, o.TSEcr = e.tsOK, e.tsNow(), e.tsRecent
	}
	var buf [header.TCPMaxOptionsSize]byte
	n, _ := o.Marshal(buf[:])
	f := header.TCPFields{
		SrcPort: e.id.local.Port(), DstPort: e.id.remote.Port(),
		SeqNum: uint32(e.iss), Flags: flags,
		WindowSize: e.windowField(true),
		Options:    buf[:n],
	}
	if flags&header.TCPFlagACK != 0 {
		f.AckNum = uint32(e.rcvNxt)
	}
	e.p.writeFieldsBuf(e.id, &f, nil, &e.hdrBuf)
}

// handleSegment processes a segment for this connection.
func (e *endpoint) handleSegment(s *segment) {
	e.mu.Lock()
	t := e.tick()
	est := e.handleSegmentLocked(s)
	e.settle()
	e.endTick(t)
	e.mu.Unlock()
	if est {
		e.p.established(e)
	}
}

// handleSegmentLocked follows RFC 9293 section 3.10.7. It reports
// whether a passive open just completed. e.mu is held.
func (e *endpoint) handleSegmentLocked(s *segment) (established bool) {
	switch e.state {
	case stateClosed:
		return false
	case stateSynSent:
		e.synSentSegment(s)
		return false
	}
	now := e.now()
	idle := now.Sub(e.lastRecv)
	e.lastRecv = now
	if e.kaProbes > 0 {
		e.kaProbes = 0
		e.kaTimer.set(e.ka.After)
	}
	// A retransmitted SYN while we wait for the handshake's ACK.
	if e.state == stateSynRcvd && s.flags&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST) == header.TCPFlagSYN {
		if s.seq == e.irs {
			e.sendSYN()
		}
		return false
	}
	if e.tsOK && s.opts.HasTimestamps && !s.has(header.TCPFlagRST) {
		// PAWS (RFC 7323 section 5.3): a timestamp older than the
		// last one recorded marks an old duplicate, perhaps from
		// before the sequence numbers wrapped; it is dropped with an
		// ACK. After 24 days of silence the peer's clock may have
		// wrapped, and its timestamp is taken as it is. As in Linux,
		// a segment one tick old passes (TCP_PAWS_WINDOW: the path
		// reordered segments sent within a tick of the peer's clock),
		// and so does a reordered duplicate ACK (tcp_disordered_ack):
		// dropping them lost their SACK and D-SACK blocks and sent an
		// ACK for each.
		age := int32(e.tsRecent - s.opts.TSVal)
		if age > pawsWindow && idle < pawsIdle && !e.disorderedAck(s, age) {
			e.p.stats.paws.Add(1)
			e.sendAck()
			return false
		}
		// Remember the peer's timestamp for our echoes (RFC 7323
		// section 4.3): of the segment starting at the ACK we last
		// sent, so that a delayed ACK's echo measures the delay too;
		// never an older one.
		if age <= 0 && s.seq.LessThanEq(e.rcvAcked) {
			e.tsRecent = s.opts.TSVal
		}
	}
	// First: the sequence number.
	if !e.acceptable(s) {
		if s.has(header.TCPFlagRST) {
			return false
		}
		if end := s.seq.Add(seqnum.Size(len(s.data))); len(s.data) > 0 && end.LessThanEq(e.rcvNxt) {
			e.p.stats.dupSegs.Add(1) // wholly received before
			e.noteDuplicate(s.seq, end)
		}
		if s.has(header.TCPFlagACK) && !s.has(header.TCPFlagSYN) && e.state != stateSynRcvd {
			// RFC 9293 asks to accept valid ACKs even when the data
			// is outside a (zero) window.
			if !e.processAck(s) {
				return false
			}
			if e.afterAck() {
				return false
			}
		}
		e.sendAck()
		e.output()
		return false
	}
	// Second: RST (RFC 5961 section 3: exact match or a challenge ACK).
	if s.has(header.TCPFlagRST) {
		if s.seq != e.rcvNxt {
			e.sendAck()
			return false
		}
		switch e.state {
		case stateSynRcvd:
			if e.listener != nil {
				e.closeLocked(nil)
				return false
			}
			e.fail(errConnReset)
		case stateTimeWait, stateClosing, stateLastAck:
			e.closeLocked(nil)
		default:
			e.fail(errConnReset)
		}
		return false
	}
	// Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961
	// section 4).
	if s.has(header.TCPFlagSYN) {
		e.sendAck()
		return false
	}
	// Fifth: the ACK.
	if !s.has(header.TCPFlagACK) {
		return false
	}
	if e.state == stateSynRcvd {
		if !s.ack.InRange(e.sndUna.Add(1), e.sndMax.Add(1)) {
			e.sendRstFor(s)
			return false
		}
		e.state = stateEstablished
		e.sndWnd = uint32(s.window) << e.sndShift
		e.maxSndWnd = max(e.maxSndWnd, e.sndWnd)
		e.sndWl1, e.sndWl2 = s.seq, s.ack
		if e.retries == 0 && !e.tsOK {
			// The SYN-ACK was not retransmitted: a valid RTT sample.
			e.rttSample(e.synRTT(now))
		}
		e.retries = 0
		e.rtoTimer.stop()
		e.startKeepalive()
		established = e.listener != nil
		if e.finQueued {
			e.state = stateFinWait1
		}
		e.broadcast()
	}
	if !e.processAck(s) {
		return established
	}
	if e.afterAck() {
		return established
	}
	// Seventh: the data and the FIN.
	if len(s.data) > 0 || s.has(header.TCPFlagFIN) {
		switch e.state {
		case stateEstablished, stateFinWait1, stateFinWait2:
			e.processData(s)
		case stateTimeWait:
			// A retransmitted FIN: acknowledge it and restart 2MSL.
			e.closeTimer.set(e.p.o.TimeWait)
			e.sendAck()
		default:
			e.sendAck()
		}
	}
	e.output()
	return established
}

// synRTT returns the time since our SYN (or SYN-ACK) was sent, if
// known, else zero.
func (e *endpoint) synRTT(now time.Time) time.Duration {
	if e.rttTiming {
		e.rttTiming = false
		return e.p.since(now) - e.rttStart
	}
	return 0
}

// afterAck applies the state changes an acknowledged FIN causes; it
// reports whether the connection is gone.
func (e *endpoint) afterAck() bool {
	if !e.finAcked() {
		return false
	}
	switch e.state {
	case stateFinWait1:
		e.state = stateFinWait2
		if e.userClosed {
			e.closeTimer.set(e.p.o.FinTimeout)
		}
		e.broadcast()
	case stateClosing:
		e.enterTimeWait()
	case stateLastAck:
		e.closeLocked(nil)
		return true
	}
	return false
}

// synSentSegment handles a segment in SYN-SENT (RFC 9293 3.10.7.3).
func (e *endpoint) synSentSegment(s *segment) {
	if s.has(header.TCPFlagACK) && (s.ack.LessThanEq(e.iss) || s.ack.GreaterThan(e.sndMax)) {
		if !s.has(header.TCPFlagRST) {
			e.sendRstFor(s)
		}
		return
	}
	if s.has(header.TCPFlagRST) {
		if s.has(header.TCPFlagACK) {
			e.fail(errConnReset)
		}
		return
	}
	if !s.has(header.TCPFlagSYN) {
		return
	}
	now := e.now()
	e.lastRecv = now
	e.synOptions(s)
	e.sndWl1 = s.seq
	if !s.has(header.TCPFlagACK) {
		// Simultaneous open.
		e.state = stateSynRcvd
		e.sndWnd = uint32(s.window)
		e.sendSYN()
		return
	}
	e.sndUna = s.ack
	e.sndWnd = uint32(s.window) // not scaled in a SYN
	e.maxSndWnd = e.sndWnd
	e.sndWl2 = s.ack
	if e.tsOK && s.opts.TSEcr != 0 {
		e.rttSample(e.tsRTT(s.opts.TSEcr))
	} else if e.retries == 0 {
		e.rttSample(e.synRTT(now))
	}
	e.retries = 0
	e.rtoTimer.stop()
	e.state = stateEstablished
	e.startKeepalive()
	e.sendAck()
	e.broadcast()
}

// sendRstFor answers an unacceptable ACK with a reset (seq = its ack).
func (e *endpoint) sendRstFor(s *segment) {
	f := header.TCPFields{
		SrcPort: e.id.local.Port(), DstPort: e.id.remote.Port(),
		SeqNum: uint32(s.ack), Flags: header.TCPFlagRST,
	}
	e.p.stats.rstOut.Add(1)
	e.p.writeFieldsBuf(e.id, &f, nil, &e.hdrBuf)
}

// sendReset resets the connection towards the peer.
func (e *endpoint) sendReset() {
	f := header.TCPFields{
		SrcPort: e.id.local.Port(), DstPort: e.id.remote.Port(),
		SeqNum: uint32(e.sndNxt), AckNum: uint32(e.rcvNxt),
		Flags: header.TCPFlagRST | header.TCPFlagACK,
	}
	e.p.stats.rstOut.Add(1)
	e.p.writeFieldsBuf(e.id, &f, nil, &e.hdrBuf)
}

// enterTimeWait moves to TIME-WAIT for 2MSL.
func (e *endpoint) enterTimeWait() {
	e.state = stateTimeWait
	e.teardown()
	e.closeTimer.set(e.p.o.TimeWait)
	e.broadcast()
}

// onCloseTimer ends TIME-WAIT, or an orphaned FIN-WAIT-2.
func (e *endpoint) onCloseTimer() {
	switch e.state {
	case stateTimeWait, stateFinWait2:
		e.closeLocked(nil)
	}
}

// finSeq is the sequence number of our FIN (once queued).
func (e *endpoint) finSeq() seqnum.Value { return e.sndBufEnd() }

// sndBufEnd is the sequence number after the last byte queued.
func (e *endpoint) sndBufEnd() seqnum.Value { return e.sndBufStart.Add(seqnum.Size(e.sndBuf.Len())) }

// finAcked reports whether our FIN has been acknowledged.
func (e *endpoint) finAcked() bool {
	return e.finQueued && e.sndBuf.Len() == 0 && e.sndUna == e.finSeq().Add(1)
}
