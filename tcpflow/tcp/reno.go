package tcp

import "github.com/conduit-go/conduit/tcpflow/internal/seqnum"

// maxCwnd caps the congestion window.
const maxCwnd = 1 << 30

// onAck grows the congestion window for acked new bytes (RFC 5681)
// outside loss recovery, and ends recovery once the data outstanding
// when it began is acknowledged (RFC 6675 section 5, RFC 6582).
func (e *endpoint) onAck(acked seqnum.Size) {
	if e.inRecovery {
		if e.sndUna.GreaterThanEq(e.recover) {
			e.inRecovery = false
			e.cwnd = max(e.ssthresh, e.mss)
		}
		return
	}
	if e.cwnd < e.ssthresh {
		// Slow start with appropriate byte counting (RFC 3465, L = 2):
		// an ACK of two segments, delayed, counts for two.
		e.cwnd += min(int(acked), 2*e.mss)
	} else {
		// Congestion avoidance counting bytes (RFC 3465 section 2.1):
		// a segment more per window of data acknowledged, however many
		// ACKs carried it (per-ACK growth halves with delayed ACKs).
		e.caBytes += int(acked)
		if e.caBytes >= e.cwnd {
			e.caBytes -= e.cwnd
			e.cwnd += e.mss
		}
	}
	e.cwnd = min(e.cwnd, maxCwnd)
}
