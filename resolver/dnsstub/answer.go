package dnsstub

import (
	"math"
	"strings"

	"github.com/miekg/dns"
)

// answer is what a response says about one question.
type answer struct {
	rrs    []dns.RR // records of the type asked, owned by the end of the CNAME chain
	cname  string   // the end of the CNAME chain (the question's name without one)
	ttl    uint32   // the lowest TTL of rrs and of the chain's CNAMEs
	negTTL uint32   // negative answers: min(SOA TTL, SOA minimum), 0 without a SOA
	hops   int      // CNAMEs followed
	err    error    // ErrNXDomain, ErrNoData, ErrCNAMELoop, or nil
	follow bool     // the chain ends at a name the response does not answer: ask for cname
}

// extract reads the answer to (qname, qtype) from a NOERROR or NXDOMAIN
// response. Only records on the CNAME chain from qname count: records
// for other names, of other types or classes are ignored. maxHops bounds
// the chain.
func extract(m *dns.Msg, qname string, qtype uint16, maxHops int) answer {
	a := answer{cname: qname, ttl: math.MaxUint32}
	for {
		var next string
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, a.cname) {
				continue
			}
			switch {
			case h.Rrtype == qtype && rrTypeOK(rr, qtype):
				a.rrs = append(a.rrs, rr)
				a.ttl = min(a.ttl, h.Ttl)
			case h.Rrtype == dns.TypeCNAME && next == "":
				if c, ok := rr.(*dns.CNAME); ok && c.Target != "" {
					next = c.Target
					a.ttl = min(a.ttl, h.Ttl)
				}
			}
		}
		if len(a.rrs) > 0 || next == "" {
			break
		}
		a.hops++
		if a.hops > maxHops {
			a.err = ErrCNAMELoop
			return a
		}
		a.cname = next
	}
	if len(a.rrs) > 0 {
		return a
	}
	soa := false
	for _, rr := range m.Ns {
		if s, ok := rr.(*dns.SOA); ok && s.Hdr.Class == dns.ClassINET {
			soa = true
			a.negTTL = min(s.Hdr.Ttl, s.Minttl)
			break
		}
	}
	switch {
	case m.Rcode == dns.RcodeNameError:
		a.err = ErrNXDomain
	case a.hops > 0 && !soa:
		// A server that did not follow the chain: ask for its end.
		a.follow = true
	default:
		a.err = ErrNoData
	}
	if a.ttl == math.MaxUint32 || a.err != nil {
		a.ttl = 0
	}
	return a
}

// rrTypeOK reports whether rr's Go type is the one of qtype (a record
// whose header says A must be a *dns.A).
func rrTypeOK(rr dns.RR, qtype uint16) bool {
	switch qtype {
	case dns.TypeA:
		r, ok := rr.(*dns.A)
		return ok && r.A.To4() != nil
	case dns.TypeAAAA:
		r, ok := rr.(*dns.AAAA)
		return ok && len(r.AAAA) == 16
	case dns.TypeSRV:
		_, ok := rr.(*dns.SRV)
		return ok
	case dns.TypeSVCB:
		switch rr.(type) {
		case *dns.SVCB, *dns.RFC3597:
			return true
		}
		return false
	case dns.TypeHTTPS:
		switch rr.(type) {
		case *dns.HTTPS, *dns.RFC3597:
			return true
		}
		return false
	}
	return true
}
