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
}

// Stats returns the resolver's counters. It is safe for concurrent use.
func (r *URIResolver) Stats() Stats {
	return Stats{
		SRVAnswersCapped:  r.stats.srvCapped.Load(),
		SRVTargetsDropped: r.stats.srvDropped.Load(),
		SRVTargetTimeouts: r.stats.srvTimeouts.Load(),
	}
}
