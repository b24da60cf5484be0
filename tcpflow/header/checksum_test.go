package header

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// naiveChecksum is the byte-at-a-time reference of RFC 1071.
func naiveChecksum(buf []byte, initial uint16) uint16 {
	sum := uint32(initial)
	for i := 0; i < len(buf); i++ {
		if i%2 == 0 {
			sum += uint32(buf[i]) << 8
		} else {
			sum += uint32(buf[i])
		}
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return uint16(sum)
}

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	assert.Equal(t, uint16(0xddf2), Checksum(b, 0))
	assert.Equal(t, uint16(0xddf2), naiveChecksum(b, 0))
}

func TestChecksumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 70000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for n := 0; n < 300; n++ {
		for _, init := range []uint16{0, 1, 0xffff, 0x1234} {
			require.Equal(t, naiveChecksum(buf[:n], init), Checksum(buf[:n], init), "len %d init %#x", n, init)
			require.Equal(t, naiveChecksum(buf[1:n+1], init), Checksum(buf[1:n+1], init), "unaligned len %d", n)
		}
	}
	for _, n := range []int{1500, 65535, 70000} {
		assert.Equal(t, naiveChecksum(buf[:n], 7), Checksum(buf[:n], 7), "len %d", n)
	}
	// All ones: exercises every carry.
	ones := make([]byte, 65536)
	for i := range ones {
		ones[i] = 0xff
	}
	assert.Equal(t, naiveChecksum(ones, 0xffff), Checksum(ones, 0xffff))
}

func TestChecksumCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 999)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for split := 0; split <= len(buf); split += 2 {
		assert.Equal(t, Checksum(buf, 0), ChecksumCombine(Checksum(buf[:split], 0), Checksum(buf[split:], 0)), "split %d", split)
	}
}

func TestChecksumUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 10000 {
		b := make([]byte, 40)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		xsum := ^Checksum(b, 0)
		off := 2 * r.IntN(18)
		old16 := binary.BigEndian.Uint16(b[off:])
		new16 := uint16(r.Uint32())
		if r.IntN(10) == 0 {
			new16 = 0 // edge case of RFC 1624 section 3
		}
		binary.BigEndian.PutUint16(b[off:], new16)
		got := ChecksumUpdate16(xsum, old16, new16)
		require.Equal(t, uint16(0xffff), ChecksumCombine(Checksum(b, 0), got), "16-bit update at %d: %#x -> %#x", off, old16, new16)

		xsum = ^Checksum(b, 0)
		old32 := binary.BigEndian.Uint32(b[off:])
		new32 := r.Uint32()
		binary.BigEndian.PutUint32(b[off:], new32)
		got = ChecksumUpdate32(xsum, old32, new32)
		require.Equal(t, uint16(0xffff), ChecksumCombine(Checksum(b, 0), got), "32-bit update at %d", off)
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	src, dst := netip.MustParseAddr("10.99.7.1"), netip.MustParseAddr("10.99.7.2")
	want := naiveChecksum([]byte{10, 99, 7, 1, 10, 99, 7, 2, 0, 6, 0, 40}, 0)
	assert.Equal(t, want, PseudoHeaderChecksum(ProtocolTCP, src, dst, 40))
}

func BenchmarkChecksum(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	impls := []struct {
		name string
		f    func([]byte, uint16) uint16
	}{{"ours", Checksum}, {"naive", naiveChecksum}}
	for _, size := range []int{64, 1500, 64 << 10} {
		for _, impl := range impls {
			name := fmt.Sprintf("%s/%dB", impl.name, size)
			if size == 64<<10 {
				name = impl.name + "/64KiB"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(size))
				var sink uint16
				for b.Loop() {
					sink += impl.f(buf[:size], 0)
				}
				_ = sink
			})
		}
	}
}
