package stack

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow/header"
)

// TestSACKRetransmitsOnlyLost loses two segments of a flight: the peer
// SACKs the rest, and only the two lost segments are sent again, at
// once, without a timeout (the manual clock never moves).
func TestSACKRetransmitsOnlyLost(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p := newPair(t, pairOpts{clk: clk})
	fa, fb := p.connect(t, 80, nil)

	const segs = 10 // full-sized segments (of at most 1448 bytes with timestamps)
	var (
		mu    sync.Mutex
		sent  = map[uint32]int{} // data segments a sent, by sequence number
		order []uint32
	)
	p.la.setDrop(func(ip header.IPv4) bool {
		tcpHdr := header.TCP(ip.Payload())
		if len(tcpHdr.Payload()) == 0 {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		seq := tcpHdr.SeqNum()
		sent[seq]++
		if sent[seq] == 1 {
			order = append(order, seq)
			// The first transmissions of the third and sixth segments
			// are lost.
			return len(order) == 3 || len(order) == 6
		}
		return false
	})
	data := randomBytes(segs*1448, 5)
	_, err := fa.WriteNodelay(data)
	require.NoError(t, err)
	got := make([]byte, len(data))
	_, err = io.ReadFull(fb, got)
	require.NoError(t, err)
	assert.Equal(t, data, got)

	mu.Lock()
	defer mu.Unlock()
	var again []uint32
	for _, seq := range order {
		if sent[seq] > 1 {
			again = append(again, seq)
		}
	}
	require.Len(t, order, segs)
	assert.Equal(t, []uint32{order[2], order[5]}, again, "only the lost segments are retransmitted")
	st := p.a.Stats().TCP
	assert.Equal(t, uint64(2), st.Retransmits)
	assert.Equal(t, uint64(0), st.Timeouts, "recovered without a timeout")
}

// TestTailLossProbes loses a whole flight and every probe: the sender
// probes after 2 SRTT, then after each time twice as long, six probes
// in all, and only then waits for the retransmission timeout.
func TestTailLossProbes(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p := newPair(t, pairOpts{clk: clk})
	fa, fb := p.connect(t, 80, nil)
	// An exchange gives an RTT sample: 1 ms on the manual clock (the
	// floor of a sample), so the probe timeout is 2 ms.
	_, err := fa.WriteNodelay([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, make([]byte, 1))
	require.NoError(t, err)
	p.settle(t)
	clk.Advance(time.Second)
	p.settle(t)

	var mu sync.Mutex
	sent := 0
	p.la.setDrop(func(ip header.IPv4) bool {
		if len(header.TCP(ip.Payload()).Payload()) > 0 {
			mu.Lock()
			sent++
			mu.Unlock()
			return true
		}
		return false
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return sent }
	_, err = fa.WriteNodelay(make([]byte, 3*1448))
	require.NoError(t, err)
	require.Equal(t, 3, count())
	for i, wait := range []time.Duration{2, 4, 8, 16, 32, 64} {
		clk.Advance(wait*time.Millisecond - time.Microsecond)
		assert.Equal(t, 3+i, count(), "probe %d too early", i+1)
		clk.Advance(time.Microsecond)
		assert.Equal(t, 4+i, count(), "probe %d", i+1)
	}
	assert.EqualValues(t, 6, p.a.Stats().TCP.LossProbes)
	clk.Advance(199 * time.Millisecond)
	assert.Equal(t, 9, count(), "no seventh probe")
	assert.Zero(t, p.a.Stats().TCP.Timeouts)
	clk.Advance(time.Millisecond) // the RTO, 200 ms after the last probe
	assert.Equal(t, uint64(1), p.a.Stats().TCP.Timeouts)
	assert.Equal(t, 10, count())
}
