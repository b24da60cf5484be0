package netem

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_700_000_000, 0)

// packet returns an n-byte packet numbered id.
func packet(id, n int) []byte {
	b := make([]byte, max(n, 4))
	binary.BigEndian.PutUint32(b, uint32(id))
	return b
}

func idOf(b []byte) int { return int(binary.BigEndian.Uint32(b)) }

func newTestPath(im Impairment, seed uint64) *path {
	return newPath(im, seed, streamAtoB, func(hdr, payload []byte) *[]byte {
		b := append(append([]byte(nil), hdr...), payload...)
		return &b
	})
}

// delivery is a packet handed on by a path: its number and time.
type delivery struct {
	id int
	at time.Time
}

// run offers count packets of size bytes to a path, one every gap from
// t0, and returns what it hands on, in order, with its counters.
func run(im Impairment, seed uint64, count, size int, gap time.Duration) ([]delivery, Counters) {
	p := newTestPath(im, seed)
	var out []delivery
	var batch []held
	now := t0
	drain := func(until time.Time) {
		for {
			at, ok := p.next()
			if !ok || at.After(until) {
				return
			}
			batch = p.due(at, batch[:0])
			for _, h := range batch {
				out = append(out, delivery{idOf(*h.buf), h.at})
				p.c.Delivered++
			}
		}
	}
	for i := range count {
		drain(now)
		p.offer(now, packet(i, size), nil)
		now = now.Add(gap)
	}
	drain(now.Add(time.Hour))
	return out, p.counters()
}

// everything is an impairment using every fault at once.
var everything = Impairment{
	Loss: 0.02, Bursts: Bursts(0.01, 3), Duplicate: 0.01,
	Rate: 100 * Mbps, QueueLimit: 32,
	Delay: time.Millisecond, Jitter: 100 * time.Microsecond, Reorder: 0.25,
}

func TestPathReproducible(t *testing.T) {
	a, ca := run(everything, 7, 20000, 1500, 100*time.Microsecond)
	b, cb := run(everything, 7, 20000, 1500, 100*time.Microsecond)
	assert.Equal(t, a, b, "same seed, same deliveries")
	assert.Equal(t, ca, cb)
	for _, n := range []uint64{ca.Lost, ca.BurstLost, ca.Duplicated, ca.Reordered, ca.QueueDrops} {
		assert.NotZero(t, n, "every fault occurred: %+v", ca)
	}
	c, cc := run(everything, 8, 20000, 1500, 100*time.Microsecond)
	assert.NotEqual(t, a, c, "another seed, other deliveries")
	assert.NotEqual(t, ca.Lost, cc.Lost)

	// Packet k's fate does not depend on the other faults' rates: the
	// same packets are lost with and without duplication and jitter.
	lostIDs := func(im Impairment) map[int]bool {
		d, _ := run(im, 7, 5000, 100, time.Millisecond)
		got := map[int]bool{}
		for _, x := range d {
			got[x.id] = true
		}
		lost := map[int]bool{}
		for i := range 5000 {
			if !got[i] {
				lost[i] = true
			}
		}
		return lost
	}
	plain := lostIDs(Impairment{Loss: 0.05})
	assert.NotEmpty(t, plain)
	assert.Equal(t, plain, lostIDs(Impairment{Loss: 0.05, Duplicate: 0.3, Jitter: time.Millisecond, Delay: time.Millisecond}))
}

// within checks that got is within tol of want.
func within(t *testing.T, want, got, tol float64, what string) {
	t.Helper()
	assert.InDelta(t, want, got, tol, "%s: want %.4f, got %.4f", what, want, got)
}

func TestPathLoss(t *testing.T) {
	const n = 200_000
	for _, p := range []float64{0.01, 0.05, 0.2} {
		_, c := run(Impairment{Loss: p}, 1, n, 100, time.Microsecond)
		sigma := math.Sqrt(p * (1 - p) / n)
		within(t, p, float64(c.Lost)/n, 5*sigma, "loss rate")
		assert.Equal(t, uint64(n)-c.Lost, c.Delivered)
	}
}

