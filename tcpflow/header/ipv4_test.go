package header

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIPv4LinuxSYN(t *testing.T) {
	pkt := mustHex(t, linuxSYNHex)
	ip := IPv4(pkt)
	require.NoError(t, ip.IsValid(len(pkt)))
	assert.Equal(t, uint8(4), ip.Version())
	assert.Equal(t, uint8(5), ip.IHL())
	assert.Equal(t, 20, ip.HeaderLength())
	assert.Equal(t, uint8(0), ip.TOS())
	assert.Equal(t, uint16(60), ip.TotalLength())
	assert.Equal(t, uint16(0x4f11), ip.ID())
	assert.True(t, ip.DF())
	assert.False(t, ip.MF())
	assert.False(t, ip.IsFragment())
	assert.Equal(t, uint16(0), ip.FragmentOffset())
	assert.Equal(t, uint8(64), ip.TTL())
	assert.Equal(t, uint8(ProtocolTCP), ip.Protocol())
	assert.Equal(t, uint16(0xc8e2), ip.Checksum())
	assert.Equal(t, ^ip.Checksum(), ip.CalculateChecksum())
	assert.Equal(t, kernelAddr, ip.Src())
	assert.Equal(t, ourAddr, ip.Dst())
	assert.Empty(t, ip.Options())
	assert.Len(t, ip.Payload(), 40)

	// Encode(Fields()) reproduces the header byte for byte.
	f := ip.Fields()
	out := make(IPv4, f.EncodedLen())
	out.Encode(&f)
	assert.Equal(t, []byte(ip[:20]), []byte(out))
}

func TestIPv4EncodeOptions(t *testing.T) {
	f := IPv4Fields{
		TOS: 0x10, TotalLength: 28, ID: 7, Flags: IPv4FlagMF, FragmentOffset: 1480,
		TTL: 3, Protocol: ProtocolUDP, Src: ourAddr, Dst: kernelAddr,
		Options: []byte{0x94, 0x04, 0, 0, 1}, // router alert + a NOP, padded to 8
	}
	assert.Equal(t, 28, f.EncodedLen())
	b := make(IPv4, 28)
	for i := range b {
		b[i] = 0xee // Encode must overwrite the padding
	}
	b.Encode(&f)
	b.SetChecksum(^b.CalculateChecksum())
	require.NoError(t, b.IsValid(len(b)))
	assert.Equal(t, 28, b.HeaderLength())
	assert.Equal(t, []byte{0x94, 0x04, 0, 0, 1, 0, 0, 0}, b.Options())
	assert.True(t, b.MF())
	assert.True(t, b.IsFragment())
	assert.Equal(t, uint16(1480), b.FragmentOffset())
	assert.Empty(t, b.Payload())
	g := b.Fields()
	assert.Equal(t, f.TOS, g.TOS)
	assert.Equal(t, f.FragmentOffset, g.FragmentOffset)
	assert.Equal(t, f.Flags, g.Flags)

	assert.Panics(t, func() { make(IPv4, 80).Encode(&IPv4Fields{Options: make([]byte, 41)}) })
}

func TestIPv4IsValid(t *testing.T) {
	good := mustHex(t, linuxSYNHex)
	mod := func(f func(b IPv4)) []byte {
		b := append(IPv4(nil), good...)
		f(b)
		return b
	}
	fix := func(b IPv4) { b.SetChecksum(0); b.SetChecksum(^b.CalculateChecksum()) }
	tests := []struct {
		name   string
		pkt    []byte
		pktLen int // -1: len(pkt)
		want   error
	}{
		{"empty", nil, -1, ErrTooShort},
		{"19 bytes", good[:19], -1, ErrTooShort},
		{"pktLen beyond view", good, 61, ErrTooShort},
		{"version 6", mod(func(b IPv4) { b[0] = 0x65; fix(b) }), -1, ErrBadVersion},
		{"IHL 4", mod(func(b IPv4) { b[0] = 0x44 }), -1, ErrBadHeaderLen},
		{"IHL 0", mod(func(b IPv4) { b[0] = 0x40 }), -1, ErrBadHeaderLen},
		{"IHL beyond packet", mod(func(b IPv4) { b[0] = 0x4f }), 40, ErrBadHeaderLen},
		{"total length < header", mod(func(b IPv4) { b.SetTotalLength(19); fix(b) }), -1, ErrBadTotalLength},
		{"total length > packet", mod(func(b IPv4) { b.SetTotalLength(61); fix(b) }), -1, ErrBadTotalLength},
		{"truncated packet", good[:59], -1, ErrBadTotalLength},
		{"bad checksum", mod(func(b IPv4) { b[8]-- }), -1, ErrBadChecksum},
		{"checksum field flipped", mod(func(b IPv4) { b[10] ^= 1 }), -1, ErrBadChecksum},
		{"link padding is fine", append(append([]byte(nil), good...), 0, 0, 0, 0), -1, nil},
		{"valid", good, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.pktLen
			if n < 0 {
				n = len(tt.pkt)
			}
			err := IPv4(tt.pkt).IsValid(n)
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			var pe *ParseError
			require.True(t, errors.As(err, &pe))
			assert.Equal(t, "ipv4", pe.Proto)
			assert.Contains(t, err.Error(), "header: ipv4: ")
		})
	}
}

func TestIPv4IncrementalTTL(t *testing.T) {
	b := IPv4(mustHex(t, linuxSYNHex))
	old := uint16(b.TTL())<<8 | uint16(b.Protocol())
	b.SetTTL(b.TTL() - 1)
	b.SetChecksum(ChecksumUpdate16(b.Checksum(), old, uint16(b.TTL())<<8|uint16(b.Protocol())))
	assert.NoError(t, b.IsValid(len(b)))
}
