package channel

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow/link"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// collector records the packets an endpoint receives.
type collector struct {
	mu   sync.Mutex
	pkts [][]byte
	more chan struct{}
}

func collect(e *Endpoint) *collector {
	c := &collector{more: make(chan struct{}, 1)}
	e.SetReceiver(func(pkt []byte) {
		c.mu.Lock()
		c.pkts = append(c.pkts, append([]byte(nil), pkt...)) // copy: pkt is reused
		c.mu.Unlock()
		select {
		case c.more <- struct{}{}:
		default:
		}
	})
	return c
}

// wait waits until n packets have arrived and returns them.
func (c *collector) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.pkts)
		c.mu.Unlock()
		if got >= n {
			c.mu.Lock()
			defer c.mu.Unlock()
			return append([][]byte(nil), c.pkts...)
		}
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("got %d packets, want %d", got, n)
		}
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pkts)
}

func numbered(i int) []byte {
	b := make([]byte, 100)
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

func closeBoth(t *testing.T, a, b *Endpoint) {
	t.Cleanup(func() {
		assert.NoError(t, a.Close())
		assert.NoError(t, b.Close())
	})
}

func TestPerfectLink(t *testing.T) {
	a, b := NewPair(1500, FaultOptions{})
	closeBoth(t, a, b)
	var _ link.Endpoint = a
	assert.Equal(t, 1500, a.MTU())
	ca, cb := collect(a), collect(b)
	buf := make([]byte, 100)
	for i := range 1000 {
		binary.BigEndian.PutUint32(buf, uint32(i))
		require.NoError(t, a.WritePacket(buf)) // buf reused at once: WritePacket copies
	}
	require.NoError(t, b.WritePacket([]byte("back")))
	got := cb.wait(t, 1000)
	for i, p := range got {
		require.Equal(t, numbered(i), p, "packet %d", i)
	}
	assert.Equal(t, [][]byte{[]byte("back")}, ca.wait(t, 1))
	sa, sb := a.Stats(), b.Stats()
	assert.Equal(t, uint64(1000), sa.TxPackets)
	assert.Equal(t, uint64(100000), sa.TxBytes)
	assert.Equal(t, uint64(1000), sb.RxPackets)
	assert.Equal(t, uint64(100000), sb.RxBytes)
	assert.Equal(t, Stats{TxPackets: 1000, TxBytes: 100000, RxPackets: 1, RxBytes: 4}, sa)
}

func TestErrors(t *testing.T) {
	a, b := NewPair(100, FaultOptions{})
	err := a.WritePacket(make([]byte, 101))
	assert.ErrorIs(t, err, link.ErrPacketTooBig)
	assert.NoError(t, a.WritePacket(make([]byte, 100)))
	require.NoError(t, a.Close())
	assert.ErrorIs(t, a.WritePacket([]byte{1}), net.ErrClosed)
	assert.ErrorIs(t, a.Close(), net.ErrClosed)
	// The peer's packets to a closed endpoint are dropped and counted.
	require.NoError(t, b.WritePacket([]byte{1}))
	assert.Equal(t, uint64(1), b.Stats().QueueDrops)
	require.NoError(t, b.Close())

	assert.Panics(t, func() { NewPair(0, FaultOptions{}) })
	assert.Panics(t, func() { NewPair(1500, FaultOptions{Loss: 1.5}) })
	assert.Panics(t, func() { NewPair(1500, FaultOptions{Corrupt: -0.1}) })
	assert.Panics(t, func() { NewPair(1500, FaultOptions{Delay: -1}) })
}

func TestNoReceiver(t *testing.T) {
	a, b := NewPair(1500, FaultOptions{})
	closeBoth(t, a, b)
	require.NoError(t, a.WritePacket([]byte{1}))
	require.Eventually(t, func() bool { return b.Stats().RxNoReceiver == 1 }, 5*time.Second, time.Millisecond)
	cb := collect(b)
	require.NoError(t, a.WritePacket([]byte{2}))
	assert.Equal(t, [][]byte{{2}}, cb.wait(t, 1))
}

// run sends n numbered packets from a to b with opts and returns what b
// received and the stats, after the link has gone quiet.
func run(t *testing.T, n int, opts FaultOptions) ([][]byte, Stats) {
	t.Helper()
	opts.QueueLimit = 1 << 20 // no drops: the receiver may lag behind
	a, b := NewPair(1500, opts)
	defer a.Close()
	defer b.Close()
	cb := collect(b)
	for i := range n {
		require.NoError(t, a.WritePacket(numbered(i)))
	}
	var want int
	require.Eventually(t, func() bool {
		s := a.Stats()
		want = n - int(s.Lost+s.QueueDrops) + int(s.Duplicated)
		return cb.count() == want
	}, 10*time.Second, time.Millisecond)
	return cb.wait(t, want), a.Stats()
}

func TestFaultsReproducible(t *testing.T) {
	opts := FaultOptions{Seed: 7, Loss: 0.2, Duplicate: 0.1, Corrupt: 0.1}
	got1, s1 := run(t, 2000, opts)
	got2, s2 := run(t, 2000, opts)
	assert.Equal(t, s1, s2)
	assert.Equal(t, got1, got2, "same seed, same packets")
	opts.Seed = 8
	got3, s3 := run(t, 2000, opts)
	assert.NotEqual(t, got1, got3, "another seed, other faults")
	assert.NotEqual(t, s1, s3)

	// Rates are close to the configured ones.
	assert.InDelta(t, 400, s1.Lost, 60, "20%% loss")
	assert.InDelta(t, 160, s1.Duplicated, 40, "10%% of the 80%% kept duplicated")
	assert.InDelta(t, 160, s1.Corrupted, 40, "10%% of the 80%% kept corrupted")

	// Corruption flips exactly one bit.
	corrupted := 0
	for _, p := range got1 {
		idx := int(binary.BigEndian.Uint32(p))
		want := numbered(idx)
		if idx >= 2000 {
			want = numbered(0) // header itself corrupted: cannot tell
		}
		diff := 0
		for i := range p {
			x := p[i] ^ want[i]
			for ; x != 0; x &= x - 1 {
				diff++
			}
		}
		if idx < 2000 && diff != 0 {
			require.Equal(t, 1, diff)
			corrupted++
		}
	}
	assert.Positive(t, corrupted)
}

func TestLossAlone(t *testing.T) {
	// Changing the other rates does not change which packets are lost.
	got1, s1 := run(t, 1000, FaultOptions{Seed: 3, Loss: 0.05})
	got2, s2 := run(t, 1000, FaultOptions{Seed: 3, Loss: 0.05, Duplicate: 0.3})
	assert.Equal(t, s1.Lost, s2.Lost)
	seen := func(pkts [][]byte) map[uint32]bool {
		m := map[uint32]bool{}
		for _, p := range pkts {
			m[binary.BigEndian.Uint32(p)] = true
		}
		return m
	}
	assert.Equal(t, seen(got1), seen(got2))
}

func TestDelayManualClock(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	a, b := NewPair(1500, FaultOptions{Delay: 10 * time.Millisecond, Clock: clk})
	closeBoth(t, a, b)
	cb := collect(b)
	require.NoError(t, a.WritePacket(numbered(0)))
	clk.Advance(5 * time.Millisecond)
	require.NoError(t, a.WritePacket(numbered(1)))
	clk.Advance(4 * time.Millisecond)
	time.Sleep(10 * time.Millisecond) // give a wrong delivery the chance to show
	assert.Equal(t, 0, cb.count())
	clk.Advance(time.Millisecond)
	assert.Equal(t, [][]byte{numbered(0)}, cb.wait(t, 1))
	clk.Advance(5 * time.Millisecond)
	assert.Equal(t, [][]byte{numbered(0), numbered(1)}, cb.wait(t, 2))
	assert.Equal(t, uint64(2), a.Stats().Delayed)
}

func TestReorderManualClock(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	a, b := NewPair(1500, FaultOptions{Seed: 1, Reorder: 0.3, ReorderDelay: time.Millisecond, Clock: clk})
	closeBoth(t, a, b)
	cb := collect(b)
	const n = 200
	for i := range n {
		require.NoError(t, a.WritePacket(numbered(i)))
	}
	held := int(a.Stats().Reordered)
	assert.InDelta(t, 60, held, 25)
	cb.wait(t, n-held) // the others arrive without the clock moving
	clk.Advance(time.Millisecond)
	got := cb.wait(t, n)
	seen := map[uint32]bool{}
	inOrder := true
	for i, p := range got {
		idx := binary.BigEndian.Uint32(p)
		seen[idx] = true
		if idx != uint32(i) {
			inOrder = false
		}
	}
	assert.Len(t, seen, n, "every packet delivered once")
	assert.False(t, inOrder, "reordered")
}

func TestJitterRealClock(t *testing.T) {
	got, s := run(t, 300, FaultOptions{Seed: 5, Delay: time.Millisecond, Jitter: 2 * time.Millisecond})
	assert.Len(t, got, 300)
	assert.Equal(t, uint64(300), s.Delayed)
}

func TestQueueLimit(t *testing.T) {
	a, b := NewPair(1500, FaultOptions{QueueLimit: 10})
	closeBoth(t, a, b)
	block := make(chan struct{})
	entered := make(chan struct{}, 1)
	b.SetReceiver(func([]byte) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-block
	})
	require.NoError(t, a.WritePacket([]byte{0}))
	<-entered // the receiver holds packet 0; the queue is empty
	for i := range 15 {
		require.NoError(t, a.WritePacket([]byte{byte(i + 1)}))
	}
	assert.Equal(t, uint64(5), a.Stats().QueueDrops)
	close(block)
	require.Eventually(t, func() bool { return b.Stats().RxPackets == 11 }, 5*time.Second, time.Millisecond)
}

func TestCloseWithPendingAndConcurrentWriters(t *testing.T) {
	a, b := NewPair(1500, FaultOptions{Seed: 9, Delay: time.Hour, Reorder: 0.5, Loss: 0.1})
	collect(a)
	collect(b)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				if err := a.WritePacket(numbered(w*1000 + i)); err != nil {
					assert.True(t, errors.Is(err, net.ErrClosed))
					return
				}
				_ = b.WritePacket(numbered(i))
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, a.Close()) // stops the hour-long timers and waits
	wg.Wait()
	require.NoError(t, b.Close())
	assert.Equal(t, uint64(0), b.Stats().RxPackets)
}
