package vchan

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// word returns a pointer to the 32-bit word at off in b, which must be
// 4-byte aligned and in bounds (both are checked: a failure is a bug in
// this package, not in the peer, whose input never chooses offsets).
func word(b []byte, off int) *uint32 {
	if off < 0 || off+4 > len(b) {
		panic("vchan: shared word out of bounds")
	}
	p := unsafe.Pointer(&b[off])
	if uintptr(p)%4 != 0 {
		panic("vchan: unaligned shared word")
	}
	return (*uint32)(p)
}

// le converts between a little-endian shared word and a host value (the
// identity on little-endian hosts; a constant-folded byte swap elsewhere).
func le(x uint32) uint32 {
	if hostBigEndian {
		return bits.ReverseBytes32(x)
	}
	return x
}

// loadLE and storeLE are the atomic accesses to the little-endian words
// of the control page: indices, orders and grants. (Futex words are in
// host order, as the kernel reads them; they are our extension and both
// sides share the host.)
func loadLE(w *uint32) uint32     { return le(atomic.LoadUint32(w)) }
func storeLE(w *uint32, v uint32) { atomic.StoreUint32(w, le(v)) }

// byteShift is the shift of the byte at off (20..23) inside the flags
// word at offset 20, as the host loads that word.
func byteShift(off int) uint {
	i := uint(off - offFlagsWord)
	if hostBigEndian {
		return 8 * (3 - i)
	}
	return 8 * i
}

// flagByte is one of the one-byte fields live and notify, accessed
// atomically through the aligned word that contains it.
type flagByte struct {
	w     *uint32
	shift uint
}

func newFlagByte(page []byte, off int) flagByte {
	return flagByte{w: word(page, offFlagsWord), shift: byteShift(off)}
}

func (f flagByte) load() uint8 { return uint8(atomic.LoadUint32(f.w) >> f.shift) }

func (f flagByte) store(v uint8) {
	for {
		old := atomic.LoadUint32(f.w)
		nw := old&^(0xff<<f.shift) | uint32(v)<<f.shift
		if atomic.CompareAndSwapUint32(f.w, old, nw) {
			return
		}
	}
}

// or sets bits (libxenvchan's __sync_or_and_fetch).
func (f flagByte) or(bits uint8) { atomic.OrUint32(f.w, uint32(bits)<<f.shift) }

// fetchClear clears bits and returns the byte's previous value
// (libxenvchan's __sync_fetch_and_and(notify, ~bit)).
func (f flagByte) fetchClear(bits uint8) uint8 {
	return uint8(atomic.AndUint32(f.w, ^(uint32(bits)<<f.shift)) >> f.shift)
}
