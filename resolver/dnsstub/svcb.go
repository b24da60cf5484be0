package dnsstub

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The record types of LookupSVCB (RFC 9460).
const (
	TypeSVCB  = dns.TypeSVCB  // 64, the general form, at _PORT._SCHEME names
	TypeHTTPS = dns.TypeHTTPS // 65, for https
)

// An SVCB is a parsed SVCB or HTTPS record (RFC 9460). A Priority of 0 is
// AliasMode (only Target matters); any other is ServiceMode.
type SVCB struct {
	// Owner is the record's owner name, fully qualified and lower case
	// (the end of a CNAME chain): the effective target of a ServiceMode
	// record whose Target is ".".
	Owner    string
	Priority uint16
	// Target is the TargetName, fully qualified, lower case ("." for the
	// owner, or, in AliasMode, "service unavailable").
	Target string
	// Port is the port key (0 when absent).
	Port          uint16
	ALPN          []string // the alpn key's protocol ids, in order
	NoDefaultALPN bool
	ECH           []byte       // the ech key, an ECHConfigList
	IPv4Hint      []netip.Addr // ipv4hint
	IPv6Hint      []netip.Addr // ipv6hint
	TTL           time.Duration
}

// The SvcParamKeys understood (RFC 9460 §14.3.2).
const (
	keyMandatory     = 0
	keyALPN          = 1
	keyNoDefaultALPN = 2
	keyPort          = 3
	keyIPv4Hint      = 4
	keyECH           = 5
	keyIPv6Hint      = 6
)

// Errors of ParseSVCB.
var (
	// ErrMalformedSVCB: the RDATA does not follow RFC 9460 §2.2 and
	// §7 (overflowing lengths, keys out of order, bad values, a
	// no-default-alpn without alpn, a mandatory key absent).
	ErrMalformedSVCB = errors.New("dns: malformed SVCB record")
	// ErrUnsupportedMandatory: the record lists a key this package does
	// not implement as mandatory (RFC 9460 §8: the record is unusable).
	ErrUnsupportedMandatory = errors.New("dns: SVCB record with an unsupported mandatory key")
)

// ParseSVCB parses the RDATA of an SVCB or HTTPS record. Keys this package
// does not know are ignored unless mandatory. In AliasMode (priority 0)
// the SvcParams are ignored (RFC 9460 §2.4.2). It never panics.
func ParseSVCB(rdata []byte) (SVCB, error) {
	var rec SVCB
	if len(rdata) < 3 {
		return rec, ErrMalformedSVCB
	}
	rec.Priority = binary.BigEndian.Uint16(rdata)
	target, off, err := parseName(rdata, 2)
	if err != nil {
		return rec, err
	}
	rec.Target = target
	if rec.Priority == 0 {
		return rec, nil
	}
	var mandatory []byte
	seen := map[uint16]bool{}
	prev := -1
	for off < len(rdata) {
		if off+4 > len(rdata) {
			return rec, ErrMalformedSVCB
		}
		key := binary.BigEndian.Uint16(rdata[off:])
		n := int(binary.BigEndian.Uint16(rdata[off+2:]))
		off += 4
		if off+n > len(rdata) || int(key) <= prev {
			return rec, ErrMalformedSVCB
		}
		prev = int(key)
		seen[key] = true
		v := rdata[off : off+n]
		off += n
		switch key {
		case keyMandatory:
			if n == 0 || n%2 != 0 {
				return rec, ErrMalformedSVCB
			}
			mandatory = v
		case keyALPN:
			if n == 0 {
				return rec, ErrMalformedSVCB
			}
			for i := 0; i < n; {
				l := int(v[i])
				i++
				if l == 0 || i+l > n {
					return rec, ErrMalformedSVCB
				}
				rec.ALPN = append(rec.ALPN, string(v[i:i+l]))
				i += l
			}
		case keyNoDefaultALPN:
			if n != 0 {
				return rec, ErrMalformedSVCB
			}
			rec.NoDefaultALPN = true
		case keyPort:
			if n != 2 {
				return rec, ErrMalformedSVCB
			}
			rec.Port = binary.BigEndian.Uint16(v)
		case keyIPv4Hint:
			if n == 0 || n%4 != 0 {
				return rec, ErrMalformedSVCB
			}
			for i := 0; i < n; i += 4 {
				rec.IPv4Hint = append(rec.IPv4Hint, netip.AddrFrom4([4]byte(v[i:i+4])))
			}
		case keyECH:
			if n == 0 {
				return rec, ErrMalformedSVCB
			}
			rec.ECH = append([]byte(nil), v...)
		case keyIPv6Hint:
			if n == 0 || n%16 != 0 {
				return rec, ErrMalformedSVCB
			}
			for i := 0; i < n; i += 16 {
				a := netip.AddrFrom16([16]byte(v[i : i+16]))
				if a.Is4In6() {
					return rec, ErrMalformedSVCB // RFC 9460 §7.3
				}
				rec.IPv6Hint = append(rec.IPv6Hint, a)
			}
		}
	}
	// mandatory: strictly increasing, not itself, each key present and
	// understood (RFC 9460 §8).
	last := -1
	for i := 0; i < len(mandatory); i += 2 {
		k := binary.BigEndian.Uint16(mandatory[i:])
		if k == keyMandatory || int(k) <= last || !seen[k] {
			return rec, ErrMalformedSVCB
		}
		last = int(k)
		if k > keyIPv6Hint {
			return rec, ErrUnsupportedMandatory
		}
	}
	if rec.NoDefaultALPN && len(rec.ALPN) == 0 {
		return rec, ErrMalformedSVCB // not self-consistent (RFC 9460 §7.1.1)
	}
	return rec, nil
}

