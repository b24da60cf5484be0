package endpoint

import "strings"

// SVCParams is what an HTTPS or SVCB record (RFC 9460) said of a TLS
// endpoint: the protocols to offer and the ECH configuration. A TLS
// endpoint points to one: endpoints stay comparable with ==, and the
// params are shared by every endpoint of one record. An SVCParams must
// not be modified once an endpoint holds it.
type SVCParams struct {
	// Priority is the record's SvcPriority (1 is the most preferred).
	Priority uint16
	// Target is the record's TargetName, the host whose addresses the
	// endpoints are ("." resolved to the owner name).
	Target string
	// ALPN are the protocols of the alpn key, in the record's order,
	// followed by the default protocol of the scheme ("http/1.1" for
	// HTTPS records) unless NoDefaultALPN: what the TLS client offers as
	// NextProtos.
	ALPN []string
	// NoDefaultALPN is the no-default-alpn key.
	NoDefaultALPN bool
	// ECH is the ech key, an ECHConfigList (the value for
	// crypto/tls.Config.EncryptedClientHelloConfigList).
	ECH []byte
	// Hint reports that the endpoint's address came from ipv4hint or
	// ipv6hint, not from an A or AAAA answer.
	Hint bool
}

// String describes the params in the key=value form of RFC 9460's
// presentation format, as far as they apply to the endpoint:
// "alpn=h2,http/1.1 ech" (ech when there is a config list, hint when
// the address came from a hint); empty for nil.
func (p *SVCParams) String() string {
	if p == nil {
		return ""
	}
	var parts []string
	if len(p.ALPN) > 0 {
		parts = append(parts, "alpn="+strings.Join(p.ALPN, ","))
	}
	if p.NoDefaultALPN {
		parts = append(parts, "no-default-alpn")
	}
	if len(p.ECH) > 0 {
		parts = append(parts, "ech")
	}
	if p.Hint {
		parts = append(parts, "hint")
	}
	return strings.Join(parts, " ")
}
