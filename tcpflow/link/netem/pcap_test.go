package netem

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
)

func TestPcap(t *testing.T) {
	clk := clock.NewManual(t0)
	a, b := newMemEP(clk), newMemEP(clk)
	var buf bytes.Buffer
	pc := NewPcap(&buf, 8, DirAtoB)
	var tapped []Dir
	w, err := Bridge(a, b, Config{Clock: clk, AtoB: Impairment{Loss: 1}, Tap: func(d Dir, at time.Time, pkt []byte) {
		tapped = append(tapped, d)
		pc.Tap(d, at, pkt)
	}})
	require.NoError(t, err)
	defer w.Close()
	a.inject(packet(1, 100)) // lost, but tapped
	clk.Advance(1500 * time.Microsecond)
	a.inject(packet(2, 4))
	b.inject(packet(3, 100))
	require.NoError(t, pc.Err())
	assert.Equal(t, []Dir{DirAtoB, DirAtoB, DirBtoA}, tapped)

	f := buf.Bytes()
	require.Len(t, f, 24+(16+8)+(16+4))
	assert.Equal(t, uint32(0xa1b23c4d), binary.LittleEndian.Uint32(f))
	assert.Equal(t, uint32(8), binary.LittleEndian.Uint32(f[16:]))
	assert.Equal(t, uint32(101), binary.LittleEndian.Uint32(f[20:]))
	r := f[24:]
	assert.Equal(t, uint32(t0.Unix()), binary.LittleEndian.Uint32(r))
	assert.Equal(t, uint32(0), binary.LittleEndian.Uint32(r[4:]))
	assert.Equal(t, uint32(8), binary.LittleEndian.Uint32(r[8:]), "captured: the snap length")
	assert.Equal(t, uint32(100), binary.LittleEndian.Uint32(r[12:]), "on the wire")
	assert.Equal(t, 1, idOf(r[16:]))
	r = r[16+8:]
	assert.Equal(t, uint32(1_500_000), binary.LittleEndian.Uint32(r[4:]), "nanoseconds")
	assert.Equal(t, uint32(4), binary.LittleEndian.Uint32(r[8:]))
	assert.Equal(t, 2, idOf(r[16:]))
}
