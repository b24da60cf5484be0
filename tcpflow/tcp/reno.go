package tcp

import "github.com/conduit-go/conduit/tcpflow/internal/seqnum"

// maxCwnd caps the congestion window.
const maxCwnd = 1 << 30

// onAck grows the congestion window for acked new bytes (RFC 5681) and
// handles partial and full acknowledgments during NewReno recovery
// (RFC 6582).
func (e *endpoint) onAck(acked seqnum.Size) {
	if e.inRecovery {
		if e.sndUna.GreaterThanEq(e.recover) {
			// Full acknowledgment: deflate the window.
			e.inRecovery = false
			e.dupAcks = 0
			flight := int(e.sndUna.Size(e.sndMax))
			e.cwnd = max(min(e.ssthresh, flight+e.mss), e.mss)
			return
		}
		// Partial acknowledgment: the next hole is lost too.
		e.retransmitFirst()
		e.cwnd = max(e.cwnd-int(acked), 0)
		if int(acked) >= e.mss {
			e.cwnd += e.mss
		}
		e.cwnd = max(e.cwnd, e.mss)
		return
	}
	e.dupAcks = 0
	if e.cwnd < e.ssthresh {
		e.cwnd += min(int(acked), e.mss) // slow start
	} else {
		e.cwnd += max(1, e.mss*e.mss/e.cwnd) // congestion avoidance
	}
	e.cwnd = min(e.cwnd, maxCwnd)
}

// onDupAck counts duplicate acknowledgments: the third starts fast
// retransmit and NewReno recovery; later ones inflate the window.
func (e *endpoint) onDupAck() {
	e.dupAcks++
	if e.inRecovery {
		e.cwnd = min(e.cwnd+e.mss, maxCwnd)
		return
	}
	if e.dupAcks != 3 {
		return
	}
	if !e.sndUna.GreaterThan(e.recover) {
		// RFC 6582 section 3.2: no new recovery for losses of a
		// window already recovered from.
		return
	}
	flight := int(e.sndUna.Size(e.sndMax))
	e.ssthresh = max(flight/2, 2*e.mss)
	e.recover = e.sndMax
	e.inRecovery = true
	e.p.stats.fastRetrans.Add(1)
	e.retransmitFirst()
	e.cwnd = e.ssthresh + 3*e.mss
}
