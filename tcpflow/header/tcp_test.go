package header

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTCPLinuxSYN(t *testing.T) {
	ip := IPv4(mustHex(t, linuxSYNHex))
	require.NoError(t, ip.IsValid(len(ip)))
	tcp := TCP(ip.Payload())
	require.NoError(t, tcp.IsValid())
	assert.True(t, tcp.IsChecksumValid(ip.Src(), ip.Dst()))
	assert.Equal(t, uint16(44948), tcp.SrcPort())
	assert.Equal(t, uint16(5001), tcp.DstPort())
	assert.Equal(t, uint32(0x4a41be6d), tcp.SeqNum())
	assert.Equal(t, uint32(0), tcp.AckNum())
	assert.Equal(t, 40, tcp.DataOffset())
	assert.Equal(t, TCPFlagSYN, tcp.Flags())
	assert.Equal(t, "SYN", tcp.Flags().String())
	assert.Equal(t, uint16(64240), tcp.WindowSize())
	assert.Equal(t, uint16(0xf438), tcp.Checksum())
	assert.Equal(t, uint16(0), tcp.UrgentPointer())
	assert.Empty(t, tcp.Payload())

	opts, err := ParseTCPOptions(tcp.Options())
	require.NoError(t, err)
	assert.Equal(t, TCPOptions{
		HasMSS: true, MSS: 1460,
		SACKPermitted: true,
		HasTimestamps: true, TSVal: 0x8d73dcca, TSEcr: 0,
		HasWindowScale: true, WindowScale: 10,
	}, opts)

	// Our encoder writes the same layout as Linux.
	raw := make([]byte, opts.Len())
	n, err := opts.Marshal(raw)
	require.NoError(t, err)
	assert.Equal(t, tcp.Options(), raw[:n])

	// And the whole segment re-encodes byte for byte.
	f := tcp.Fields()
	out := make(TCP, f.EncodedLen())
	out.Encode(&f)
	assert.Equal(t, []byte(tcp), []byte(out))
	out.SetChecksum(0)
	out.SetChecksumFor(ip.Src(), ip.Dst())
	assert.Equal(t, tcp.Checksum(), out.Checksum())
}

func TestTCPLinuxSYNACK(t *testing.T) {
	syn := TCP(IPv4(mustHex(t, linuxSYNHex)).Payload())
	ip := IPv4(mustHex(t, linuxSYNACKHex))
	require.NoError(t, ip.IsValid(len(ip)))
	assert.Equal(t, uint16(0), ip.ID()) // Linux uses ID 0 with DF on SYN-ACKs
	tcp := TCP(ip.Payload())
	require.NoError(t, tcp.IsValid())
	assert.True(t, tcp.IsChecksumValid(ip.Src(), ip.Dst()))
	assert.False(t, tcp.IsChecksumValid(ip.Dst(), kernelAddr.Next().Next()), "wrong pseudo-header")
	assert.Equal(t, TCPFlagSYN|TCPFlagACK, tcp.Flags())
	assert.Equal(t, "SYN|ACK", tcp.Flags().String())
	assert.True(t, tcp.Flags().Contains(TCPFlagACK))
	assert.False(t, tcp.Flags().Contains(TCPFlagACK|TCPFlagFIN))
	assert.Equal(t, uint16(5002), tcp.SrcPort())
	assert.Equal(t, uint16(40000), tcp.DstPort())
	assert.Equal(t, syn.SeqNum()+1, tcp.AckNum())
	assert.Equal(t, uint16(65160), tcp.WindowSize())
	opts, err := ParseTCPOptions(tcp.Options())
	require.NoError(t, err)
	assert.Equal(t, uint16(1460), opts.MSS)
	assert.Equal(t, syn.Options()[8:12], tcp.Options()[12:16], "TSEcr echoes the SYN's TSVal")
	assert.Equal(t, uint32(0x8d73dcca), opts.TSEcr)
}

func TestTCPIsValid(t *testing.T) {
	seg := func(do byte, n int) TCP { b := make(TCP, n); b[12] = do << 4; return b }
	tests := []struct {
		name string
		b    TCP
		want error
	}{
		{"empty", nil, ErrTooShort},
		{"19 bytes", make(TCP, 19), ErrTooShort},
		{"data offset 0", seg(0, 20), ErrBadHeaderLen},
		{"data offset 4", seg(4, 40), ErrBadHeaderLen},
		{"data offset beyond segment", seg(6, 23), ErrBadHeaderLen},
		{"data offset 15 in 60", seg(15, 60), nil},
		{"minimal", seg(5, 20), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.b.IsValid()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), "header: tcp: ")
		})
	}
}

func TestTCPFlagsString(t *testing.T) {
	assert.Equal(t, "none", TCPFlags(0).String())
	assert.Equal(t, "FIN|PSH|ACK", (TCPFlagFIN | TCPFlagPSH | TCPFlagACK).String())
	assert.Equal(t, "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR", TCPFlags(0xff).String())
}

func TestTCPEncodeWithPayload(t *testing.T) {
	opts := TCPOptions{HasTimestamps: true, TSVal: 1, TSEcr: 2, NumSACKBlocks: 1,
		SACKBlocks: [TCPMaxSACKBlocks]SACKBlock{{Start: 100, End: 200}}}
	raw := make([]byte, opts.Len())
	n, err := opts.Marshal(raw)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 10, 0, 0, 0, 100, 0, 0, 0, 200}, raw[:n])
	f := TCPFields{SrcPort: 1, DstPort: 2, SeqNum: 3, AckNum: 4, Flags: TCPFlagACK | TCPFlagPSH, WindowSize: 5, Options: raw[:n]}
	b := make(TCP, f.EncodedLen()+5)
	b.Encode(&f)
	copy(b[f.EncodedLen():], "hello")
	b.SetChecksumFor(ourAddr, kernelAddr)
	require.NoError(t, b.IsValid())
	assert.True(t, b.IsChecksumValid(ourAddr, kernelAddr))
	assert.Equal(t, "hello", string(b.Payload()))
	got, err := ParseTCPOptions(b.Options())
	require.NoError(t, err)
	assert.Equal(t, opts, got)
	b[len(b)-1] ^= 0x40
	assert.False(t, b.IsChecksumValid(ourAddr, kernelAddr))
	assert.Panics(t, func() { make(TCP, 80).Encode(&TCPFields{Options: make([]byte, 41)}) })
}

// TestTCPFuzzCrashers keeps inputs the fuzzer found (also in
// testdata/fuzz/FuzzTCP).
func TestTCPFuzzCrashers(t *testing.T) {
	// Reserved bits set in byte 12: they do not survive Fields/Encode.
	b := TCP("000000000000X0000000000000000000000000000")
	require.NoError(t, b.IsValid())
	f := b.Fields()
	out := make(TCP, f.EncodedLen())
	out.Encode(&f)
	assert.Equal(t, byte('P'), out[12], "reserved bits cleared")
	assert.Equal(t, []byte(b[:12]), []byte(out[:12]))
	assert.Equal(t, []byte(b[13:f.EncodedLen()]), []byte(out[13:]))
}
