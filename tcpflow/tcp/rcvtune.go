package tcp

import (
	"time"

	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// Receive window moderation, as Linux's receive buffer autotuning
// (tcp_rcv_space_adjust, "dynamic right-sizing"): the window a
// connection offers starts at rcvInitialWindow and, once a round trip,
// grows to a few times what the application read during the last one,
// up to RecvBuffer. A sender in slow start then finds the window a little
// ahead of it instead of a whole buffer it may fill with one burst,
// which on a path that reorders or drops costs retransmissions to the
// holes the burst opens; the window keeps ahead of any sender that the
// path, not the window, limits (it at least doubles each round trip in
// which the sender doubled). Options.FixedRecvWindow turns it off.

// rcvInitialWindow is the window before any data arrived: Linux's (half
// of its default 128 KiB receive buffer).
const rcvInitialWindow = 64 << 10

// rcvWindowCap is the receive buffer the window may offer now.
func (e *endpoint) rcvWindowCap() int {
	if e.p.o.FixedRecvWindow {
		return e.p.o.RecvBuffer
	}
	if e.rcvSpace == 0 {
		return min(rcvInitialWindow, e.p.o.RecvBuffer)
	}
	return int(e.rcvSpace)
}

// rcvStart is called when the first data arrives: the window's first
// round begins, and the first segments are acknowledged one by one
// (Linux's quick-ACK mode at a connection's start: a sender in its first
// round trips, or one waiting for the answer to its first request,
// gets its ACKs without the delayed-ACK timer).
func (e *endpoint) rcvStart() {
	e.rcvSpace = int32(min(rcvInitialWindow, e.p.o.RecvBuffer))
	e.rcvSpacePrev = int32(min(10*e.mss, int(e.rcvSpace)))
	e.rcvSpaceSeq, e.rcvSpaceAt = e.readSeq(), e.p.since(e.now())
	e.quickAcks = quickAcksAfterLoss
}

// readSeq is the sequence number up to which the application has read.
func (e *endpoint) readSeq() seqnum.Value { return e.rcvNxt - seqnum.Value(e.rcvBuf.Len()) }

// rcvSpaceAdjust measures what the application read in the round trip
// that ended, and grows the window from it, as Linux does: to twice that
// plus 16 segments, and twice as much again for the growth from the
// round before (a sender in slow start doubles); an application that
// reads slowly keeps a small window. It is called when in-order data
// arrived; tsecr is the segment's timestamp echo (0 if
// none), which gives an RTT when the handshake gave none or a short
// one (the receiver measures no RTT of its own).
func (e *endpoint) rcvSpaceAdjust(tsecr uint32) {
	if e.p.o.FixedRecvWindow || int(e.rcvSpace) >= e.p.o.RecvBuffer {
		return
	}
	now := e.p.since(e.now())
	rtt := e.srtt
	if e.tsOK && tsecr != 0 {
		if d := time.Duration(e.tsNow()-tsecr) * time.Millisecond; d > rtt && d < time.Minute {
			rtt = d
		}
	}
	if rtt == 0 || now-e.rcvSpaceAt < rtt {
		return
	}
	read := e.readSeq()
	copied := int(e.rcvSpaceSeq.Size(read))
	prev := int(e.rcvSpacePrev)
	e.rcvSpaceSeq, e.rcvSpaceAt = read, now
	if copied <= prev {
		return
	}
	win := 2*copied + 16*e.mss
	win += 2 * win * (copied - prev) / max(prev, 1)
	e.rcvSpace = max(e.rcvSpace, int32(min(win, e.p.o.RecvBuffer)))
	e.rcvSpacePrev = int32(min(copied, 1<<30))
}
