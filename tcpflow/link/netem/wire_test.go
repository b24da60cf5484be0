package netem

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow/link"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// memEP is an in-memory link endpoint: it records what is written to it
// (with the time of its clock) and inject plays a received packet.
type memEP struct {
	clk  clock.Clock
	mu   sync.Mutex
	got  []delivery
	recv atomic.Pointer[func([]byte)]
	fail atomic.Bool
	more chan struct{}
}

func newMemEP(clk clock.Clock) *memEP {
	if clk == nil {
		clk = clock.Real()
	}
	return &memEP{clk: clk, more: make(chan struct{}, 1)}
}

func (m *memEP) MTU() int { return 1500 }

func (m *memEP) WritePacket(pkt []byte) error {
	if m.fail.Load() {
		return errors.New("memep: refused")
	}
	m.mu.Lock()
	m.got = append(m.got, delivery{idOf(pkt), m.clk.Now()})
	m.mu.Unlock()
	select {
	case m.more <- struct{}{}:
	default:
	}
	return nil
}

func (m *memEP) SetReceiver(f func([]byte)) {
	if f == nil {
		m.recv.Store(nil)
		return
	}
	m.recv.Store(&f)
}

func (m *memEP) Close() error { return nil }

// inject plays pkt as received by the endpoint.
func (m *memEP) inject(pkt []byte) {
	if f := m.recv.Load(); f != nil {
		(*f)(pkt)
	}
}

func (m *memEP) deliveries() []delivery {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]delivery(nil), m.got...)
}

// wait waits (bounded) until n packets have been written.
func (m *memEP) wait(t *testing.T, n int) []delivery {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if d := m.deliveries(); len(d) >= n {
			return d
		}
		select {
		case <-m.more:
		case <-deadline:
			t.Fatalf("%d packets delivered, want %d", len(m.deliveries()), n)
		}
	}
}

func ids(d []delivery) []int {
	out := make([]int, len(d))
	for i, x := range d {
		out[i] = x.id
	}
	return out
}

func TestBridgeManualClock(t *testing.T) {
	clk := clock.NewManual(t0)
	a, b := newMemEP(clk), newMemEP(clk)
	w, err := Bridge(a, b, Config{
		Clock: clk,
		AtoB:  Impairment{Delay: 10 * time.Millisecond},
		BtoA:  Impairment{Delay: time.Millisecond, Loss: 1},
	})
	require.NoError(t, err)
	defer w.Close()

	for i := range 3 {
		a.inject(packet(i, 100))
		b.inject(packet(100+i, 100))
		clk.Advance(time.Millisecond)
	}
	assert.Empty(t, b.deliveries(), "not due before 10 ms")
	clk.Advance(7 * time.Millisecond) // t0+10ms: the first is due
	assert.Equal(t, []delivery{{0, t0.Add(10 * time.Millisecond)}}, b.deliveries())
	clk.Advance(5 * time.Millisecond)
	assert.Equal(t, []int{0, 1, 2}, ids(b.deliveries()))
	assert.Equal(t, t0.Add(12*time.Millisecond), b.deliveries()[2].at)
	assert.Empty(t, a.deliveries(), "BtoA loses everything, AtoB nothing")

	st := w.Stats()
	assert.Equal(t, Counters{Packets: 3, Bytes: 300, Delivered: 3, DeliveredB: 300, MaxInFlight: 3}, st.AtoB)
	assert.Equal(t, uint64(3), st.BtoA.Lost)
	assert.Equal(t, uint64(3), st.BtoA.Packets)
}

