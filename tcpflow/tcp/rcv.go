package tcp

import (
	"bytes"
	"slices"
	"sort"

	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// rcvFree is the room left in the receive buffer, and in the memory
// the buffer budget lets it take.
func (e *endpoint) rcvFree() int {
	if e.userClosed {
		return e.p.o.RecvBuffer
	}
	free := max(e.rcvWindowCap()-e.rcvBuf.Len(), 0)
	// With four receive buffers' worth below the growth limit (the
	// common case), the budget holds a ring of the whole buffer even
	// if memory grew past the connection's credit (by at most a ring
	// of twice the buffer, from the out-of-order queue).
	if b := &e.p.budget; b.limit != 0 && b.used.Load() > b.growth-4*int64(e.p.o.RecvBuffer) {
		free = min(free, e.rcvRoom())
	}
	return free
}

// windowField returns the window field to send and records the right
// edge it advertises, which never moves left (RFC 9293 3.8.6.2.2).
func (e *endpoint) windowField(syn bool) uint16 {
	edge := e.rcvNxt.Add(seqnum.Size(e.rcvFree()))
	if edge.LessThan(e.rcvAdvEdge) {
		edge = e.rcvAdvEdge
	}
	w := uint32(e.rcvNxt.Size(edge))
	if syn {
		f := min(w, 0xffff)
		e.rcvAdvEdge = e.rcvNxt.Add(seqnum.Size(f))
		return uint16(f)
	}
	f := min(w>>e.rcvShift, 0xffff)
	if adv := e.rcvNxt.Add(seqnum.Size(f << e.rcvShift)); adv.GreaterThan(e.rcvAdvEdge) {
		e.rcvAdvEdge = adv
	}
	return uint16(f)
}

// rcvWnd is the window last advertised, from rcvNxt.
func (e *endpoint) rcvWnd() seqnum.Size {
	if e.rcvAdvEdge.LessThan(e.rcvNxt) {
		return 0
	}
	return e.rcvNxt.Size(e.rcvAdvEdge)
}

// acceptable is the sequence number test of RFC 9293 3.10.7.4.
func (e *endpoint) acceptable(s *segment) bool {
	wnd := e.rcvWnd()
	l := s.logicalLen()
	if l == 0 {
		if wnd == 0 {
			return s.seq == e.rcvNxt
		}
		return s.seq.InWindow(e.rcvNxt, wnd)
	}
	if wnd == 0 {
		return false
	}
	return s.seq.InWindow(e.rcvNxt, wnd) || s.seq.Add(l-1).InWindow(e.rcvNxt, wnd)
}

// processData queues the data of an acceptable segment (in order or in
// the out-of-order queue), handles its FIN and acknowledges it.
func (e *endpoint) processData(s *segment) {
	seq, data, fin := s.seq, s.data, s.has(header.TCPFlagFIN)
	nxt := e.rcvNxt
	if e.rcvSpace == 0 && len(data) > 0 {
		e.rcvStart()
	}
	// In-order data with nothing queued out of order may wait for a
	// delayed ACK; anything else is acknowledged at once (RFC 5681 4.2).
	quick := seq != e.rcvNxt || fin || len(e.ooo) > 0 || e.quickAcks > 0
	if e.quickAcks > 0 && seq == e.rcvNxt && len(data) > 0 {
		e.quickAcks--
	}
	if seq.LessThan(e.rcvNxt) {
		skip := int(seq.Size(e.rcvNxt))
		if skip > len(data) {
			e.sendAck()
			return
		}
		if skip > 0 {
			e.noteDuplicate(seq, e.rcvNxt)
		}
		data, seq = data[skip:], e.rcvNxt
	}
	atEdge := false
	if end := seq.Add(seqnum.Size(len(data))); end.GreaterThan(e.rcvAdvEdge) {
		atEdge = true
		keep := 0
		if seq.LessThan(e.rcvAdvEdge) {
			keep = int(seq.Size(e.rcvAdvEdge))
		}
		data, fin = data[:keep], false
		quick = true
	}
	if seq == e.rcvNxt {
		lend := false
		if len(data) > 0 {
			var n int
			if n, lend = e.rcvAdmit(s, data); n < len(data) {
				// The buffer budget holds only the first n bytes.
				e.p.stats.budgetDrops.Add(1)
				data, fin, quick = data[:n], false, true
			}
		}
		if len(data) > 0 {
			e.receiveSeg(s, data, lend)
			e.rcvNxt = e.rcvNxt.Add(seqnum.Size(len(data)))
			e.rcvSpaceAdjust(s.opts.TSEcr)
		}
		if fin {
			e.processFin()
		} else {
			e.drainOOO()
		}
		e.broadcast()
	} else if !e.oooAdmit(seq, data) {
		e.p.stats.budgetDrops.Add(1)
	} else if len(data) > 0 || fin {
		e.insertOOO(seq, data, fin)
		newBlock := false // the arrival neither extends nor joins a block
		if len(data) > 0 {
			start, end := e.noteRecentOOO(seq)
			newBlock = start == seq && end == seq.Add(seqnum.Size(len(data)))
		}
		e.quickAcks = quickAcksAfterLoss
		if !fin && !atEdge && !e.dsack && len(data) > 0 && e.holdAck(newBlock) {
			return
		}
	}
	if e.rcvNxt != nxt {
		e.oooAcks = 0
	}
	e.ackReceived(quick)
}

// noteDuplicate records that [start, end) arrived again, for a D-SACK
// block in the next ACK (RFC 2883): the first duplicate since the last
// ACK is the one reported.
func (e *endpoint) noteDuplicate(start, end seqnum.Value) {
	if e.sackOK && !e.dsack {
		e.dsack, e.dsackStart, e.dsackEnd = true, start, end
	}
}

// quickAcksAfterLoss is the number of in-order segments acknowledged
// one by one, without delay, after out-of-order data showed a loss. A
// sender recovering from loss has a small window; with one ACK for two
// segments, the loss of that ACK leaves it nothing to clock on but a
// probe timer, while with one ACK per segment the next ACK covers a
// lost one. Linux's quick-ACK mode answers the same problem.
const quickAcksAfterLoss = 16

// ackReceived acknowledges received data: at once if quick, if delayed
// ACKs are off, or once two full-sized segments are unacknowledged;
// otherwise within the delayed ACK timeout, unless data we send first
// carries the ACK.
func (e *endpoint) ackReceived(quick bool) {
	d := e.p.o.DelayedACK
	if quick || d < 0 || int(e.rcvAcked.Size(e.rcvNxt)) >= 2*e.mss || len(e.ooo) > 0 {
		e.sendAck()
		return
	}
	e.delackTimer.setIfStopped(d)
}

// onDelayedAck sends the ACK that processData delayed or held.
func (e *endpoint) onDelayedAck() {
	if (e.rcvAcked != e.rcvNxt || e.acksHeld > 0) && e.state != stateClosed {
		e.sendAck()
	}
}

// receive hands in-order data to the user: straight into the buffer
// of a waiting Read while nothing is queued, into the queue otherwise.
func (e *endpoint) receive(data []byte) {
	if e.userClosed {
		return
	}
	if e.rdBuf != nil && e.rcvBuf.Len() == 0 {
		c := copy(e.rdBuf[e.rdN:], data)
		e.rdN += c
		data = data[c:]
	}
	e.rcvBuf.write(data)
}

// lendable reports whether data of segment s, in order, may be queued
// in the buffer the link lent rather than copied: when it fills at
// least half of that buffer (so that the buffers queued pin at most
// twice the data) and no Read waits to take it.
func (e *endpoint) lendable(s *segment, data []byte) bool {
	return s.buf != nil && !s.kept && !e.userClosed && 2*len(data) >= cap(*s.buf) &&
		(e.rdBuf == nil || e.rcvBuf.Len() > 0)
}

// receiveSeg is receive for data of segment s: queued in place in the
// buffer the link lent if lend (see lendable), else copied.
func (e *endpoint) receiveSeg(s *segment, data []byte, lend bool) {
	if !lend {
		e.receive(data)
		return
	}
	e.rcvBuf.lend(data, s.buf)
	s.kept = true
}

// processFin consumes the peer's FIN.
func (e *endpoint) processFin() {
	if e.finRcvd {
		return
	}
	e.rcvNxt = e.rcvNxt.Add(1)
	e.finRcvd = true
	e.ooo = nil
	switch e.state {
	case stateEstablished, stateSynRcvd:
		e.state = stateCloseWait
	case stateFinWait1:
		if e.finAcked() {
			e.enterTimeWait()
		} else {
			e.state = stateClosing
		}
	case stateFinWait2:
		e.enterTimeWait()
	}
	e.broadcast()
}

// insertOOO adds a segment beyond rcvNxt to the out-of-order queue,
// which stays sorted and without overlaps: the parts of data no queued
// segment holds yet are copied in, in place (a binary search finds
// where; nothing is rebuilt, so a large window with many holes costs
// no more per segment than a small one).
func (e *endpoint) insertOOO(seq seqnum.Value, data []byte, fin bool) {
	if fin {
		e.oooFin, e.oooFinSeq = true, seq.Add(seqnum.Size(len(data)))
	}
	if len(data) == 0 {
		return
	}
	end := seq.Add(seqnum.Size(len(data)))
	// The first queued segment that ends after seq.
	i := sort.Search(len(e.ooo), func(i int) bool { return e.ooo[i].end().GreaterThan(seq) })
	added := false
	for seq.LessThan(end) {
		if i == len(e.ooo) || !e.ooo[i].seq.LessThan(end) {
			e.ooo = slices.Insert(e.ooo, i, oooSeg{seq: seq, data: bytes.Clone(data)})
			return
		}
		x := &e.ooo[i]
		if seq.LessThan(x.seq) {
			// A gap before x.
			n := int(seq.Size(x.seq))
			e.ooo = slices.Insert(e.ooo, i, oooSeg{seq: seq, data: bytes.Clone(data[:n])})
			added = true
			i++
			data, seq = data[n:], seq.Add(seqnum.Size(n))
			x = &e.ooo[i]
		}
		// x holds seq onwards: skip what it covers.
		dupEnd := x.end()
		if end.LessThan(dupEnd) {
			dupEnd = end
		}
		e.noteDuplicate(seq, dupEnd)
		if !x.end().LessThan(end) {
			break
		}
		cut := int(seq.Size(x.end()))
		data, seq = data[cut:], x.end()
		i++
	}
	if !added {
		e.p.stats.dupSegs.Add(1) // every byte was queued already
	}
}

// drainOOO moves the queued segments that rcvNxt reached to the receive
// buffer, and consumes a queued FIN.
func (e *endpoint) drainOOO() {
	for len(e.ooo) > 0 && e.ooo[0].seq.LessThanEq(e.rcvNxt) {
		x := e.ooo[0]
		e.ooo = e.ooo[1:]
		if x.end().GreaterThan(e.rcvNxt) {
			d := x.data[x.seq.Size(e.rcvNxt):]
			e.receive(d)
			e.rcvNxt = x.end()
		}
	}
	if len(e.ooo) == 0 {
		e.ooo = nil
	}
	if e.oooFin && e.rcvNxt == e.oooFinSeq {
		e.oooFin = false
		e.processFin()
	}
}

// consumed is told that the user read n bytes; when the window has
// opened enough, tells the peer (receiver silly window avoidance).
func (e *endpoint) consumed(n int) {
	switch e.state {
	case stateEstablished, stateFinWait1, stateFinWait2:
	default:
		return
	}
	if e.finRcvd {
		return
	}
	adv := int(e.rcvWnd())
	newWnd := e.rcvFree()
	if newWnd-adv >= e.rcvWindowCap()/2 || (adv < 2*e.mss && newWnd-adv >= e.mss) {
		e.sendAck()
	}
}