func TestPathBursts(t *testing.T) {
	// Some hundreds of bursts at least: the tolerances are a fifth.
	const n = 250_000
	for _, tc := range []struct{ loss, burst float64 }{{0.02, 4}, {0.05, 2}, {0.01, 10}} {
		g := Bursts(tc.loss, tc.burst)
		within(t, tc.loss, g.LossRate(), 1e-12, "model's loss rate")
		d, c := run(Impairment{Bursts: g}, 3, n, 64, time.Microsecond)
		within(t, tc.loss, float64(c.BurstLost)/n, tc.loss/5, "loss rate")
		within(t, tc.burst, float64(c.BadPackets)/float64(c.BadPeriods), tc.burst/5, "mean bad period")
		// Losses come in runs of consecutive packets, as long as the bad
		// periods (every packet of a bad period is lost).
		runs, lost, prev := 0, 0, -1
		for _, x := range d {
			if x.id > prev+1 {
				runs++
				lost += x.id - prev - 1
			}
			prev = x.id
		}
		within(t, float64(c.BadPackets)/float64(c.BadPeriods), float64(lost)/float64(runs), 0.01, "mean run of losses")
	}
	// Losses in the good state and a bad state that keeps some packets.
	g := GilbertElliott{P: 0.01, R: 0.1, LossGood: 0.001, LossBad: 0.5}
	_, c := run(Impairment{Bursts: g}, 3, n, 64, time.Microsecond)
	within(t, g.LossRate(), float64(c.BurstLost)/n, g.LossRate()/5, "loss rate")
}

func TestPathDelayJitterReorder(t *testing.T) {
	const n, gap = 10000, 10 * time.Microsecond
	sent := func(id int) time.Time { return t0.Add(time.Duration(id) * gap) }

	d, _ := run(Impairment{Delay: time.Millisecond}, 1, n, 100, gap)
	require.Len(t, d, n)
	for i, x := range d {
		assert.Equal(t, i, x.id, "order kept")
		assert.Equal(t, sent(x.id).Add(time.Millisecond), x.at, "exact delay")
	}

	const j = 200 * time.Microsecond
	d, _ = run(Impairment{Delay: time.Millisecond, Jitter: j}, 1, n, 100, gap)
	require.Len(t, d, n)
	var lo, hi time.Duration = time.Hour, 0
	outOfOrder := 0
	for i, x := range d {
		delay := x.at.Sub(sent(x.id))
		lo, hi = min(lo, delay), max(hi, delay)
		if i > 0 && x.id < d[i-1].id {
			outOfOrder++
		}
	}
	assert.GreaterOrEqual(t, lo, time.Millisecond-j)
	assert.Less(t, lo, time.Millisecond-j+10*time.Microsecond, "the spread reaches down")
	assert.LessOrEqual(t, hi, time.Millisecond+j)
	assert.Greater(t, hi, time.Millisecond+j-10*time.Microsecond, "and up")
	assert.NotZero(t, outOfOrder, "jitter larger than the gap reorders")

	// Jitter wider than the delay: no packet leaves before it is sent.
	d, _ = run(Impairment{Delay: 100 * time.Microsecond, Jitter: 300 * time.Microsecond}, 1, n, 100, gap)
	zero := 0
	for _, x := range d {
		delay := x.at.Sub(sent(x.id))
		require.GreaterOrEqual(t, delay, time.Duration(0))
		if delay == 0 {
			zero++
		}
	}
	within(t, 1.0/3, float64(zero)/n, 0.02, "share of delays cut to zero")

	d, c := run(Impairment{Delay: time.Millisecond, Reorder: 0.25}, 1, n, 100, gap)
	require.Len(t, d, n)
	early := 0
	for _, x := range d {
		switch delay := x.at.Sub(sent(x.id)); delay {
		case 0:
			early++
		case time.Millisecond:
		default:
			t.Fatalf("packet %d delayed %v", x.id, delay)
		}
	}
	assert.Equal(t, uint64(early), c.Reordered)
	within(t, 0.25, float64(early)/n, 0.02, "reordered share")
	// A packet sent at once overtakes the 100 sent in the millisecond
	// before it.
	pos := map[int]int{}
	for i, x := range d {
		pos[x.id] = i
	}
	overtook := 0
	for _, x := range d {
		if x.at.Equal(sent(x.id)) && x.id > 200 {
			overtook += x.id - pos[x.id]
		}
	}
	assert.Greater(t, overtook, 0)

	// Latency comes on top, for the packets sent ahead too.
	const lat = 40 * time.Microsecond
	d, c = run(Impairment{Delay: time.Millisecond, Reorder: 0.25, Latency: lat}, 1, n, 100, gap)
	require.Len(t, d, n)
	for _, x := range d {
		if delay := x.at.Sub(sent(x.id)); delay != lat && delay != time.Millisecond+lat {
			t.Fatalf("packet %d delayed %v", x.id, delay)
		}
	}
	assert.NotZero(t, c.Reordered)

	// Without a delay, reordering does nothing (as netem).
	d, c = run(Impairment{Reorder: 0.5}, 1, 1000, 100, gap)
	for i, x := range d {
		assert.Equal(t, i, x.id)
	}
	assert.Zero(t, c.Reordered)
}

