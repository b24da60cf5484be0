package header

import (
	"encoding/binary"
	"net/netip"
	"strings"
)

// TCP header layout (RFC 9293 section 3.1).
const (
	tcpSrcPort   = 0
	tcpDstPort   = 2
	tcpSeqNum    = 4
	tcpAckNum    = 8
	tcpDataOff   = 12
	tcpFlags     = 13
	tcpWinSize   = 14
	tcpChecksum  = 16
	tcpUrgentPtr = 18

	// TCPMinimumSize is the size of a TCP header without options.
	TCPMinimumSize = 20
	// TCPMaximumHeaderSize is the size of a TCP header with 40 bytes of
	// options (data offset 15).
	TCPMaximumHeaderSize = 60
	// TCPMaxOptionsSize is the most option bytes a header can carry.
	TCPMaxOptionsSize = 40
)

// TCPFlags is the flags byte of a TCP header.
type TCPFlags uint8

// TCP flags (RFC 9293, RFC 3168 for ECE and CWR).
const (
	TCPFlagFIN TCPFlags = 1 << iota
	TCPFlagSYN
	TCPFlagRST
	TCPFlagPSH
	TCPFlagACK
	TCPFlagURG
	TCPFlagECE
	TCPFlagCWR
)

var tcpFlagNames = [...]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// Contains reports whether all the flags in g are set in f.
func (f TCPFlags) Contains(g TCPFlags) bool { return f&g == g }

// String returns the set flags joined by "|", such as "SYN|ACK", or
// "none".
func (f TCPFlags) String() string {
	if f == 0 {
		return "none"
	}
	var sb strings.Builder
	for i, n := range tcpFlagNames {
		if f&(1<<i) != 0 {
			if sb.Len() > 0 {
				sb.WriteByte('|')
			}
			sb.WriteString(n)
		}
	}
	return sb.String()
}

// TCP is a view of a TCP segment: header, options and payload.
// Accessors panic if the view is shorter than the field they read; call
// IsValid first on untrusted bytes.
type TCP []byte

// TCPFields holds the fields written by TCP.Encode. The data offset is
// derived from the options, which are padded with zeros (EOL) to a
// multiple of four bytes.
type TCPFields struct {
	SrcPort, DstPort uint16
	SeqNum, AckNum   uint32
	Flags            TCPFlags
	WindowSize       uint16
	Checksum         uint16 // written as is; see TCP.SetChecksumFor
	UrgentPointer    uint16
	Options          []byte // raw options, at most 40 bytes; see TCPOptions.Marshal
}

// SrcPort returns the source port.
func (b TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[tcpSrcPort:]) }

// DstPort returns the destination port.
func (b TCP) DstPort() uint16 { return binary.BigEndian.Uint16(b[tcpDstPort:]) }

// SeqNum returns the sequence number.
func (b TCP) SeqNum() uint32 { return binary.BigEndian.Uint32(b[tcpSeqNum:]) }

// AckNum returns the acknowledgment number.
func (b TCP) AckNum() uint32 { return binary.BigEndian.Uint32(b[tcpAckNum:]) }

// DataOffset returns the header length in bytes, options included.
func (b TCP) DataOffset() int { return int(b[tcpDataOff]>>4) * 4 }

// Flags returns the flags byte.
func (b TCP) Flags() TCPFlags { return TCPFlags(b[tcpFlags]) }

// WindowSize returns the (unscaled) window field.
func (b TCP) WindowSize() uint16 { return binary.BigEndian.Uint16(b[tcpWinSize:]) }

// Checksum returns the checksum field.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[tcpChecksum:]) }

// UrgentPointer returns the urgent pointer field.
func (b TCP) UrgentPointer() uint16 { return binary.BigEndian.Uint16(b[tcpUrgentPtr:]) }

// Options returns the raw option bytes, clamped to the view. Parse them
// with ParseTCPOptions.
func (b TCP) Options() []byte {
	return b[TCPMinimumSize:min(max(b.DataOffset(), TCPMinimumSize), len(b))]
}

// Payload returns the bytes after the header, or nil if the data offset
// is beyond the view.
func (b TCP) Payload() []byte {
	if do := b.DataOffset(); do <= len(b) {
		return b[do:]
	}
	return nil
}

// SetSeqNum sets the sequence number.
func (b TCP) SetSeqNum(v uint32) { binary.BigEndian.PutUint32(b[tcpSeqNum:], v) }

// SetAckNum sets the acknowledgment number.
func (b TCP) SetAckNum(v uint32) { binary.BigEndian.PutUint32(b[tcpAckNum:], v) }