func TestWrapManualClock(t *testing.T) {
	clk := clock.NewManual(t0)
	inner := newMemEP(clk)
	e, err := Wrap(inner, Config{Clock: clk, AtoB: Impairment{Delay: time.Millisecond}, BtoA: Impairment{Delay: 2 * time.Millisecond}})
	require.NoError(t, err)
	var got []delivery
	e.SetReceiver(func(pkt []byte) { got = append(got, delivery{idOf(pkt), clk.Now()}) }) // Advance's goroutine

	assert.Equal(t, 1500, e.MTU())
	require.NoError(t, e.WritePacketv(packet(1, 20), make([]byte, 80)))
	assert.ErrorIs(t, e.WritePacket(make([]byte, 1501)), link.ErrPacketTooBig)
	inner.inject(packet(2, 100))
	clk.Advance(time.Millisecond)
	assert.Equal(t, []delivery{{1, t0.Add(time.Millisecond)}}, inner.deliveries())
	assert.Empty(t, got)
	clk.Advance(time.Millisecond)
	assert.Equal(t, []delivery{{2, t0.Add(2 * time.Millisecond)}}, got)
	assert.Equal(t, uint64(100), e.Stats().AtoB.DeliveredB, "header and payload, one packet")

	// A packet arriving with no receiver, and one the inner endpoint
	// refuses, are counted as write errors.
	e.SetReceiver(nil)
	inner.inject(packet(3, 100))
	inner.fail.Store(true)
	require.NoError(t, e.WritePacket(packet(4, 100)))
	clk.Advance(2 * time.Millisecond)
	st := e.Stats()
	assert.Equal(t, uint64(1), st.AtoB.WriteErrors)
	assert.Equal(t, uint64(1), st.BtoA.WriteErrors)

	// Close discards what is in flight, and refuses later writes.
	inner.fail.Store(false)
	require.NoError(t, e.WritePacket(packet(5, 100)))
	inner.inject(packet(6, 100))
	require.NoError(t, e.Close())
	st = e.Stats()
	assert.Equal(t, uint64(1), st.AtoB.Discarded)
	assert.Equal(t, uint64(1), st.BtoA.Discarded)
	assert.Zero(t, st.AtoB.InFlight)
	clk.Advance(time.Second)
	assert.Len(t, inner.deliveries(), 1)
	assert.ErrorIs(t, e.WritePacket(packet(7, 100)), net.ErrClosed)
	assert.ErrorIs(t, e.Close(), net.ErrClosed)
	assert.Nil(t, inner.recv.Load(), "Close removed the receiver it set")
}

// balance checks that every packet offered is accounted for once.
func balance(t *testing.T, c Counters) {
	t.Helper()
	in := c.Packets + c.Duplicated
	out := c.Delivered + c.Lost + c.BurstLost + c.QueueDrops + c.Overflow + c.WriteErrors + c.Discarded + c.InFlight
	assert.Equal(t, in, out, "%+v", c)
}

func TestCountersAddUp(t *testing.T) {
	clk := clock.NewManual(t0)
	a, b := newMemEP(clk), newMemEP(clk)
	im := everything
	im.Limit = 50
	w, err := Bridge(a, b, Config{Seed: 5, Clock: clk, AtoB: im, BtoA: Impairment{Delay: 3 * time.Millisecond, Duplicate: 0.5}})
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		a.inject(packet(i, 64+r.IntN(1400)))
		if i%3 == 0 {
			b.inject(packet(i, 100))
		}
		if i%5000 == 1000 {
			b.fail.Store(!b.fail.Load())
		}
		clk.Advance(time.Duration(r.IntN(100)) * time.Microsecond)
		if i%1000 == 0 {
			st := w.Stats()
			balance(t, st.AtoB)
			balance(t, st.BtoA)
		}
	}
	st := w.Stats()
	assert.NotZero(t, st.AtoB.InFlight)
	assert.NotZero(t, st.AtoB.Overflow)
	assert.NotZero(t, st.AtoB.WriteErrors)
	require.NoError(t, w.Close())
	a.inject(packet(1, 100)) // after Close: the receiver is gone
	st = w.Stats()
	assert.Zero(t, st.AtoB.InFlight)
	assert.NotZero(t, st.AtoB.Discarded)
	balance(t, st.AtoB)
	balance(t, st.BtoA)
	assert.Equal(t, st.AtoB.Delivered, uint64(len(b.deliveries())))
	assert.Equal(t, st.BtoA.Delivered, uint64(len(a.deliveries())))
}

// TestOfferAfterClose covers a packet a receiver was already handing
// to the wire when it closed.
func TestOfferAfterClose(t *testing.T) {
	clk := clock.NewManual(t0)
	a, b := newMemEP(clk), newMemEP(clk)
	w, err := Bridge(a, b, Config{Clock: clk})
	require.NoError(t, err)
	f := *a.recv.Load()
	require.NoError(t, w.Close())
	f(packet(1, 100))
	st := w.Stats().AtoB
	assert.Equal(t, uint64(1), st.Discarded)
	balance(t, st)
}

