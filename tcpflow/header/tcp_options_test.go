package header

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTCPOptions(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want TCPOptions
		err  bool
	}{
		{"empty", nil, TCPOptions{}, false},
		{"EOL stops parsing", []byte{0, 2, 1}, TCPOptions{}, false},
		{"NOPs", []byte{1, 1, 1, 1}, TCPOptions{}, false},
		{"MSS", []byte{2, 4, 5, 0xb4}, TCPOptions{HasMSS: true, MSS: 1460}, false},
		{"MSS then EOL then junk", []byte{2, 4, 5, 0xb4, 0, 0xff}, TCPOptions{HasMSS: true, MSS: 1460}, false},
		{"window scale", []byte{1, 3, 3, 14}, TCPOptions{HasWindowScale: true, WindowScale: 14}, false},
		{"window scale 15 reported as is", []byte{3, 3, 15, 0}, TCPOptions{HasWindowScale: true, WindowScale: 15}, false},
		{"SACK-permitted", []byte{4, 2}, TCPOptions{SACKPermitted: true}, false},
		{"timestamps", []byte{8, 10, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, TCPOptions{HasTimestamps: true, TSVal: 1, TSEcr: 0xffffffff}, false},
		{"unknown kind skipped", []byte{30, 4, 0, 0, 2, 4, 0, 1}, TCPOptions{HasMSS: true, MSS: 1}, false},
		{"repeated MSS: last wins", []byte{2, 4, 0, 1, 2, 4, 0, 2}, TCPOptions{HasMSS: true, MSS: 2}, false},
		{"four SACK blocks", append([]byte{5, 34}, make([]byte, 32)...), TCPOptions{NumSACKBlocks: 4}, false},

		{"kind without length", []byte{2}, TCPOptions{}, true},
		{"unknown without length", []byte{1, 1, 99}, TCPOptions{}, true},
		{"length 0", []byte{2, 0, 0, 0}, TCPOptions{}, true},
		{"length 1", []byte{99, 1, 0, 0}, TCPOptions{}, true},
		{"length beyond end", []byte{2, 4, 5}, TCPOptions{}, true},
		{"unknown length beyond end", []byte{99, 40, 0}, TCPOptions{}, true},
		{"MSS length 3", []byte{2, 3, 5, 0}, TCPOptions{}, true},
		{"MSS length 5", []byte{2, 5, 5, 0xb4, 0}, TCPOptions{}, true},
		{"WS length 4", []byte{3, 4, 0, 0}, TCPOptions{}, true},
		{"SACK-permitted length 3", []byte{4, 3, 0, 0}, TCPOptions{}, true},
		{"timestamps length 8", []byte{8, 8, 0, 0, 0, 0, 0, 0}, TCPOptions{}, true},
		{"SACK length 2", []byte{5, 2, 0, 0}, TCPOptions{}, true},
		{"SACK length 11", append([]byte{5, 11}, make([]byte, 9)...), TCPOptions{}, true},
		{"SACK five blocks", append([]byte{5, 42}, make([]byte, 40)...), TCPOptions{}, true},
		{"error after a good option", []byte{2, 4, 0, 1, 3, 2}, TCPOptions{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTCPOptions(tt.in)
			if tt.err {
				require.ErrorIs(t, err, ErrBadOption)
				assert.Contains(t, err.Error(), "header: tcp option: bad option")
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseSACKBlocks(t *testing.T) {
	got, err := ParseTCPOptions([]byte{1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 16})
	require.NoError(t, err)
	assert.Equal(t, []SACKBlock{{1, 2}, {0xfffffff0, 16}}, got.SACK())
}

func TestMarshalTCPOptions(t *testing.T) {
	blocks := func(n int) TCPOptions {
		o := TCPOptions{NumSACKBlocks: n}
		for i := range n {
			o.SACKBlocks[i] = SACKBlock{uint32(i), uint32(i + 1)}
		}
		return o
	}
	tsSACK3 := blocks(3)
	tsSACK3.HasTimestamps, tsSACK3.TSVal = true, 9
	tsWSSACK3 := tsSACK3
	tsWSSACK3.HasWindowScale, tsWSSACK3.WindowScale = true, 2
	tsSACK4 := blocks(4)
	tsSACK4.HasTimestamps = true
	tests := []struct {
		name string
		in   TCPOptions
		want []byte // nil: error
	}{
		{"none", TCPOptions{}, []byte{}},
		{"MSS", TCPOptions{HasMSS: true, MSS: 536}, []byte{2, 4, 2, 0x18}},
		{"SACK-permitted alone", TCPOptions{SACKPermitted: true}, []byte{1, 1, 4, 2}},
		{"WS alone", TCPOptions{HasWindowScale: true, WindowScale: 7}, []byte{1, 3, 3, 7}},
		{"SYN without timestamps (Linux order)", TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasWindowScale: true, WindowScale: 7},
			[]byte{2, 4, 5, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2}},
		{"four SACK blocks", blocks(4), append([]byte{1, 1, 5, 34}, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 4)},
		{"timestamps and three SACK blocks: aligned, 40 bytes", tsSACK3, []byte{
			1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0,
			1, 1, 5, 26, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3}},
		{"timestamps, WS and three SACK blocks: packed", tsWSSACK3, []byte{
			8, 10, 0, 0, 0, 9, 0, 0, 0, 0,
			3, 3, 2,
			5, 26, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3,
			0}},
		{"timestamps and four SACK blocks: too long", tsSACK4, nil},
		{"bad NumSACKBlocks", TCPOptions{NumSACKBlocks: 5}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := make([]byte, 64)
			n, err := tt.in.Marshal(b)
			if tt.want == nil {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, b[:n])
			assert.Equal(t, n, tt.in.Len())
			back, err := ParseTCPOptions(b[:n])
			require.NoError(t, err)
			assert.Equal(t, tt.in, back)
		})
	}
}
