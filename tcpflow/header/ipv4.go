package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 header layout (RFC 791 section 3.1).
const (
	versIHL       = 0
	tos           = 1
	ipTotalLen    = 2
	ipID          = 4
	flagsFO       = 6
	ipTTL         = 8
	ipProtocol    = 9
	ipChecksum    = 10
	ipSrcAddr     = 12
	ipDstAddr     = 16
	ipOptionsOffs = 20

	// IPv4MinimumSize is the size of an IPv4 header without options.
	IPv4MinimumSize = 20
	// IPv4MaximumHeaderSize is the size of an IPv4 header with 40 bytes
	// of options (IHL 15).
	IPv4MaximumHeaderSize = 60
	// IPv4Version is the version field of every IPv4 header.
	IPv4Version = 4

	// IPv4FlagDF (don't fragment) and IPv4FlagMF (more fragments) are the
	// bits of IPv4.Flags.
	IPv4FlagMF = 1 << 0
	IPv4FlagDF = 1 << 1

	// Protocol numbers carried in IPv4.Protocol.
	ProtocolICMPv4 = 1
	ProtocolTCP    = 6
	ProtocolUDP    = 17
)

// IPv4 is a view of an IPv4 packet: header, options and payload.
// Accessors panic if the view is shorter than the field they read; call
// IsValid first on untrusted bytes.
type IPv4 []byte

// IPv4Fields holds the fields written by IPv4.Encode. The version and
// IHL are derived: IHL covers the options, padded to four bytes.
type IPv4Fields struct {
	TOS            uint8
	TotalLength    uint16 // header plus payload
	ID             uint16
	Flags          uint8  // IPv4FlagDF, IPv4FlagMF
	FragmentOffset uint16 // in bytes; must be a multiple of 8
	TTL            uint8
	Protocol       uint8
	Checksum       uint16 // written as is; use SetChecksum(^CalculateChecksum()) after
	Src, Dst       netip.Addr
	Options        []byte // at most 40 bytes, padded with zeros (EOL) to a multiple of 4
}

// Version returns the version field (4 for IPv4).
func (b IPv4) Version() uint8 { return b[versIHL] >> 4 }

// IHL returns the header length field in 32-bit words.
func (b IPv4) IHL() uint8 { return b[versIHL] & 0xf }

// HeaderLength returns the header length in bytes, options included.
func (b IPv4) HeaderLength() int { return int(b.IHL()) * 4 }

// TOS returns the type of service (DSCP and ECN) byte.
func (b IPv4) TOS() uint8 { return b[tos] }

// TotalLength returns the total length field: header plus payload.
func (b IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(b[ipTotalLen:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipID:]) }

// Flags returns the three flag bits (IPv4FlagDF, IPv4FlagMF).
func (b IPv4) Flags() uint8 { return b[flagsFO] >> 5 }

// DF reports whether the don't-fragment bit is set.
func (b IPv4) DF() bool { return b.Flags()&IPv4FlagDF != 0 }

// MF reports whether the more-fragments bit is set.
func (b IPv4) MF() bool { return b.Flags()&IPv4FlagMF != 0 }

// FragmentOffset returns the fragment offset in bytes.
func (b IPv4) FragmentOffset() uint16 {
	return binary.BigEndian.Uint16(b[flagsFO:]) << 3
}

// IsFragment reports whether the packet is a fragment (MF set or a
// non-zero offset).
func (b IPv4) IsFragment() bool { return b.MF() || b.FragmentOffset() != 0 }

// TTL returns the time-to-live field.
func (b IPv4) TTL() uint8 { return b[ipTTL] }

// Protocol returns the protocol of the payload (ProtocolTCP, ...).
func (b IPv4) Protocol() uint8 { return b[ipProtocol] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipChecksum:]) }

// Src returns the source address.
func (b IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(b[ipSrcAddr : ipSrcAddr+4])) }

// Dst returns the destination address.
func (b IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(b[ipDstAddr : ipDstAddr+4])) }

// Options returns the options bytes (between the fixed header and the
// payload), clamped to the view.
func (b IPv4) Options() []byte {
	return b[ipOptionsOffs:min(max(b.HeaderLength(), ipOptionsOffs), len(b))]
}

// Payload returns the bytes after the header up to TotalLength, clamped
// to the view (so trailing link padding is not included).
func (b IPv4) Payload() []byte {
	end := min(int(b.TotalLength()), len(b))
	start := min(b.HeaderLength(), end)
	return b[start:end]
}

// SetTotalLength sets the total length field.
func (b IPv4) SetTotalLength(n uint16) { binary.BigEndian.PutUint16(b[ipTotalLen:], n) }

// SetTTL sets the time-to-live field.
func (b IPv4) SetTTL(ttl uint8) { b[ipTTL] = ttl }

// SetChecksum sets the header checksum field.
func (b IPv4) SetChecksum(x uint16) { binary.BigEndian.PutUint16(b[ipChecksum:], x) }

