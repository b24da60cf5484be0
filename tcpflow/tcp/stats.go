package tcp

import "sync/atomic"

// Stats counts the protocol's events.
type Stats struct {
	SegmentsIn, SegmentsOut   uint64
	Retransmits               uint64 // segments sent again (RTO, fast retransmit, recovery)
	Timeouts                  uint64 // RTO expirations
	FastRetransmits           uint64 // loss recovery episodes begun
	LossProbes                uint64 // tail loss probes sent (RFC 8985 section 7)
	ReorderTimeouts           uint64 // RACK reordering timer expirations (RFC 8985 section 6.3)
	DuplicateSegments         uint64 // data segments received wholly a second time (the peer's spurious retransmissions)
	DSACKs                    uint64 // D-SACK reports received: our retransmissions the peer already had (RFC 2883)
	ResetsOut                 uint64
	InvalidSegments           uint64 // bad options, no such connection and so on
	SYNDropped                uint64 // SYNs (backlog without cookies, connection limit) and cookie ACKs (connection limit)
	PAWSRejected              uint64 // old duplicates caught by their timestamp (RFC 7323)
	ActiveOpens, PassiveOpens uint64
	SYNCookiesSent            uint64 // SYN-ACKs with a cookie (backlog full)
	SYNCookiesValid           uint64 // ACKs giving back a valid cookie
	SYNCookiesInvalid         uint64 // ACKs for no connection to a listener that sent cookies, with no valid one
	BudgetRefused             uint64 // connections refused (SYN or cookie ACK reset, dial failed): the buffer budget is exhausted
	BudgetDrops               uint64 // received segments whose data, or part of it, was dropped: the buffer budget could not hold it
	UserTimeouts              uint64 // connections aborted by Options.UserTimeout
	HyStartCSS                uint64 // first slow starts that saw the RTT rise and went to Conservative Slow Start (RFC 9406)
	HyStartSpurious           uint64 // of those, returns to slow start: the RTT fell back below the rise
	HyStartExits              uint64 // first slow starts ended by HyStart++ (ssthresh set to the window after CSS), not by a loss
	HyStartACKTrains          uint64 // first slow starts ended by an ACK train as long as half the RTT (the pipe full, Linux's HyStart)
	BufferBytes               uint64 // memory charged to the buffer budget now (a gauge; zero without a budget)
}

type counters struct {
	segIn, segOut, retrans, timeouts, fastRetrans, rstOut, invalid, synDropped, active, passive atomic.Uint64
	paws, lossProbes, reoTimeouts, dupSegs, dsacks                                              atomic.Uint64
	cookiesSent, cookiesValid, cookiesInvalid                                                   atomic.Uint64
	budgetRefused, budgetDrops, userTimeouts                                                    atomic.Uint64
	hyCSS, hySpurious, hyExits, hyTrains                                                        atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (p *Protocol) Stats() Stats {
	c := &p.stats
	return Stats{
		SegmentsIn: c.segIn.Load(), SegmentsOut: c.segOut.Load(),
		Retransmits: c.retrans.Load(), Timeouts: c.timeouts.Load(),
		FastRetransmits: c.fastRetrans.Load(), ResetsOut: c.rstOut.Load(),
		InvalidSegments: c.invalid.Load(), SYNDropped: c.synDropped.Load(),
		ActiveOpens: c.active.Load(), PassiveOpens: c.passive.Load(),
		PAWSRejected: c.paws.Load(), LossProbes: c.lossProbes.Load(),
		ReorderTimeouts: c.reoTimeouts.Load(), DuplicateSegments: c.dupSegs.Load(),
		DSACKs:         c.dsacks.Load(),
		SYNCookiesSent: c.cookiesSent.Load(), SYNCookiesValid: c.cookiesValid.Load(),
		SYNCookiesInvalid: c.cookiesInvalid.Load(),
		BudgetRefused:     c.budgetRefused.Load(), BudgetDrops: c.budgetDrops.Load(),
		UserTimeouts: c.userTimeouts.Load(),
		HyStartCSS:   c.hyCSS.Load(), HyStartSpurious: c.hySpurious.Load(), HyStartExits: c.hyExits.Load(), HyStartACKTrains: c.hyTrains.Load(),
		BufferBytes: uint64(max(p.budget.used.Load(), 0)),
	}
}

// BudgetWaiters returns the number of writers waiting for the buffer
// budget to free memory, for tests and monitoring.
func (p *Protocol) BudgetWaiters() int { return p.budget.waiters() }
