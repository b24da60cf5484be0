package header

import (
	"encoding/binary"
	"strconv"
)

// ICMPv4 header layout (RFC 792).
const (
	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpIdent    = 4
	icmpSeq      = 6
	icmpMTU      = 6

	// ICMPv4MinimumSize is the size of the ICMPv4 header.
	ICMPv4MinimumSize = 8

	// ICMPv4ErrorMaxPacket is the size an ICMP error datagram should not
	// exceed (RFC 1812 section 4.3.2.3): AppendDestUnreachable quotes as
	// much of the original datagram as fits in it.
	ICMPv4ErrorMaxPacket = 576
)

// ICMPv4Type is the type field of an ICMPv4 message.
type ICMPv4Type uint8

// ICMPv4 message types used by conduit.
const (
	ICMPv4EchoReply      ICMPv4Type = 0
	ICMPv4DstUnreachable ICMPv4Type = 3
	ICMPv4Echo           ICMPv4Type = 8
	ICMPv4TimeExceeded   ICMPv4Type = 11
	ICMPv4ParamProblem   ICMPv4Type = 12
)

// String returns the type's name, or its number.
func (t ICMPv4Type) String() string {
	switch t {
	case ICMPv4EchoReply:
		return "EchoReply"
	case ICMPv4DstUnreachable:
		return "DstUnreachable"
	case ICMPv4Echo:
		return "Echo"
	case ICMPv4TimeExceeded:
		return "TimeExceeded"
	case ICMPv4ParamProblem:
		return "ParamProblem"
	}
	return "ICMPv4Type(" + strconv.Itoa(int(t)) + ")"
}

// IsError reports whether the type is an error message, which quotes the
// datagram that caused it (see ICMPv4.Original).
func (t ICMPv4Type) IsError() bool {
	return t == ICMPv4DstUnreachable || t == ICMPv4TimeExceeded || t == ICMPv4ParamProblem
}

// Codes of ICMPv4DstUnreachable (RFC 792, RFC 1191, RFC 1812).
const (
	ICMPv4NetUnreachable      uint8 = 0
	ICMPv4HostUnreachable     uint8 = 1
	ICMPv4ProtoUnreachable    uint8 = 2
	ICMPv4PortUnreachable     uint8 = 3
	ICMPv4FragmentationNeeded uint8 = 4
	ICMPv4AdminProhibited     uint8 = 13
)

// ICMPv4 is a view of an ICMPv4 message: header and body. The view must
// be exactly the message (IPv4.Payload), since the checksum covers it all.
type ICMPv4 []byte

// Type returns the message type.
func (b ICMPv4) Type() ICMPv4Type { return ICMPv4Type(b[icmpType]) }

// Code returns the message code.
func (b ICMPv4) Code() uint8 { return b[icmpCode] }

// Checksum returns the checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// Ident returns the identifier of an echo request or reply.
func (b ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(b[icmpIdent:]) }

// Sequence returns the sequence number of an echo request or reply.
func (b ICMPv4) Sequence() uint16 { return binary.BigEndian.Uint16(b[icmpSeq:]) }

// MTU returns the next-hop MTU of a fragmentation-needed message (RFC 1191).
func (b ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(b[icmpMTU:]) }

// Payload returns the body after the eight-byte header: an echo's data,
// or the quoted datagram of an error.
func (b ICMPv4) Payload() []byte { return b[ICMPv4MinimumSize:] }

// SetType sets the type field.
func (b ICMPv4) SetType(t ICMPv4Type) { b[icmpType] = uint8(t) }

// SetCode sets the code field.
func (b ICMPv4) SetCode(c uint8) { b[icmpCode] = c }

// SetChecksum sets the checksum field.
func (b ICMPv4) SetChecksum(x uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], x) }

// SetIdent sets the identifier of an echo request or reply.
func (b ICMPv4) SetIdent(id uint16) { binary.BigEndian.PutUint16(b[icmpIdent:], id) }

// SetSequence sets the sequence number of an echo request or reply.
func (b ICMPv4) SetSequence(seq uint16) { binary.BigEndian.PutUint16(b[icmpSeq:], seq) }

// CalculateChecksum returns the ones'-complement sum of the message with
// the checksum field counted as zero; store its complement.
func (b ICMPv4) CalculateChecksum() uint16 {
	return Checksum(b[icmpChecksum+2:], Checksum(b[:icmpChecksum], 0))
}