// TestRealTime runs a wire on the real clock (a timerfd on Linux): every
// packet arrives, in order, and none sooner than the delay.
func TestRealTime(t *testing.T) {
	inner := newMemEP(nil)
	const delay = 2 * time.Millisecond
	e, err := Wrap(inner, Config{AtoB: Impairment{Delay: delay}})
	require.NoError(t, err)
	defer e.Close()
	sent := make([]time.Time, 200)
	for i := range sent {
		sent[i] = time.Now()
		require.NoError(t, e.WritePacket(packet(i, 100)))
		if i%50 == 0 {
			time.Sleep(3 * time.Millisecond) // let the wire go idle and wake again
		}
	}
	d := inner.wait(t, len(sent))
	for i, x := range d {
		assert.Equal(t, i, x.id)
		assert.GreaterOrEqual(t, x.at.Sub(sent[i]), delay, "packet %d", i)
	}
	balance(t, e.Stats().AtoB)
}

// TestRealTimeClose closes a real-time wire with packets held and a
// delivery running.
func TestRealTimeClose(t *testing.T) {
	a, b := newMemEP(nil), newMemEP(nil)
	w, err := Bridge(a, b, Config{AtoB: Impairment{Delay: time.Hour}, BtoA: Impairment{}})
	require.NoError(t, err)
	for i := range 100 {
		a.inject(packet(i, 100))
		b.inject(packet(i, 100))
	}
	a.wait(t, 100)
	require.NoError(t, w.Close())
	require.NoError(t, w.Close())
	st := w.Stats()
	assert.Equal(t, uint64(100), st.AtoB.Discarded)
	assert.Empty(t, b.deliveries())
	balance(t, st.AtoB)
	balance(t, st.BtoA)
}

// TestDeliverTapAndLate checks that DeliverTap sees each packet handed
// on, with the time it was handed on, and none the wire dropped, and
// that a packet handed on more than LateBound after it was due (here
// behind a receiver that took 3 ms over the one before it) is counted
// in Late and LateMax.
func TestDeliverTapAndLate(t *testing.T) {
	clk := clock.NewManual(t0)
	inner := newMemEP(clk)
	type tapped struct {
		dir Dir
		id  int
		at  time.Time
	}
	var offered, handed []tapped
	e, err := Wrap(inner, Config{
		Clock: clk,
		AtoB:  Impairment{Loss: 1},
		BtoA:  Impairment{Delay: time.Millisecond},
		Tap:   func(d Dir, at time.Time, pkt []byte) { offered = append(offered, tapped{d, idOf(pkt), at}) },
		DeliverTap: func(d Dir, at time.Time, pkt []byte) {
			handed = append(handed, tapped{d, idOf(pkt), at})
		},
	})
	require.NoError(t, err)
	defer e.Close()
	var got []delivery
	e.SetReceiver(func(pkt []byte) {
		got = append(got, delivery{idOf(pkt), clk.Now()})
		if idOf(pkt) == 1 {
			clk.Advance(3 * time.Millisecond) // a slow receiver
		}
	})

	require.NoError(t, e.WritePacket(packet(9, 100))) // AtoB: lost
	inner.inject(packet(1, 100))
	inner.inject(packet(2, 100))
	clk.Advance(time.Millisecond)

	at1, at4 := t0.Add(time.Millisecond), t0.Add(4*time.Millisecond)
	assert.Equal(t, []delivery{{1, at1}, {2, at4}}, got)
	assert.Equal(t, []tapped{{DirAtoB, 9, t0}, {DirBtoA, 1, t0}, {DirBtoA, 2, t0}}, offered)
	assert.Equal(t, []tapped{{DirBtoA, 1, at1}, {DirBtoA, 2, at4}}, handed, "handed on, the lost one not")
	st := e.Stats()
	assert.Equal(t, uint64(1), st.BtoA.Late, "the second, 3 ms after it was due")
	assert.Equal(t, 3*time.Millisecond, st.BtoA.LateMax)
	assert.Zero(t, st.AtoB.Late)
}