func TestPathDuplicate(t *testing.T) {
	const n = 100_000
	d, c := run(Impairment{Duplicate: 0.1, Delay: time.Millisecond}, 1, n, 100, time.Microsecond)
	within(t, 0.1, float64(c.Duplicated)/n, 0.005, "duplicated share")
	assert.Len(t, d, n+int(c.Duplicated))
	twice := 0
	for i := 1; i < len(d); i++ {
		if d[i].id == d[i-1].id {
			twice++
			assert.Equal(t, d[i-1].at, d[i].at, "the copy follows at once")
		}
	}
	assert.Equal(t, int(c.Duplicated), twice)
}

func TestPathRate(t *testing.T) {
	// 100 Mbit/s: a 1500-byte packet every 120 µs. A burst of 100
	// packets at once: one leaves at once, 64 queue, 35 are dropped.
	const per = 120 * time.Microsecond
	im := Impairment{Rate: 100 * Mbps, QueueLimit: 64}
	d, c := run(im, 1, 100, 1500, 0)
	require.Len(t, d, 65)
	for k, x := range d {
		assert.Equal(t, k, x.id)
		assert.Equal(t, t0.Add(time.Duration(k)*per), x.at)
	}
	assert.Equal(t, uint64(35), c.QueueDrops)
	assert.Equal(t, uint64(64), c.MaxQueue)

	// Offered at twice the rate for a second: the rate holds, the queue
	// stays at its limit and about half the packets are dropped.
	d, c = run(im, 1, 16667, 1500, per/2)
	span := d[len(d)-1].at.Sub(d[0].at)
	bits := float64(len(d)-1) * 1500 * 8
	within(t, 100e6, bits/span.Seconds(), 1e3, "rate")
	assert.Equal(t, uint64(64), c.MaxQueue)
	within(t, 0.5, float64(c.QueueDrops)/16667, 0.01, "dropped share")
	for i := 1; i < len(d); i++ {
		require.GreaterOrEqual(t, d[i].at.Sub(d[i-1].at), per, "no two packets closer than the rate allows")
	}

	// Below the rate nothing waits.
	d, c = run(im, 1, 1000, 1500, 2*per)
	for _, x := range d {
		assert.Equal(t, t0.Add(time.Duration(x.id)*2*per), x.at)
	}
	assert.Zero(t, c.QueueDrops)

	// A token bucket of ten packets lets ten through at once, then one
	// per 120 µs; it refills while the link is idle.
	im.RateBurst = 15000
	p := newTestPath(im, 1)
	for i := range 12 {
		p.offer(t0, packet(i, 1500), nil)
	}
	var batch []held
	batch = p.due(t0, batch)
	assert.Len(t, batch, 10)
	batch = p.due(t0.Add(per), batch[:0])
	assert.Len(t, batch, 1)
	batch = p.due(t0.Add(2*per), batch[:0])
	assert.Len(t, batch, 1)
	later := t0.Add(time.Second)
	for i := range 10 {
		p.offer(later, packet(100+i, 1500), nil)
	}
	assert.Len(t, p.due(later, batch[:0]), 10, "refilled")

	// The rate counts bytes: 100-byte packets go 15 times as often.
	d, _ = run(Impairment{Rate: 100 * Mbps}, 1, 10, 100, 0)
	assert.Equal(t, t0.Add(9*8*time.Microsecond), d[9].at)

	// Packets of mixed sizes through a deep bucket leave in order.
	r := rand.New(rand.NewPCG(4, 4))
	p = newTestPath(Impairment{Rate: 10 * Mbps, RateBurst: 20000, QueueLimit: 1 << 20}, 1)
	now := t0
	for i := range 5000 {
		p.offer(now, packet(i, 40+r.IntN(1460)), nil)
		now = now.Add(time.Duration(r.IntN(1000)) * time.Microsecond / 2)
	}
	last := -1
	for _, h := range p.due(now.Add(time.Hour), nil) {
		require.Equal(t, last+1, idOf(*h.buf))
		last++
	}
	assert.Equal(t, 4999, last)
}

