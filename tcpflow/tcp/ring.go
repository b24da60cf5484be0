package tcp

import (
	"math/bits"
	"sync"
)

// ring is a byte FIFO over a circular buffer whose size is a power of
// two: the send buffer (bytes queued and not yet acknowledged) and the
// receive buffer (bytes received in order and not yet read). Bytes are
// copied in once and out once; acknowledging or reading them moves an
// index. The buffer comes from a pool when the first byte is written
// and goes back when the ring is empty, so an idle connection holds no
// buffer.
type ring struct {
	buf  *[]byte // nil while empty
	head int     // index of the first byte
	n    int     // bytes held
	peak int     // the largest buffer held so far: taken at once next time
}

// minRing is the smallest buffer a ring takes.
const minRing = 4 << 10

// ringPools holds free buffers by size class (log2 of the size).
var ringPools [31]sync.Pool

func getRingBuf(size int) *[]byte {
	c := bits.Len(uint(size - 1))
	if b, ok := ringPools[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 1<<c)
	return &b
}

func putRingBuf(b *[]byte) {
	ringPools[bits.Len(uint(len(*b)-1))].Put(b)
}

// Len returns the number of bytes held.
func (r *ring) Len() int { return r.n }

// Cap returns the size of the buffer held: the memory the ring pins.
func (r *ring) Cap() int {
	if r.buf == nil {
		return 0
	}
	return len(*r.buf)
}

// capFor returns the size of the buffer the ring holds once it holds
// size bytes in all: its present one if large enough, else the one
// reserve would take.
func (r *ring) capFor(size int) int {
	if c := r.Cap(); c >= size {
		return c
	}
	return 1 << bits.Len(uint(max(size, minRing, r.peak)-1))
}

// grow makes the buffer c bytes (a power of two no smaller than Len and
// minRing), whatever the size reserve would choose: the buffer budget
// may allow less than the ring's peak.
func (r *ring) grow(c int) {
	if r.Cap() >= c {
		return
	}
	r.peak = 0
	r.reserve(c)
}

// Write appends b, growing the buffer as needed.
func (r *ring) Write(b []byte) {
	if len(b) == 0 {
		return
	}
	r.reserve(r.n + len(b))
	buf := *r.buf
	mask := len(buf) - 1
	tail := (r.head + r.n) & mask
	c := copy(buf[tail:], b)
	copy(buf, b[c:])
	r.n += len(b)
}

// reserve makes room for size bytes in all.
func (r *ring) reserve(size int) {
	if r.buf != nil && len(*r.buf) >= size {
		return
	}
	// A connection that needed a large buffer once will again: take
	// it at once rather than growing (and copying) step by step.
	nb := getRingBuf(max(size, minRing, r.peak))
	r.peak = len(*nb)
	if r.buf != nil {
		a, b := r.Peek(0, r.n)
		copy((*nb)[copy(*nb, a):], b)
		putRingBuf(r.buf)
	}
	r.buf, r.head = nb, 0
}

// Peek returns the n bytes from offset off, as one or two slices (two
// when they wrap around the end of the buffer). They stay valid until
// the next Write or Discard.
func (r *ring) Peek(off, n int) (a, b []byte) {
	if n == 0 {
		return nil, nil
	}
	buf := *r.buf
	mask := len(buf) - 1
	start := (r.head + off) & mask
	if start+n <= len(buf) {
		return buf[start : start+n], nil
	}
	return buf[start:], buf[:n-(len(buf)-start)]
}

// Discard drops the first n bytes; the buffer goes back to its pool when
// the ring is empty.
func (r *ring) Discard(n int) {
	if n <= 0 {
		return
	}
	r.n -= n
	if r.n == 0 {
		r.release()
		return
	}
	r.head = (r.head + n) & (len(*r.buf) - 1)
}

// Read copies the first bytes into p and discards them.
func (r *ring) Read(p []byte) int {
	a, b := r.Peek(0, min(len(p), r.n))
	c := copy(p, a)
	c += copy(p[c:], b)
	r.Discard(c)
	return c
}

// release empties the ring and gives its buffer back.
func (r *ring) release() {
	if r.buf != nil {
		putRingBuf(r.buf)
	}
	r.buf, r.head, r.n = nil, 0, 0
}
