package tcp

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRing checks the ring against a plain byte slice over random
// writes, peeks, discards and reads, across growth and wrap-around.
func TestRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r ring
	var model []byte
	next := byte(0)
	for step := 0; step < 20000; step++ {
		switch op := rng.IntN(4); {
		case op == 0 && len(model) < 1<<20:
			b := make([]byte, rng.IntN(9000))
			for i := range b {
				b[i] = next
				next++
			}
			r.Write(b)
			model = append(model, b...)
		case op == 1 && len(model) > 0:
			off := rng.IntN(len(model))
			n := rng.IntN(len(model) - off + 1)
			a, b := r.Peek(off, n)
			require.Equal(t, model[off:off+n], append(append([]byte{}, a...), b...), "step %d", step)
		case op == 2:
			n := rng.IntN(len(model) + 1)
			r.Discard(n)
			model = model[n:]
		case op == 3:
			p := make([]byte, rng.IntN(10000))
			n := r.Read(p)
			require.Equal(t, min(len(p), len(model)), n)
			require.True(t, bytes.Equal(model[:n], p[:n]), "step %d", step)
			model = model[n:]
		}
		require.Equal(t, len(model), r.Len())
		if r.Len() == 0 {
			require.Nil(t, r.buf, "an empty ring holds no buffer")
		}
	}
}

func BenchmarkRing(b *testing.B) {
	var r ring
	chunk := make([]byte, 1460)
	out := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		r.Write(chunk)
		if r.Len() >= 64<<10 {
			r.Read(out)
		}
	}
}

// TestRcvQueue mixes copied and lent data and reads it back in random
// sizes: the bytes come out in order, and every lent buffer is given
// back exactly once, after its last byte is read.
func TestRcvQueue(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var q rcvQueue
	var model []byte
	returned := map[*[]byte]int{}
	lentEnd := map[*[]byte]int{} // read offset just after the buffer's last byte
	readOff := 0
	next := byte(0)
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = next
			next++
		}
		return b
	}
	for step := 0; step < 4000; step++ {
		switch rng.IntN(3) {
		case 0:
			b := fill(rng.IntN(3000))
			q.write(b)
			model = append(model, b...)
		case 1:
			buf := fill(1 + rng.IntN(3000))
			bp := &buf
			q.lend(buf, bp)
			model = append(model, buf...)
			lentEnd[bp] = readOff + len(model)
		case 2:
			p := make([]byte, rng.IntN(5000))
			var back []*[]byte
			n := q.Read(p, func(b *[]byte) { back = append(back, b) })
			require.Equal(t, min(len(p), len(model)), n)
			require.True(t, bytes.Equal(model[:n], p[:n]), "step %d", step)
			model = model[n:]
			readOff += n
			for _, b := range back {
				returned[b]++
				require.Equal(t, readOff >= lentEnd[b], true, "returned before its last byte was read")
			}
			for b, end := range lentEnd {
				if end <= readOff {
					require.Equal(t, 1, returned[b], "a buffer read to its end is given back")
				}
			}
		}
		require.Equal(t, len(model), q.Len())
	}
	q.release(func(b *[]byte) { returned[b]++ })
	for bp := range lentEnd {
		require.Equal(t, 1, returned[bp], "every lent buffer given back once")
	}
}