func TestPathLimit(t *testing.T) {
	_, c := run(Impairment{Delay: time.Second, Limit: 10}, 1, 20, 100, time.Millisecond)
	assert.Equal(t, uint64(10), c.Overflow)
	assert.Equal(t, uint64(10), c.Delivered)
	assert.Equal(t, uint64(10), c.MaxInFlight)
}

// TestPathRateThenDelay checks the order of the stages: the delay is
// added to the time a packet leaves the rate limiter, and reordered
// packets skip only the delay.
func TestPathRateThenDelay(t *testing.T) {
	const per = 120 * time.Microsecond
	d, _ := run(Impairment{Rate: 100 * Mbps, Delay: time.Millisecond}, 1, 5, 1500, 0)
	for k, x := range d {
		assert.Equal(t, t0.Add(time.Duration(k)*per+time.Millisecond), x.at)
	}
	d, c := run(Impairment{Rate: 100 * Mbps, Delay: time.Millisecond, Reorder: 1}, 1, 5, 1500, 0)
	assert.Equal(t, uint64(5), c.Reordered)
	for k, x := range d {
		assert.Equal(t, t0.Add(time.Duration(k)*per), x.at)
	}
}

func TestValidate(t *testing.T) {
	for _, im := range []Impairment{
		{Loss: -0.1}, {Loss: 1.1}, {Loss: math.NaN()}, {Reorder: 2}, {Duplicate: -1},
		{Bursts: GilbertElliott{P: 0.1}}, {Bursts: GilbertElliott{P: 0.1, R: 0.5, LossBad: 3}},
		{Delay: -1}, {Jitter: -1}, {Latency: -1}, {Rate: -1}, {QueueLimit: -1}, {Limit: -1}, {RateBurst: -1},
	} {
		_, err := Wrap(newMemEP(nil), Config{BtoA: im})
		assert.ErrorIs(t, err, ErrInvalid, "%+v", im)
		assert.Contains(t, err.Error(), "netem: ")
		assert.Contains(t, err.Error(), "BtoA")
	}
	assert.NoError(t, everything.validate("x"))
}
