package netem

import (
	"math/rand/v2"
	"time"
)

// held is a packet a direction holds until at.
type held struct {
	at  time.Time
	seq uint64
	buf *[]byte
}

// heldHeap is a min-heap of held packets by (at, seq), typed so that
// pushing a packet allocates nothing.
type heldHeap []held

func (h heldHeap) less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}

func (h *heldHeap) push(x held) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *heldHeap) pop() held {
	s := *h
	x := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = held{}
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s.less(l, m) {
			m = l
		}
		if r < n && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return x
}

// path is the deterministic core of one direction: it decides each
// packet's fate at the time it is offered and holds the packets that
// survive until they are due. It does no locking and keeps no time of
// its own: the caller passes the time and serializes the calls.
type path struct {
	im         Impairment
	queueLimit int
	limit      int
	rng        *rand.Rand
	bad        bool // the Gilbert-Elliott state

	// The rate limiter: tat is when the token bucket would be full
	// again (the generic cell rate algorithm's theoretical arrival
	// time), and departs the departures still to come, in order, from
	// departs[head]. A packet that waits leaves no sooner than the
	// packets before it: it leaves when tat has passed within its own
	// size's worth of tokens, and tat grows by each packet's size.
	tat     time.Time
	departs []time.Time
	head    int

	held heldHeap
	seq  uint64
	c    Counters

	// alloc returns a buffer holding a copy of hdr and payload.
	alloc func(hdr, payload []byte) *[]byte
}

// newPath returns the path of one direction, drawing its decisions from
// a PCG seeded with (seed, stream).
func newPath(im Impairment, seed, stream uint64, alloc func(hdr, payload []byte) *[]byte) *path {
	p := &path{im: im, rng: rand.New(rand.NewPCG(seed, stream)), alloc: alloc}
	p.queueLimit = im.QueueLimit
	if p.queueLimit == 0 {
		p.queueLimit = DefaultQueueLimit
	}
	p.limit = im.Limit
	if p.limit == 0 {
		p.limit = DefaultLimit
	}
	return p
}

// offer decides the fate of a packet (hdr followed by payload) offered
// at now, and holds the copies that survive.
func (p *path) offer(now time.Time, hdr, payload []byte) {
	n := len(hdr) + len(payload)
	p.c.Packets++
	p.c.Bytes += uint64(n)

	// Every packet draws the same numbers, whatever the impairment, so
	// that packet k meets the same fate under one seed however the
	// other rates are set.
	r := p.rng
	uLoss, uMove, uBurst, uDup, uReorder, uJitter := r.Float64(), r.Float64(), r.Float64(), r.Float64(), r.Float64(), r.Float64()

	burstLost := false
	if g := p.im.Bursts; g.enabled() {
		if p.bad {
			if uMove < g.R {
				p.bad = false
			}
		} else if uMove < g.P {
			p.bad = true
			p.c.BadPeriods++
		}
		loss := g.LossGood
		if p.bad {
			p.c.BadPackets++
			loss = g.LossBad
		}
		burstLost = uBurst < loss
	}
	switch {
	case uLoss < p.im.Loss:
		p.c.Lost++
		return
	case burstLost:
		p.c.BurstLost++
		return
	}

	delay := p.im.Delay
	reorder := delay > 0 && uReorder < p.im.Reorder
	if reorder {
		delay = 0
	} else if j := p.im.Jitter; j > 0 {
		delay += time.Duration(float64(2*j)*uJitter) - j
		delay = max(delay, 0)
	}
	delay += p.im.Latency
	copies := 1
	if uDup < p.im.Duplicate {
		copies = 2
	}
	for i := range copies {
		if i == 1 {
			p.c.Duplicated++
		}
		if len(p.held) >= p.limit {
			p.c.Overflow++
			continue
		}
		depart, ok := p.shape(now, n)
		if !ok {
			p.c.QueueDrops++
			continue
		}
		if reorder {
			p.c.Reordered++
		}
		p.seq++
		p.held.push(held{at: depart.Add(delay), seq: p.seq, buf: p.alloc(hdr, payload)})
		p.c.MaxInFlight = max(p.c.MaxInFlight, uint64(len(p.held)))
	}
}

// shape returns when a packet of n bytes offered at now leaves the rate
// limiter, or false if the limiter's queue is full.
func (p *path) shape(now time.Time, n int) (time.Time, bool) {
	if p.im.Rate <= 0 {
		return now, true
	}
	// The packets that have left by now are out of the queue.
	for p.head < len(p.departs) && !p.departs[p.head].After(now) {
		p.head++
	}
	if p.head == len(p.departs) {
		p.departs, p.head = p.departs[:0], 0
	} else if p.head > 1024 && p.head*2 > len(p.departs) {
		p.departs = p.departs[:copy(p.departs, p.departs[p.head:])]
		p.head = 0
	}
	queued := len(p.departs) - p.head
	burst := max(p.im.RateBurst, n)
	// A packet of n bytes finds its tokens once the bucket, full at
	// tat, has refilled to within burst-n bytes of full.
	t := now
	if ready := p.tat.Add(-p.txTime(burst - n)); ready.After(t) {
		t = ready
	}
	if t.After(now) {
		if queued >= p.queueLimit {
			return time.Time{}, false
		}
		p.departs = append(p.departs, t)
		p.c.MaxQueue = max(p.c.MaxQueue, uint64(queued+1))
	}
	p.tat = maxTime(p.tat, t).Add(p.txTime(n))
	return t, true
}

// txTime returns the time the rate takes to earn n bytes of tokens.
func (p *path) txTime(n int) time.Duration {
	return time.Duration(int64(n) * 8 * int64(time.Second) / p.im.Rate)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// next returns when the earliest held packet is due.
func (p *path) next() (time.Time, bool) {
	if len(p.held) == 0 {
		return time.Time{}, false
	}
	return p.held[0].at, true
}

// due moves the packets due by now, in order, to batch.
func (p *path) due(now time.Time, batch []held) []held {
	for len(p.held) > 0 && !p.held[0].at.After(now) {
		batch = append(batch, p.held.pop())
	}
	return batch
}

// discard drops every packet held, passing each buffer to free.
func (p *path) discard(free func(*[]byte)) {
	for _, h := range p.held {
		free(h.buf)
		p.c.Discarded++
	}
	p.held = nil
	p.departs, p.head = nil, 0
}

// counters returns the counters with InFlight filled in.
func (p *path) counters() Counters {
	c := p.c
	c.InFlight = uint64(len(p.held))
	return c
}