// SetFlags sets the flags byte.
func (b TCP) SetFlags(f TCPFlags) { b[tcpFlags] = uint8(f) }

// SetWindowSize sets the window field.
func (b TCP) SetWindowSize(w uint16) { binary.BigEndian.PutUint16(b[tcpWinSize:], w) }

// SetChecksum sets the checksum field.
func (b TCP) SetChecksum(x uint16) { binary.BigEndian.PutUint16(b[tcpChecksum:], x) }

// CalculateChecksum returns the ones'-complement sum of the whole
// segment (the view is header plus payload) with the checksum field
// counted as zero, started from partial (normally the pseudo-header
// sum). The value to store is its complement.
func (b TCP) CalculateChecksum(partial uint16) uint16 {
	s := Checksum(b[:tcpChecksum], partial)
	return Checksum(b[tcpChecksum+2:], s)
}

// SetChecksumFor computes and stores the checksum of the segment (the
// whole view) sent from src to dst over IPv4.
func (b TCP) SetChecksumFor(src, dst netip.Addr) {
	ph := PseudoHeaderChecksum(ProtocolTCP, src, dst, uint16(len(b)))
	b.SetChecksum(^b.CalculateChecksum(ph))
}

// IsChecksumValid reports whether the checksum of the segment (the whole
// view) sent from src to dst over IPv4 is correct.
func (b TCP) IsChecksumValid(src, dst netip.Addr) bool {
	ph := PseudoHeaderChecksum(ProtocolTCP, src, dst, uint16(len(b)))
	return Checksum(b, ph) == 0xffff
}

// EncodedLen returns the header length Encode writes for f.
func (f *TCPFields) EncodedLen() int { return TCPMinimumSize + (len(f.Options)+3)&^3 }

// Encode writes the header described by f (and its options, padded with
// zeros) to b, which must be at least f.EncodedLen() bytes long. The
// four reserved bits are written as zero (RFC 9293). It panics if the
// options are longer than 40 bytes.
func (b TCP) Encode(f *TCPFields) {
	hl := f.EncodedLen()
	if hl > TCPMaximumHeaderSize {
		panic("header: TCP options longer than 40 bytes")
	}
	binary.BigEndian.PutUint16(b[tcpSrcPort:], f.SrcPort)
	binary.BigEndian.PutUint16(b[tcpDstPort:], f.DstPort)
	binary.BigEndian.PutUint32(b[tcpSeqNum:], f.SeqNum)
	binary.BigEndian.PutUint32(b[tcpAckNum:], f.AckNum)
	b[tcpDataOff] = uint8(hl/4) << 4
	b[tcpFlags] = uint8(f.Flags)
	binary.BigEndian.PutUint16(b[tcpWinSize:], f.WindowSize)
	binary.BigEndian.PutUint16(b[tcpChecksum:], f.Checksum)
	binary.BigEndian.PutUint16(b[tcpUrgentPtr:], f.UrgentPointer)
	n := copy(b[TCPMinimumSize:hl], f.Options)
	clear(b[TCPMinimumSize+n : hl])
}

// Fields returns the fields of a valid header, the inverse of Encode
// (the options slice aliases b).
func (b TCP) Fields() TCPFields {
	return TCPFields{
		SrcPort:       b.SrcPort(),
		DstPort:       b.DstPort(),
		SeqNum:        b.SeqNum(),
		AckNum:        b.AckNum(),
		Flags:         b.Flags(),
		WindowSize:    b.WindowSize(),
		Checksum:      b.Checksum(),
		UrgentPointer: b.UrgentPointer(),
		Options:       b.Options(),
	}
}

// IsValid checks that the view holds a fixed header and that the data
// offset is at least 20 and within the view. It does not check the
// checksum (that needs the addresses: IsChecksumValid) nor the options
// (ParseTCPOptions). The error is a *ParseError wrapping ErrTooShort or
// ErrBadHeaderLen.
func (b TCP) IsValid() error {
	if len(b) < TCPMinimumSize {
		return parseErr("tcp", "", ErrTooShort, "%d bytes < %d", len(b), TCPMinimumSize)
	}
	do := b.DataOffset()
	if do < TCPMinimumSize {
		return parseErr("tcp", "DataOffset", ErrBadHeaderLen, "data offset %d < %d", do, TCPMinimumSize)
	}
	if do > len(b) {
		return parseErr("tcp", "DataOffset", ErrBadHeaderLen, "data offset %d > segment length %d", do, len(b))
	}
	return nil
}