// parseName reads an uncompressed domain name (RFC 9460 §2.2: TargetName
// is not compressed) at off, returning it fully qualified and lower case.
func parseName(b []byte, off int) (string, int, error) {
	var sb strings.Builder
	total := 0
	for {
		if off >= len(b) {
			return "", 0, ErrMalformedSVCB
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(b) {
			return "", 0, ErrMalformedSVCB // a pointer or an overflow
		}
		total += l + 1
		if total > 254 {
			return "", 0, ErrMalformedSVCB
		}
		for _, c := range b[off : off+l] {
			switch {
			case c == '.' || c == '\\' || c <= ' ' || c >= 0x7f:
				return "", 0, ErrMalformedSVCB // not a host name this package can carry
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			sb.WriteByte(c)
		}
		sb.WriteByte('.')
		off += l
	}
	if sb.Len() == 0 {
		return ".", off, nil
	}
	return sb.String(), off, nil
}

// svcbRdata returns the RDATA of an SVCB or HTTPS record as received:
// records miekg/dns parsed are packed again, unparsed ones (see
// unpackLenient) carry it as RFC 3597 hex.
func svcbRdata(rr dns.RR) ([]byte, bool) {
	switch r := rr.(type) {
	case *dns.RFC3597:
		b, err := hex.DecodeString(r.Rdata)
		return b, err == nil
	case *dns.SVCB, *dns.HTTPS:
		buf := make([]byte, dns.Len(rr)+512)
		end, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			return nil, false
		}
		name := make([]byte, 256)
		hdr, err := dns.PackDomainName(rr.Header().Name, name, 0, nil, false)
		if err != nil || hdr+10 > end {
			return nil, false
		}
		return buf[hdr+10 : end], true
	}
	return nil, false
}

// LookupSVCB returns the records of type qtype (TypeSVCB or TypeHTTPS)
// at name, through the search list as LookupSRV. Malformed records and
// those with unsupported mandatory keys are dropped (counted in
// Stats.SVCBDropped); an answer whose records are all dropped is
// ErrNoData. AliasMode records are returned as they are: following them
// is the caller's part. Each record's TTL is the answer's remaining TTL.
func (s *Stub) LookupSVCB(ctx context.Context, name string, qtype uint16) ([]SVCB, error) {
	typ := dns.TypeToString[qtype]
	if qtype != TypeSVCB && qtype != TypeHTTPS {
		return nil, &Error{Name: name, Type: typ, Err: errors.New("dns: not an SVCB type")}
	}
	if err := checkName(name); err != nil {
		return nil, &Error{Name: name, Type: typ, Err: err}
	}
	e, err := s.searchRecords(ctx, name, qtype, typ, func(e *entry) bool { return len(e.svcbs) > 0 })
	if err != nil {
		return nil, err
	}
	ttl := e.remaining(s.now())
	out := make([]SVCB, len(e.svcbs))
	for i, r := range e.svcbs {
		r.TTL = ttl
		out[i] = r
	}
	return out, nil
}

// parseSVCBRecords parses the SVCB or HTTPS records of an answer, owned
// by owner, dropping (and counting) the unusable ones.
func (s *Stub) parseSVCBRecords(owner string, rrs []dns.RR) []SVCB {
	var out []SVCB
	for _, rr := range rrs {
		rdata, ok := svcbRdata(rr)
		var rec SVCB
		var err error
		if ok {
			rec, err = ParseSVCB(rdata)
		}
		if !ok || err != nil {
			s.stats.svcbDropped.Add(1)
			if s.log != nil {
				s.log.Debug("dns: SVCB record dropped", "name", owner, "err", err)
			}
			continue
		}
		rec.Owner = strings.ToLower(owner)
		out = append(out, rec)
	}
	return out
}

// unpackLenient unpacks a response that miekg/dns rejects because of an
// SVCB or HTTPS record it cannot parse: those records (in the answer
// section) are kept as RFC 3597 RDATA for ParseSVCB to judge one by one;
// other records that do not unpack are left out. The additional section
// is ignored.
func unpackLenient(b []byte) (*dns.Msg, error) {
	if len(b) < 12 {
		return nil, errMismatch
	}
	m := new(dns.Msg)
	bits := binary.BigEndian.Uint16(b[2:])
	m.Id = binary.BigEndian.Uint16(b)
	m.Response = bits&(1<<15) != 0
	m.Opcode = int(bits>>11) & 0xF
	m.Authoritative = bits&(1<<10) != 0
	m.Truncated = bits&(1<<9) != 0
	m.RecursionDesired = bits&(1<<8) != 0
	m.RecursionAvailable = bits&(1<<7) != 0
	m.Rcode = int(bits & 0xF)
	qd, an, ns := int(binary.BigEndian.Uint16(b[4:])), int(binary.BigEndian.Uint16(b[6:])), int(binary.BigEndian.Uint16(b[8:]))
	off := 12
	for range qd {
		name, o, err := dns.UnpackDomainName(b, off)
		if err != nil || o+4 > len(b) {
			return nil, errMismatch
		}
		m.Question = append(m.Question, dns.Question{Name: name, Qtype: binary.BigEndian.Uint16(b[o:]), Qclass: binary.BigEndian.Uint16(b[o+2:])})
		off = o + 4
	}
	for sec := range 2 {
		count := an
		if sec == 1 {
			count = ns
		}
		for range count {
			name, o, err := dns.UnpackDomainName(b, off)
			if err != nil || o+10 > len(b) {
				return nil, errMismatch
			}
			h := dns.RR_Header{Name: name, Rrtype: binary.BigEndian.Uint16(b[o:]), Class: binary.BigEndian.Uint16(b[o+2:]),
				Ttl: binary.BigEndian.Uint32(b[o+4:]), Rdlength: binary.BigEndian.Uint16(b[o+8:])}
			start := o + 10
			end := start + int(h.Rdlength)
			if end > len(b) {
				return nil, errMismatch
			}
			var rr dns.RR
			if h.Rrtype == TypeSVCB || h.Rrtype == TypeHTTPS {
				rr = &dns.RFC3597{Hdr: h, Rdata: hex.EncodeToString(b[start:end])}
			} else if r, _, err := dns.UnpackRRWithHeader(h, b, start); err == nil {
				rr = r
			}
			if rr != nil {
				if sec == 0 {
					m.Answer = append(m.Answer, rr)
				} else {
					m.Ns = append(m.Ns, rr)
				}
			}
			off = end
		}
	}
	return m, nil
}