// IsValid checks that the view holds the eight-byte header and that the
// checksum over the whole view is correct. The error is a *ParseError
// wrapping ErrTooShort or ErrBadChecksum.
func (b ICMPv4) IsValid() error {
	if len(b) < ICMPv4MinimumSize {
		return parseErr("icmpv4", "", ErrTooShort, "%d bytes < %d", len(b), ICMPv4MinimumSize)
	}
	if Checksum(b, 0) != 0xffff {
		return parseErr("icmpv4", "Checksum", ErrBadChecksum, "checksum %#04x, want %#04x", b.Checksum(), ^b.CalculateChecksum())
	}
	return nil
}

// Original returns the quoted datagram of an error message: an IPv4
// header (options included) followed by at least eight bytes of its
// payload, enough for the ports of TCP and UDP. The view may be shorter
// than its TotalLength, and its checksum is not checked. The error is a
// *ParseError wrapping ErrTooShort, ErrBadVersion or ErrBadHeaderLen.
func (b ICMPv4) Original() (IPv4, error) {
	if len(b) < ICMPv4MinimumSize {
		return nil, parseErr("icmpv4", "", ErrTooShort, "%d bytes < %d", len(b), ICMPv4MinimumSize)
	}
	o := IPv4(b.Payload())
	if len(o) < IPv4MinimumSize {
		return nil, parseErr("icmpv4", "Original", ErrTooShort, "quoted datagram of %d bytes < %d", len(o), IPv4MinimumSize)
	}
	if v := o.Version(); v != IPv4Version {
		return nil, parseErr("icmpv4", "Original", ErrBadVersion, "quoted version %d", v)
	}
	hl := o.HeaderLength()
	if hl < IPv4MinimumSize {
		return nil, parseErr("icmpv4", "Original", ErrBadHeaderLen, "quoted IHL %d < 5", o.IHL())
	}
	if hl+8 > len(o) {
		return nil, parseErr("icmpv4", "Original", ErrTooShort, "quoted datagram of %d bytes < header %d + 8", len(o), hl)
	}
	return o, nil
}

// AppendEchoReply appends to dst the echo reply to the echo request req
// (same identifier, sequence and data) and returns the extended slice.
// The checksum is updated incrementally (RFC 1624) from the request's.
// req must be a valid echo request (IsValid and type Echo, code 0);
// otherwise dst is returned unchanged with the error.
func AppendEchoReply(dst []byte, req ICMPv4) ([]byte, error) {
	if err := req.IsValid(); err != nil {
		return dst, err
	}
	if req.Type() != ICMPv4Echo || req.Code() != 0 {
		return dst, parseErr("icmpv4", "Type", ErrBadType, "type %v code %d is not an echo request", req.Type(), req.Code())
	}
	n := len(dst)
	dst = append(dst, req...)
	r := ICMPv4(dst[n:])
	old := uint16(req.Type())<<8 | uint16(req.Code())
	r.SetType(ICMPv4EchoReply)
	r.SetChecksum(ChecksumUpdate16(req.Checksum(), old, uint16(ICMPv4EchoReply)<<8))
	return dst, nil
}

// AppendEcho appends an echo request with the given identifier, sequence
// and data to dst, checksum included, and returns the extended slice.
func AppendEcho(dst []byte, ident, seq uint16, data []byte) []byte {
	n := len(dst)
	dst = append(dst, uint8(ICMPv4Echo), 0, 0, 0, byte(ident>>8), byte(ident), byte(seq>>8), byte(seq))
	dst = append(dst, data...)
	m := ICMPv4(dst[n:])
	m.SetChecksum(^m.CalculateChecksum())
	return dst
}

// AppendDestUnreachable appends to dst a destination-unreachable message
// with the given code quoting orig, the datagram that could not be
// delivered, and returns the extended slice. As RFC 1812 asks, it quotes
// as much of orig (trimmed to its TotalLength when that is shorter) as
// keeps the ICMP datagram within 576 bytes with a 20-byte IP header. mtu
// is the next-hop MTU for code ICMPv4FragmentationNeeded and should be 0
// otherwise.
func AppendDestUnreachable(dst []byte, code uint8, mtu uint16, orig IPv4) []byte {
	if len(orig) >= IPv4MinimumSize {
		orig = orig[:min(len(orig), max(int(orig.TotalLength()), IPv4MinimumSize))]
	}
	orig = orig[:min(len(orig), ICMPv4ErrorMaxPacket-IPv4MinimumSize-ICMPv4MinimumSize)]
	n := len(dst)
	dst = append(dst, uint8(ICMPv4DstUnreachable), code, 0, 0, 0, 0, byte(mtu>>8), byte(mtu))
	dst = append(dst, orig...)
	m := ICMPv4(dst[n:])
	m.SetChecksum(^m.CalculateChecksum())
	return dst
}
