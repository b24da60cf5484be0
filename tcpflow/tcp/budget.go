package tcp

import (
	"errors"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// The buffer budget bounds the memory that the send and receive buffers
// of all of a Protocol's connections pin together (Options.BufferBudget):
// send rings, receive rings, buffers lent by the link and out-of-order
// data. Each connection charges what it holds to one shared counter, in
// chunks of budgetChunk taken and given back with an atomic add, so
// that the hot path is a comparison with the
// connection's own credit and the counter moves about once per chunk of
// buffer grown or freed.
//
// Back-pressure, when the budget is reached:
//   - a Write queues what the memory it may still take holds, then
//     waits as on a full send buffer (for its ACKs, or for another
//     connection to free memory; its deadline still applies);
//   - a receive window advertises no more than the memory the
//     connection may still take, and data that would need more (the
//     window promised before the budget ran short) is dropped, to be
//     sent again by the peer;
//   - once the budget cannot hold a new connection's floors, SYNs (and
//     SYN cookie ACKs) are answered with a reset and dials fail with
//     ErrBudgetExhausted, counted in Stats.BudgetRefused.
//
// Fairness: each direction of a connection has a floor, a 4 KiB send
// ring and 8 KiB of receive buffer, which it may take from all of the
// budget; beyond its floors a connection grows its buffers only while
// the total stays under the growth limit, 7/8 of the budget. The last
// eighth is left to the floors, so that peers pinning buffers (a zero
// window, a receiver that never reads) hold at most the growth limit
// plus their floors, and a new connection still gets buffers to
// transfer with. The floors are per direction so that an application
// blocked writing while its unread data holds the receive floor (an echo
// server) still gets its send ring, and the other way round.

// Buffer budget constants.
const (
	// DefaultBufferBudget is the budget when Options.BufferBudget is
	// zero (unless 16 connections' full buffers need more).
	DefaultBufferBudget = 256 << 20
	// budgetChunk is the unit of charges.
	budgetChunk = 4 << 10
	// sndFloor and rcvFloor are the memory each direction of a
	// connection may take from the reserve, beyond the growth limit.
	sndFloor = minRing
	rcvFloor = 8 << 10
	// connFloor is the memory a new connection needs: its floors.
	connFloor = sndFloor + rcvFloor
	// minBufferBudget is the smallest budget: a few floors.
	minBufferBudget = 32 << 10
)

// ErrBudgetExhausted is the cause of a dial refused because the buffer
// budget (Options.BufferBudget) cannot hold another connection.
var ErrBudgetExhausted = errors.New("tcp: buffer budget exhausted")

// budget is a Protocol's buffer budget. Its zero value is no budget.
type budget struct {
	limit  int64 // bytes; zero for no budget
	growth int64 // the limit beyond a connection's floor
	used   atomic.Int64

	// Writers waiting for memory. maxThr is the highest "used" at which
	// one of them can go on: freeing memory wakes the waker only once
	// used is at most that.
	nwait   atomic.Int32
	maxThr  atomic.Int64
	mu      sync.Mutex
	waiting map[*endpoint]int64 // endpoint → its threshold
	closed  bool
	started bool
	kick    chan struct{} // one slot
	quit    chan struct{}
	wg      sync.WaitGroup
	woken   []*endpoint // the waker's, reused
}

func (b *budget) init(limit int) {
	if limit <= 0 {
		return
	}
	b.limit = int64(max(limit, minBufferBudget))
	b.growth = b.limit - b.limit/8
	b.waiting = map[*endpoint]int64{}
	b.kick = make(chan struct{}, 1)
	b.quit = make(chan struct{})
}

// take adds n to the memory used if that keeps it within lim. One
// atomic add, undone if it went past lim: takers racing near the limit
// may fail where one of them alone would not, never pass it.
func (b *budget) take(n, lim int64) bool {
	if b.used.Add(n) > lim {
		b.used.Add(-n)
		return false
	}
	return true
}

// force adds n to the memory used, whatever the limit.
func (b *budget) force(n int64) { b.used.Add(n) }

// give takes n back from the memory used, and wakes the writers waiting
// if one of them may now go on.
func (b *budget) give(n int64) {
	u := b.used.Add(-n)
	if b.nwait.Load() > 0 && u <= b.maxThr.Load() {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// slack is the credit a connection may hold beyond the memory it
// holds: up to 16 chunks (at most 1/64 of the growth limit) while the
// budget is less than half used, so that a connection streaming through
// its buffers takes and gives back about once per 64 KiB rather than
// per chunk; one chunk otherwise.
func (b *budget) slack() int {
	if s := min(16*budgetChunk, int(b.growth/64)) &^ (budgetChunk - 1); s > budgetChunk && b.used.Load() < b.growth/2 {
		return s
	}
	return budgetChunk
}

// exhausted reports whether the budget cannot hold another connection's
// floors.
func (b *budget) exhausted() bool {
	return b.limit != 0 && b.limit-b.used.Load() < connFloor
}

// await registers e, whose writer is about to wait until used is at
// most thr. The registration lasts until the waker wakes e, or the
// writer calls unwait. e.mu is held (lock order: e.mu, then b.mu).
func (b *budget) await(e *endpoint, thr int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return // the connections are being aborted: that wakes e
	}
	if !b.started {
		b.started = true
		b.wg.Add(1)
		go b.waker()
	}
	if old, ok := b.waiting[e]; !ok || thr > old {
		b.waiting[e] = thr
	}
	if thr > b.maxThr.Load() || b.nwait.Load() == 0 {
		b.maxThr.Store(thr)
	}
	b.nwait.Store(int32(len(b.waiting)))
	// The memory may have been freed between the writer's check and
	// its registration, before give could see it.
	if b.used.Load() <= thr {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// unwait removes e's registration, if the waker has not: its writer
// woke for another reason (its ACKs, a deadline, a close).
func (b *budget) unwait(e *endpoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.waiting[e]; ok {
		delete(b.waiting, e)
		b.nwait.Store(int32(len(b.waiting)))
	}
}

// waker runs while writers may wait: each kick wakes those that may now
// go on. It takes e.mu with no other lock held, which the goroutines
// giving memory back (holding their own connection's lock) cannot.
func (b *budget) waker() {
	defer b.wg.Done()
	for {
		select {
		case <-b.quit:
			return
		case <-b.kick:
		}
		b.mu.Lock()
		u := b.used.Load()
		maxThr := int64(-1 << 62)
		for e, thr := range b.waiting {
			if u <= thr {
				b.woken = append(b.woken, e)
				delete(b.waiting, e)
			} else {
				maxThr = max(maxThr, thr)
			}
		}
		b.maxThr.Store(maxThr)
		b.nwait.Store(int32(len(b.waiting)))
		b.mu.Unlock()
		for i, e := range b.woken {
			e.mu.Lock()
			e.broadcast()
			e.mu.Unlock()
			b.woken[i] = nil
		}
		b.woken = b.woken[:0]
	}
}

// close stops the waker; the writers still waiting are woken by the
// aborts that follow.
func (b *budget) close() {
	if b.limit == 0 {
		return
	}
	b.mu.Lock()
	b.closed = true
	started := b.started
	clear(b.waiting)
	b.nwait.Store(0)
	b.mu.Unlock()
	if started {
		close(b.quit)
		b.wg.Wait()
	}
}

// waiters returns the number of writers waiting for memory.
func (b *budget) waiters() int { return int(b.nwait.Load()) }

// roundChunk rounds n up to a whole number of chunks.
func roundChunk(n int) int { return (n + budgetChunk - 1) &^ (budgetChunk - 1) }

// rcvMem returns the memory e's receive side pins: its queue, and the
// span of its out-of-order queue (holes included: the span is what the
// window lets the peer fill). e.mu is held.
func (e *endpoint) rcvMem() int {
	n := e.rcvBuf.mem()
	if k := len(e.ooo); k > 0 {
		n += int(e.ooo[0].seq.Size(e.ooo[k-1].end()))
	}
	return n
}

// memHeld returns the memory e's buffers pin. e.mu is held.
func (e *endpoint) memHeld() int { return e.sndBuf.Cap() + e.rcvMem() }

// charge makes e's credit cover held bytes, taking what it lacks from
// the budget: from all of it if floor (the direction that grows stays
// within its floor), else within the growth limit. It reports whether
// it could. e.mu is held.
func (e *endpoint) charge(held int, floor bool) bool {
	if held <= e.charged {
		return true
	}
	b := &e.p.budget
	if b.limit == 0 {
		return true
	}
	need := roundChunk(held - e.charged)
	lim := b.growth
	if floor {
		lim = b.limit
	}
	if s := b.slack(); s > budgetChunk && b.take(int64(need+s), lim) {
		e.charged += need + s
		return true
	}
	if !b.take(int64(need), lim) {
		return false
	}
	e.charged += need
	return true
}

// settle brings e's credit back in line with the memory it holds: it
// charges what grew without a check (out-of-order data moved to the
// receive ring) and gives back what is more than its slack beyond it,
// or everything once e holds nothing. An open connection that holds
// nothing keeps one chunk of credit while the budget is less than half
// used, so that one that sends a little at a time (request and
// response: a ring taken and freed per message) does not touch the
// shared counter each time; a closed one gives everything back.
// e.mu is held.
func (e *endpoint) settle() {
	b := &e.p.budget
	if b.limit == 0 {
		return
	}
	h := e.memHeld()
	switch keep := roundChunk(h); {
	case h > e.charged:
		b.force(int64(keep - e.charged))
		e.charged = keep
	case h == 0 && e.charged > 0:
		if e.charged <= budgetChunk && !e.userClosed && e.state != stateClosed &&
			e.state != stateTimeWait && b.used.Load() < b.growth/2 {
			return
		}
		b.give(int64(e.charged))
		e.charged = 0
	case e.charged-keep > b.slack():
		b.give(int64(e.charged - keep))
		e.charged = keep
	}
}

// sendRoom returns how many of want bytes the send ring may take now
// within the budget, growing the ring to hold them (it may grow less
// than the ring's peak, or not at all); with none, it registers e to be
// woken once memory is freed. e.mu is held.
func (e *endpoint) sendRoom(want int) int {
	r := &e.sndBuf
	l, c := r.Len(), r.Cap()
	if l+want <= c || e.p.budget.limit == 0 {
		return want
	}
	held := e.memHeld()
	for target := r.capFor(l + want); target > c && target >= minRing && target > l; target >>= 1 {
		if e.charge(held-c+target, target <= sndFloor) {
			r.grow(target)
			return min(want, target-l)
		}
	}
	if c > l {
		return c - l
	}
	// Nothing fits: wait until the smallest growth fits.
	smallest := max(2*c, minRing)
	need := roundChunk(max(held-c+smallest-e.charged, 0))
	lim := e.p.budget.growth
	if smallest <= sndFloor {
		lim = e.p.budget.limit
	}
	e.p.budget.await(e, lim-int64(need))
	return 0
}

// rcvRoom returns how many bytes of data the receive side may take now
// within the budget: the free space of its receive ring, or what the
// largest ring the memory it may take holds (within the growth limit,
// or within its floor), whichever is more. Rings grow by powers of two,
// so that is what the window may promise without data being dropped.
// e.mu is held.
func (e *endpoint) rcvRoom() int {
	b := &e.p.budget
	u := b.used.Load()
	credit := e.charged - e.memHeld()
	r := &e.rcvBuf.ring
	c, l := r.Cap(), r.Len()
	room := c - l
	// Within the growth limit: a ring of up to the memory left, plus
	// the ring it replaces.
	if m := credit + int(max(b.growth-u, 0)); m > 0 {
		if big := 1 << (bits.Len(uint(m+c)) - 1); big > c && big >= minRing {
			room = max(room, big-l)
		}
	}
	// Within the floor: the largest ring it holds besides the lent
	// buffers and the out-of-order data.
	other := e.rcvMem() - c
	f := rcvFloor
	for f > minRing && other+f > rcvFloor {
		f >>= 1
	}
	if other+f <= rcvFloor && f > l && f-c <= credit+int(max(b.limit-u, 0)) {
		room = max(room, f-l)
	}
	return max(room, 0)
}

// rcvAdmit returns how many bytes of data, in order at rcvNxt in
// segment s, the receive queue may take within the budget, and whether
// to queue them in the link's buffer (lend) rather than copy them; the
// receive ring is grown to hold them. e.mu is held.
func (e *endpoint) rcvAdmit(s *segment, data []byte) (n int, lend bool) {
	lend = e.lendable(s, data)
	if e.p.budget.limit == 0 || e.userClosed {
		return len(data), lend
	}
	direct := 0
	if e.rdBuf != nil && e.rcvBuf.Len() == 0 {
		// A waiting Read takes the first bytes.
		if direct = len(e.rdBuf) - e.rdN; direct >= len(data) {
			return len(data), false
		}
	}
	held, rm := e.memHeld(), e.rcvMem()
	if lend && e.charge(held+cap(*s.buf), rm+cap(*s.buf) <= rcvFloor) {
		return len(data), true
	}
	r := &e.rcvBuf.ring
	l, c := r.Len(), r.Cap()
	size := l + len(data) - direct
	if size <= c {
		return len(data), false
	}
	// The ring as it would grow (its peak at once), else the smallest
	// that holds the data.
	targets := [2]int{r.capFor(size), 1 << bits.Len(uint(max(size, minRing)-1))}
	for i, target := range targets {
		if i == 1 && target >= targets[0] {
			break
		}
		if e.charge(held-c+target, rm-c+target <= rcvFloor) {
			r.grow(target)
			return len(data), false
		}
	}
	// What fits in the Read's buffer and the ring's free space.
	return min(direct+c-l, len(data)), false
}

// oooAdmit reports whether the out-of-order queue may take data at seq
// within the budget. e.mu is held.
func (e *endpoint) oooAdmit(seq seqnum.Value, data []byte) bool {
	if e.p.budget.limit == 0 || len(data) == 0 {
		return true
	}
	lo, hi := seq, seq.Add(seqnum.Size(len(data)))
	grow := int(lo.Size(hi))
	if k := len(e.ooo); k > 0 {
		a, z := e.ooo[0].seq, e.ooo[k-1].end()
		if a.LessThan(lo) {
			lo = a
		}
		if hi.LessThan(z) {
			hi = z
		}
		grow = int(lo.Size(hi)) - int(a.Size(z))
	}
	return grow <= 0 || e.charge(e.memHeld()+grow, e.rcvMem()+grow <= rcvFloor)
}
