package tcp

import "time"

// SACK compression, as Linux's receiver does it (__tcp_ack_snd_check,
// tcp_comp_sack_*): while data is queued out of order, the first
// sackCompressAfter ACKs at one rcvNxt go at once, as RFC 5681 section
// 4.2 asks for duplicate ACKs; the ACKs of the next out-of-order
// arrivals are held for a twentieth of the RTT (at most sackHoldMax)
// and go as one, carrying the latest SACK blocks, when the hold ends,
// when sackCompressMax arrivals are held, when an arrival opens a new
// block (so that no block drops out of the three an ACK carries before
// one has reported it), or with any segment we send. A hole filled, a
// duplicate (D-SACK), a FIN or data at the window's edge are
// acknowledged at once as before. A sender in recovery gets the same
// information in fewer ACKs: on a path that reorders, fewer chances to
// declare a segment lost in the moment before the ACK of its late
// original arrives.
//
// The hold is a few hundred microseconds at most, shorter than the Go
// runtime's timers keep (a 100 µs time.AfterFunc fires about a
// millisecond late in an idle process: clock's BenchmarkRealTimerLate),
// so on the real clock the delayed-ACK timer runs on a clock.Fine of the
// protocol's (Protocol.ackClock).

const (
	// sackCompressAfter is the number of ACKs at one rcvNxt sent at
	// once before compression starts (Linux's TCP_FASTRETRANS_THRESH).
	sackCompressAfter = 3
	// sackCompressMax is the most arrivals one ACK is held for
	// (net.ipv4.tcp_comp_sack_nr).
	sackCompressMax = 44
	// sackHoldMax bounds the hold (net.ipv4.tcp_comp_sack_delay_ns).
	sackHoldMax = time.Millisecond
)

// holdAck decides whether the ACK of an out-of-order arrival, which
// opened a new SACK block if newBlock, is held; it arms the hold for
// the first. e.mu is held.
func (e *endpoint) holdAck(newBlock bool) bool {
	if !e.sackOK || e.p.o.DelayedACK < 0 || e.srtt <= 0 || len(e.ooo) == 0 {
		return false
	}
	if e.oooAcks < sackCompressAfter {
		e.oooAcks++
		return false
	}
	if e.acksHeld > 0 && newBlock || int(e.acksHeld) >= sackCompressMax {
		return false
	}
	e.acksHeld++
	if e.acksHeld == 1 {
		e.delackTimer.set(min(e.srtt/20, sackHoldMax))
	}
	return true
}
