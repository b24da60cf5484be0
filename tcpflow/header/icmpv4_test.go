package header

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestICMPv4Echo(t *testing.T) {
	req := ICMPv4(AppendEcho(nil, 0x1234, 7, []byte("abcdefgh")))
	require.NoError(t, req.IsValid())
	assert.Equal(t, ICMPv4Echo, req.Type())
	assert.Equal(t, "Echo", req.Type().String())
	assert.Equal(t, uint8(0), req.Code())
	assert.Equal(t, uint16(0x1234), req.Ident())
	assert.Equal(t, uint16(7), req.Sequence())
	assert.Equal(t, "abcdefgh", string(req.Payload()))
	assert.Equal(t, ^req.Checksum(), req.CalculateChecksum())

	prefix := []byte{0xaa}
	out, err := AppendEchoReply(prefix, req)
	require.NoError(t, err)
	assert.Equal(t, byte(0xaa), out[0])
	rep := ICMPv4(out[1:])
	require.NoError(t, rep.IsValid(), "incrementally updated checksum")
	assert.Equal(t, ICMPv4EchoReply, rep.Type())
	assert.Equal(t, req.Ident(), rep.Ident())
	assert.Equal(t, req.Sequence(), rep.Sequence())
	assert.Equal(t, req.Payload(), rep.Payload())
	assert.Equal(t, ^rep.CalculateChecksum(), rep.Checksum())

	_, err = AppendEchoReply(nil, rep)
	assert.ErrorIs(t, err, ErrBadType, "a reply is not a request")
	bad := append(ICMPv4(nil), req...)
	bad[9] ^= 1
	_, err = AppendEchoReply(nil, bad)
	assert.ErrorIs(t, err, ErrBadChecksum)
}

func TestICMPv4IsValid(t *testing.T) {
	assert.ErrorIs(t, ICMPv4(nil).IsValid(), ErrTooShort)
	assert.ErrorIs(t, ICMPv4(make([]byte, 7)).IsValid(), ErrTooShort)
	assert.ErrorIs(t, ICMPv4(make([]byte, 8)).IsValid(), ErrBadChecksum)
	odd := ICMPv4(AppendEcho(nil, 1, 1, []byte("odd")))
	assert.NoError(t, odd.IsValid())
	assert.ErrorIs(t, odd[:len(odd)-1].IsValid(), ErrBadChecksum)
}

func TestICMPv4DestUnreachable(t *testing.T) {
	orig := IPv4(mustHex(t, linuxSYNHex))
	m := ICMPv4(AppendDestUnreachable(nil, ICMPv4PortUnreachable, 0, orig))
	require.NoError(t, m.IsValid())
	assert.Equal(t, ICMPv4DstUnreachable, m.Type())
	assert.True(t, m.Type().IsError())
	assert.Equal(t, ICMPv4PortUnreachable, m.Code())
	assert.Len(t, m, 8+60)
	o, err := m.Original()
	require.NoError(t, err)
	assert.Equal(t, orig.Src(), o.Src())
	assert.Equal(t, uint16(5001), TCP(o.Payload()).DstPort())

	// Quoting stops at 576 - 20 - 8 bytes, and at the original's total length.
	big := make(IPv4, 1500)
	big.Encode(&IPv4Fields{TotalLength: 1400, TTL: 1, Protocol: ProtocolTCP, Src: ourAddr, Dst: kernelAddr})
	m = AppendDestUnreachable(nil, ICMPv4FragmentationNeeded, 1280, big)
	require.NoError(t, m.IsValid())
	assert.Equal(t, 576-20, len(m))
	assert.Equal(t, uint16(1280), m.MTU())
	short := make(IPv4, 100)
	short.Encode(&IPv4Fields{TotalLength: 30, Src: ourAddr, Dst: kernelAddr})
	assert.Len(t, AppendDestUnreachable(nil, 1, 0, short), 8+30)

	// Original rejects what cannot be a quoted datagram.
	quote := func(b []byte) ICMPv4 { return append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, b...) }
	_, err = ICMPv4(nil).Original()
	assert.ErrorIs(t, err, ErrTooShort)
	_, err = quote(orig[:19]).Original()
	assert.ErrorIs(t, err, ErrTooShort)
	_, err = quote(orig[:27]).Original()
	assert.ErrorIs(t, err, ErrTooShort, "needs 8 bytes of payload")
	_, err = quote(append([]byte{0x65}, orig[1:28]...)).Original()
	assert.ErrorIs(t, err, ErrBadVersion)
	_, err = quote(append([]byte{0x43}, orig[1:28]...)).Original()
	assert.ErrorIs(t, err, ErrBadHeaderLen)
	assert.Equal(t, "ICMPv4Type(42)", ICMPv4Type(42).String())
}
