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