// SetSrc sets the source address; it must be an IPv4 address.
func (b IPv4) SetSrc(a netip.Addr) { s := a.As4(); copy(b[ipSrcAddr:], s[:]) }

// SetDst sets the destination address; it must be an IPv4 address.
func (b IPv4) SetDst(a netip.Addr) { d := a.As4(); copy(b[ipDstAddr:], d[:]) }

// CalculateChecksum returns the ones'-complement sum of the header with
// the checksum field counted as zero. The value to store is its
// complement: b.SetChecksum(^b.CalculateChecksum()).
func (b IPv4) CalculateChecksum() uint16 {
	hl := b.HeaderLength()
	return ChecksumCombine(Checksum(b[:ipChecksum], 0), Checksum(b[ipChecksum+2:hl], 0))
}

// IsChecksumValid reports whether the header checksum is correct.
// The header length must be within the view.
func (b IPv4) IsChecksumValid() bool {
	return Checksum(b[:b.HeaderLength()], 0) == 0xffff
}

// EncodedLen returns the header length Encode writes for f.
func (f *IPv4Fields) EncodedLen() int { return IPv4MinimumSize + (len(f.Options)+3)&^3 }

// Encode writes the header described by f (and its options, padded with
// zeros) to b, which must be at least f.EncodedLen() bytes long. It
// panics if the options are longer than 40 bytes. The checksum field is
// written from f.Checksum; compute it afterwards with
// b.SetChecksum(^b.CalculateChecksum()).
func (b IPv4) Encode(f *IPv4Fields) {
	hl := f.EncodedLen()
	if hl > IPv4MaximumHeaderSize {
		panic("header: IPv4 options longer than 40 bytes")
	}
	b[versIHL] = IPv4Version<<4 | uint8(hl/4)
	b[tos] = f.TOS
	binary.BigEndian.PutUint16(b[ipTotalLen:], f.TotalLength)
	binary.BigEndian.PutUint16(b[ipID:], f.ID)
	binary.BigEndian.PutUint16(b[flagsFO:], uint16(f.Flags)<<13|(f.FragmentOffset>>3)&0x1fff)
	b[ipTTL] = f.TTL
	b[ipProtocol] = f.Protocol
	binary.BigEndian.PutUint16(b[ipChecksum:], f.Checksum)
	b.SetSrc(f.Src)
	b.SetDst(f.Dst)
	n := copy(b[ipOptionsOffs:hl], f.Options)
	clear(b[ipOptionsOffs+n : hl])
}

// Fields returns the fields of a valid header, the inverse of Encode
// (the options slice aliases b).
func (b IPv4) Fields() IPv4Fields {
	return IPv4Fields{
		TOS:            b.TOS(),
		TotalLength:    b.TotalLength(),
		ID:             b.ID(),
		Flags:          b.Flags(),
		FragmentOffset: b.FragmentOffset(),
		TTL:            b.TTL(),
		Protocol:       b.Protocol(),
		Checksum:       b.Checksum(),
		Src:            b.Src(),
		Dst:            b.Dst(),
		Options:        b.Options(),
	}
}

// IsValid checks the header of a packet of pktLen bytes (pktLen is the
// length received from the link and must not exceed len(b)): the view
// holds the fixed header, the version is 4, 5 <= IHL and the header fits,
// TotalLength covers the header and does not exceed pktLen (a longer
// pktLen is link padding), and the header checksum is correct. The error
// is a *ParseError wrapping ErrTooShort, ErrBadVersion, ErrBadHeaderLen,
// ErrBadTotalLength or ErrBadChecksum.
func (b IPv4) IsValid(pktLen int) error {
	if pktLen > len(b) {
		return parseErr("ipv4", "", ErrTooShort, "packet length %d > view length %d", pktLen, len(b))
	}
	if pktLen < IPv4MinimumSize {
		return parseErr("ipv4", "", ErrTooShort, "%d bytes < %d", pktLen, IPv4MinimumSize)
	}
	if v := b.Version(); v != IPv4Version {
		return parseErr("ipv4", "Version", ErrBadVersion, "version %d", v)
	}
	hl := b.HeaderLength()
	if hl < IPv4MinimumSize {
		return parseErr("ipv4", "IHL", ErrBadHeaderLen, "IHL %d < 5", b.IHL())
	}
	if hl > pktLen {
		return parseErr("ipv4", "IHL", ErrBadHeaderLen, "header length %d > packet length %d", hl, pktLen)
	}
	tl := int(b.TotalLength())
	if tl < hl {
		return parseErr("ipv4", "TotalLength", ErrBadTotalLength, "total length %d < header length %d", tl, hl)
	}
	if tl > pktLen {
		return parseErr("ipv4", "TotalLength", ErrBadTotalLength, "total length %d > packet length %d", tl, pktLen)
	}
	if !b.IsChecksumValid() {
		return parseErr("ipv4", "Checksum", ErrBadChecksum, "checksum %#04x, want %#04x", b.Checksum(), ^b.CalculateChecksum())
	}
	return nil
}
