package dnsstub

import (
	"errors"
	"math/rand/v2"
	"strings"

	"github.com/miekg/dns"
)

// newQuery returns a recursive query for fqdn and qtype with a random ID
// and an EDNS0 OPT record advertising udpSize.
func newQuery(fqdn string, qtype uint16, udpSize uint16) *dns.Msg {
	m := new(dns.Msg)
	m.Id = uint16(rand.Uint32())
	m.RecursionDesired = true
	m.Question = []dns.Question{{Name: fqdn, Qtype: qtype, Qclass: dns.ClassINET}}
	m.SetEdns0(udpSize, false)
	return m
}

// errMismatch is a response that does not answer the query: a stray or
// spoofed packet.
var errMismatch = errors.New("dns: response does not match the query")

// validateResponse unpacks a response to q and checks that it answers q:
// same ID, QR set, same opcode, exactly one question with the same name
// (case-insensitively), type and class. It never panics on hostile input.
func validateResponse(q *dns.Msg, b []byte) (*dns.Msg, error) {
	// Cheap header checks before unpacking.
	if len(b) < 12 {
		return nil, errMismatch
	}
	if id := uint16(b[0])<<8 | uint16(b[1]); id != q.Id {
		return nil, errMismatch
	}
	m := new(dns.Msg)
	err := m.Unpack(b)
	if qt := q.Question[0].Qtype; err != nil && (qt == TypeSVCB || qt == TypeHTTPS) {
		// A record miekg/dns cannot parse must not lose the whole
		// answer: ParseSVCB drops it alone.
		if lm, lerr := unpackLenient(b); lerr == nil && !lm.Truncated {
			m, err = lm, nil
		}
	}
	if err != nil {
		// A truncated response may not unpack: keep its header, which is
		// all that is needed to retry over TCP.
		bits := uint16(b[2])<<8 | uint16(b[3])
		const qr, tc = 1 << 15, 1 << 9
		if bits&qr == 0 || bits&tc == 0 || int(bits>>11&0xF) != q.Opcode {
			return nil, errMismatch
		}
		return &dns.Msg{MsgHdr: dns.MsgHdr{Id: q.Id, Response: true, Truncated: true, Opcode: q.Opcode}}, nil
	}
	if !m.Response || m.Opcode != q.Opcode || m.Id != q.Id {
		return nil, errMismatch
	}
	if len(m.Question) != 1 {
		// A truncated response may omit the question; accept only then.
		if !(m.Truncated && len(m.Question) == 0) {
			return nil, errMismatch
		}
		return m, nil
	}
	got, want := m.Question[0], q.Question[0]
	if got.Qtype != want.Qtype || got.Qclass != want.Qclass || !strings.EqualFold(got.Name, want.Name) {
		return nil, errMismatch
	}
	return m, nil
}
