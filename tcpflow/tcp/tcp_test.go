package tcp

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func TestISN(t *testing.T) {
	k := newKeys([]byte("secret"))
	id1 := connID{netip.MustParseAddrPort("10.0.0.1:1000"), netip.MustParseAddrPort("10.0.0.2:80")}
	id2 := connID{netip.MustParseAddrPort("10.0.0.1:1001"), netip.MustParseAddrPort("10.0.0.2:80")}
	now := time.Unix(1000, 0)
	assert.NotEqual(t, k.isn(id1, now), k.isn(id2, now), "keyed by the ports")
	assert.Equal(t, k.isn(id1, now), k.isn(id1, now))
	// The clock part ticks every 4 microseconds.
	assert.Equal(t, seqnum.Size(250_000), k.isn(id1, now).Size(k.isn(id1, now.Add(time.Second))))
	k2 := newKeys([]byte("other"))
	assert.NotEqual(t, k.isn(id1, now), k2.isn(id1, now), "keyed by the secret")
}

func newTestProtocol(t *testing.T) *Protocol {
	p, err := New(Options{
		Addr:   netip.MustParseAddr("10.0.0.1"),
		Output: func(src, dst netip.Addr, h, payload []byte) error { return nil },
		Clock:  clock.NewManual(time.Unix(0, 0)),
	})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPickPort(t *testing.T) {
	p := newTestProtocol(t)
	dst := netip.MustParseAddrPort("10.0.0.2:80")
	seen := map[uint16]bool{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < 100; i++ {
		port, ok := p.pickPortLocked(dst)
		require.True(t, ok)
		assert.GreaterOrEqual(t, port, uint16(ephemeralMin))
		assert.False(t, seen[port])
		seen[port] = true
		id := connID{local: netip.AddrPortFrom(p.o.Addr, port), remote: dst}
		p.conns[id] = &endpoint{}
	}
	// Algorithm 3: successive choices for one destination are sequential
	// from a keyed offset.
	clear(p.conns)
}

func TestInsertOOO(t *testing.T) {
	p := newTestProtocol(t)
	e := p.newEndpoint(connID{}, nil)
	e.rcvNxt = 100
	e.insertOOO(200, []byte("0123456789"), false) // 200-210
	e.insertOOO(205, []byte("5678901234"), false) // 205-215, overlaps
	e.insertOOO(195, []byte("abcdefghij"), false) // 195-205
	e.insertOOO(300, []byte("x"), true)
	var ranges [][2]seqnum.Value
	for _, s := range e.ooo {
		ranges = append(ranges, [2]seqnum.Value{s.seq, s.end()})
	}
	assert.Equal(t, [][2]seqnum.Value{{195, 200}, {200, 210}, {210, 215}, {300, 301}}, ranges)
	e.rcvNxt = 195
	e.state = stateEstablished
	e.drainOOO()
	assert.Equal(t, seqnum.Value(215), e.rcvNxt)
	got := make([]byte, 100)
	n := e.rcvBuf.Read(got, nil)
	assert.Equal(t, "abcde0123456789"+"01234", string(got[:n]))
	assert.Len(t, e.ooo, 1)
	assert.False(t, e.finRcvd)
}

// TestInsertOOORandom inserts random, overlapping pieces of one stream
// and checks the queue's invariants against a model: sorted, without
// overlaps, every byte from the stream, exactly the bytes inserted, and
// a duplicate counted just when a piece brought nothing new.
func TestInsertOOORandom(t *testing.T) {
	stream := make([]byte, 4000)
	for i := range stream {
		stream[i] = byte(i * 7)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		p := newTestProtocol(t)
		e := p.newEndpoint(connID{}, nil)
		base := seqnum.Value(rng.Uint32()) // wraps around sometimes
		have := make([]bool, len(stream))
		dups := 0
		for range 1 + rng.IntN(40) {
			off := rng.IntN(len(stream) - 1)
			n := 1 + rng.IntN(min(600, len(stream)-off))
			fresh := false
			for i := off; i < off+n; i++ {
				fresh = fresh || !have[i]
				have[i] = true
			}
			if !fresh {
				dups++
			}
			e.insertOOO(base.Add(seqnum.Size(off)), stream[off:off+n], false)
		}
		got := make([]bool, len(stream))
		for k, s := range e.ooo {
			require.NotEmpty(t, s.data, "round %d", round)
			if k > 0 {
				require.True(t, e.ooo[k-1].end().LessThanEq(s.seq), "round %d: sorted, no overlap", round)
			}
			off := int(base.Size(s.seq))
			require.Equal(t, stream[off:off+len(s.data)], s.data, "round %d", round)
			for i := off; i < off+len(s.data); i++ {
				got[i] = true
			}
		}
		require.Equal(t, have, got, "round %d: the bytes inserted", round)
		require.EqualValues(t, dups, p.Stats().DuplicateSegments, "round %d", round)
	}
}

// BenchmarkInsertOOO fills an out-of-order queue with every other
// segment of a 4 MiB window (about 1400 holes), as a large window at
// high loss does; ns/op is per insertion.
func BenchmarkInsertOOO(b *testing.B) {
	p, err := New(Options{
		Addr:   netip.MustParseAddr("10.0.0.1"),
		Output: func(src, dst netip.Addr, h, payload []byte) error { return nil },
	})
	require.NoError(b, err)
	defer p.Close()
	e := p.newEndpoint(connID{}, nil)
	seg := make([]byte, 1448)
	const segs = 4 << 20 / 1448
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n == segs/2 {
			e.ooo, n = nil, 0
		}
		e.insertOOO(seqnum.Value(2*n*1448), seg, false)
		n++
	}
}
