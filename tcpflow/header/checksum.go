package header

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Checksum returns the 16-bit ones'-complement sum (RFC 1071) of buf,
// added to initial. The result is the sum itself, not its complement: to
// fill a checksum field, store ^Checksum(...). Sums of pieces combine with
// ChecksumCombine as long as every piece but the last has an even length.
//
// Checksum reads eight bytes at a time into a 64-bit accumulator; RFC 1071
// section 2(B) allows summing in either byte order and swapping at the end.
func Checksum(buf []byte, initial uint16) uint16 {
	// Sum in little-endian order (a plain load on every platform Go
	// cares about), then swap bytes once at the end.
	var sum, carry uint64
	sum = uint64(bits.ReverseBytes16(initial))
	for len(buf) >= 32 {
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(buf[0:8]), 0)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(buf[8:16]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(buf[16:24]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(buf[24:32]), carry)
		sum += carry // cannot overflow: sum <= 2^64-2 after a carry out
		buf = buf[32:]
	}
	for len(buf) >= 8 {
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(buf), 0)
		sum += carry
		buf = buf[8:]
	}
	if len(buf) >= 4 {
		sum, carry = bits.Add64(sum, uint64(binary.LittleEndian.Uint32(buf)), 0)
		sum += carry
		buf = buf[4:]
	}
	if len(buf) >= 2 {
		sum, carry = bits.Add64(sum, uint64(binary.LittleEndian.Uint16(buf)), 0)
		sum += carry
		buf = buf[2:]
	}
	if len(buf) == 1 {
		// An odd final byte is the high byte of a big-endian word, which
		// is the low byte in our little-endian accumulation.
		sum, carry = bits.Add64(sum, uint64(buf[0]), 0)
		sum += carry
	}
	return bits.ReverseBytes16(fold64(sum))
}

// fold64 folds a 64-bit ones'-complement accumulator into 16 bits.
func fold64(sum uint64) uint16 {
	s := (sum >> 32) + (sum & 0xffffffff) // <= 2^33
	s = (s >> 16) + (s & 0xffff)          // <= 2^17 + ...
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// ChecksumCombine returns the ones'-complement sum of a and b.
func ChecksumCombine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// ChecksumUpdate16 returns the checksum field value that results from
// changing one 16-bit word covered by the checksum from old to new, per
// RFC 1624 equation 3: HC' = ~(~HC + ~m + m'). xsum is the stored
// (complemented) checksum field.
func ChecksumUpdate16(xsum, old, new uint16) uint16 {
	return ^ChecksumCombine(ChecksumCombine(^xsum, ^old), new)
}

// ChecksumUpdate32 is ChecksumUpdate16 for a 32-bit field aligned on a
// 16-bit boundary (an IPv4 address, a TCP sequence number).
func ChecksumUpdate32(xsum uint16, old, new uint32) uint16 {
	xsum = ChecksumUpdate16(xsum, uint16(old>>16), uint16(new>>16))
	return ChecksumUpdate16(xsum, uint16(old), uint16(new))
}

// PseudoHeaderChecksum returns the ones'-complement sum of the IPv4
// pseudo-header (RFC 9293 section 3.1: source, destination, zero,
// protocol, length) used by TCP and UDP checksums. length is the
// transport header plus payload length. src and dst must be IPv4
// addresses; others count as 0.0.0.0.
func PseudoHeaderChecksum(protocol uint8, src, dst netip.Addr, length uint16) uint16 {
	var b [12]byte
	if src.Is4() {
		s := src.As4()
		copy(b[0:4], s[:])
	}
	if dst.Is4() {
		d := dst.As4()
		copy(b[4:8], d[:])
	}
	b[9] = protocol
	binary.BigEndian.PutUint16(b[10:], length)
	return Checksum(b[:], 0)
}
