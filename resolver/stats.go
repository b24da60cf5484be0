package resolver

// Stats are a URIResolver's counters since New. They show what the
// bounds on SRV answers (Config.MaxSRVTargets, SRVTargetTimeout) cut off.
type Stats struct {
	// SRVAnswersCapped counts the SRV answers with more usable records
	// than Config.MaxSRVTargets.
	SRVAnswersCapped uint64
	// SRVTargetsDropped counts the records of those answers beyond
	// MaxSRVTargets: dropped without their targets being looked up.
	SRVTargetsDropped uint64
	// SRVTargetTimeouts counts the SRV target lookups abandoned at
	// Config.SRVTargetTimeout.
	SRVTargetTimeouts uint64
	// SVCBRecordsDropped counts the SVCB and HTTPS records dropped by
	// the DNS stub as malformed or with an unsupported mandatory key
	// (RFC 9460 §8): never fatal, the other records (or plain A/AAAA)
	// are used.
	SVCBRecordsDropped uint64
	// SVCBAliasChainsBroken counts the AliasMode chains abandoned as
	// loops or longer than 8: the origin's A/AAAA are used instead.
	SVCBAliasChainsBroken uint64
}

// Stats returns the resolver's counters. It is safe for concurrent use.
func (r *URIResolver) Stats() Stats {
	s := Stats{
		SRVAnswersCapped:      r.stats.srvCapped.Load(),
		SRVTargetsDropped:     r.stats.srvDropped.Load(),
		SRVTargetTimeouts:     r.stats.srvTimeouts.Load(),
		SVCBAliasChainsBroken: r.stats.svcbAliasBroken.Load(),
	}
	if r.stub != nil {
		s.SVCBRecordsDropped = r.stub.Stats().SVCBDropped
	}
	return s
}
