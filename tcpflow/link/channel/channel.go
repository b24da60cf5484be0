// Package channel is an in-memory pair of link endpoints with seeded,
// reproducible fault injection: loss, duplication, reordering, delay and
// corruption. It is the link of the userspace stack's deterministic tests.
//
//	a, b := channel.NewPair(1500, channel.FaultOptions{Seed: 42, Loss: 0.05, Reorder: 0.05})
//	defer a.Close()
//	defer b.Close()
//	b.SetReceiver(func(pkt []byte) { ... }) // pkt is valid only during the call
//	a.WritePacket(pkt)
//	fmt.Printf("%+v\n", a.Stats())
//
// Which packets are lost, duplicated, reordered or corrupted depends only
// on the seed and on the order of WritePacket calls in each direction.
// Delays use FaultOptions.Clock, so with a manual clock delivery times
// are deterministic too.
package channel

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow/link"
)

// DefaultQueueLimit is the number of packets that may be in flight in
// each direction when FaultOptions.QueueLimit is zero.
const DefaultQueueLimit = 1024

// FaultOptions configures the faults applied to packets in both
// directions. The zero value is a perfect link: no loss, no delay, order
// kept. Probabilities are in [0, 1] and apply to each packet
// independently.
type FaultOptions struct {
	// Seed seeds the fault decisions (each direction has its own stream).
	Seed uint64
	// Loss is the probability that a packet is dropped.
	Loss float64
	// Duplicate is the probability that a packet is delivered twice.
	Duplicate float64
	// Reorder is the probability that a packet is held back by
	// ReorderDelay, letting later packets overtake it.
	Reorder float64
	// ReorderDelay is how long a reordered packet is held; zero means
	// one millisecond.
	ReorderDelay time.Duration
	// Corrupt is the probability that one random bit of a packet is
	// flipped.
	Corrupt float64
	// Delay is added to every packet's delivery.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter) to each
	// packet (which also reorders packets).
	Jitter time.Duration
	// QueueLimit bounds the packets in flight in each direction (queued
	// or delayed); more are dropped and counted. Zero means
	// DefaultQueueLimit.
	QueueLimit int
	// Clock times the delays; nil means the real clock. Tests of the
	// stack pass a manual clock and advance it.
	Clock clock.Clock
	// NoChecksumOffload makes ChecksumOffload report false, so that the
	// stacks compute and check TCP checksums even on a link that never
	// corrupts (as over a real device).
	NoChecksumOffload bool
}

func (o *FaultOptions) validate() {
	for _, p := range []float64{o.Loss, o.Duplicate, o.Reorder, o.Corrupt} {
		if !(p >= 0 && p <= 1) {
			panic(fmt.Sprintf("channel: probability %v outside [0, 1]", p))
		}
	}
	if o.Delay < 0 || o.Jitter < 0 || o.ReorderDelay < 0 || o.QueueLimit < 0 {
		panic("channel: negative delay or queue limit")
	}
}

// Stats counts an endpoint's packets. Fault counters (Lost, Duplicated,
// Reordered, Delayed, Corrupted, QueueDrops) count packets this endpoint
// sent.
type Stats struct {
	TxPackets, TxBytes uint64 // accepted by WritePacket
	RxPackets, RxBytes uint64 // handed to this endpoint's receiver
	RxNoReceiver       uint64 // arrived while the receiver was nil

	Lost       uint64 // dropped by the Loss fault
	Duplicated uint64 // delivered an extra time
	Reordered  uint64 // held back by ReorderDelay
	Delayed    uint64 // scheduled through the clock (Delay, Jitter or Reorder)
	Corrupted  uint64 // had a bit flipped
	QueueDrops uint64 // dropped because the queue was full or the peer closed
}

type counters struct {
	txPackets, txBytes, rxPackets, rxBytes, rxNoReceiver        atomic.Uint64
	lost, duplicated, reordered, delayed, corrupted, queueDrops atomic.Uint64
}

// Endpoint is one end of an in-memory link. It implements link.Endpoint;
// its methods are safe for concurrent use.
type Endpoint struct {
	mtu   int
	peer  *Endpoint
	opts  FaultOptions
	clk   clock.Clock
	stats counters
	recv  atomic.Pointer[func([]byte)]
	lend  atomic.Pointer[func(*[]byte) bool]
	pool  sync.Pool // of *[]byte with capacity mtu

	// in is the direction carrying packets to this endpoint; the fault
	// decisions for them are drawn from in.rng.
	in direction

	done     chan struct{} // closed by Close
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	isClosed bool
}

var (
	_ link.Endpoint          = (*Endpoint)(nil)
	_ link.GatherWriter      = (*Endpoint)(nil)
	_ link.ChecksumOffloader = (*Endpoint)(nil)
	_ link.Lender            = (*Endpoint)(nil)
)

// direction is the state of packets travelling to one endpoint.
type direction struct {
	mu      sync.Mutex
	rng     *rand.Rand
	seq     uint64
	ready   []*[]byte // due for delivery, in order
	pending delayHeap // waiting for the clock
	timer   clock.Timer
	timerAt time.Time
	closed  bool
	wake    chan struct{} // one slot: ready is not empty
}

type delayed struct {
	at  time.Time
	seq uint64
	buf *[]byte
}

type delayHeap []delayed

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h delayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// NewPair returns two connected endpoints with the given MTU, applying
// opts to the packets of both directions. Each endpoint owns one
// goroutine that calls its receiver; Close both to stop them. NewPair
// panics if mtu < 1 or opts holds a probability outside [0, 1] or a
// negative duration.
func NewPair(mtu int, opts FaultOptions) (a, b *Endpoint) {
	if mtu < 1 {
		panic("channel: MTU < 1")
	}
	opts.validate()
	if opts.QueueLimit == 0 {
		opts.QueueLimit = DefaultQueueLimit
	}
	if opts.ReorderDelay == 0 {
		opts.ReorderDelay = time.Millisecond
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.Real()
	}
	a = newEndpoint(mtu, opts, clk, 0x6c696e6b2d61) // "link-a"
	b = newEndpoint(mtu, opts, clk, 0x6c696e6b2d62) // "link-b"
	a.peer, b.peer = b, a
	a.start()
	b.start()
	return a, b
}

func newEndpoint(mtu int, opts FaultOptions, clk clock.Clock, stream uint64) *Endpoint {
	e := &Endpoint{mtu: mtu, opts: opts, clk: clk, done: make(chan struct{})}
	e.in.rng = rand.New(rand.NewPCG(opts.Seed, stream))
	e.in.wake = make(chan struct{}, 1)
	e.pool.New = func() any { b := make([]byte, 0, mtu); return &b }
	return e
}

func (e *Endpoint) start() {
	e.wg.Add(1)
	go e.deliverLoop()
}

// MTU returns the link's MTU.
func (e *Endpoint) MTU() int { return e.mtu }

// SetReceiver sets the function called with each packet that reaches
// this endpoint. See link.Endpoint for the ownership of pkt.
func (e *Endpoint) SetReceiver(f func(pkt []byte)) {
	if f == nil {
		e.recv.Store(nil)
		return
	}
	e.recv.Store(&f)
}

// SetLendingReceiver sets a receiver that may keep the packets it is
// given (see link.Lender); it takes precedence over SetReceiver's.
func (e *Endpoint) SetLendingReceiver(f func(buf *[]byte) bool) {
	if f == nil {
		e.lend.Store(nil)
		return
	}
	e.lend.Store(&f)
}

// Return gives back a packet buffer a lending receiver kept.
func (e *Endpoint) Return(buf *[]byte) { e.pool.Put(buf) }

// Stats returns a snapshot of the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	c := &e.stats
	return Stats{
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(),
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
		RxNoReceiver: c.rxNoReceiver.Load(),
		Lost:         c.lost.Load(), Duplicated: c.duplicated.Load(),
		Reordered: c.reordered.Load(), Delayed: c.delayed.Load(),
		Corrupted: c.corrupted.Load(), QueueDrops: c.queueDrops.Load(),
	}
}

func (e *Endpoint) closed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// WritePacket copies pkt and sends it to the peer, applying the faults.
func (e *Endpoint) WritePacket(pkt []byte) error { return e.WritePacketv(pkt, nil) }

// WritePacketv copies hdr and payload, one after the other, into one
// packet and sends it to the peer, applying the faults.
func (e *Endpoint) WritePacketv(hdr, payload []byte) error {
	if e.closed() {
		return &net.OpError{Op: "write", Net: "channel", Err: net.ErrClosed}
	}
	if n := len(hdr) + len(payload); n > e.mtu {
		return fmt.Errorf("%w: %d bytes > MTU %d", link.ErrPacketTooBig, n, e.mtu)
	}
	e.stats.txPackets.Add(1)
	e.stats.txBytes.Add(uint64(len(hdr) + len(payload)))
	e.peer.arrive(e, hdr, payload)
	return nil
}

// ChecksumOffload reports whether the link carries packets intact: true
// unless it corrupts some (FaultOptions.Corrupt) or offload was turned
// off (FaultOptions.NoChecksumOffload).
func (e *Endpoint) ChecksumOffload() bool {
	return e.opts.Corrupt == 0 && !e.opts.NoChecksumOffload
}

func (e *Endpoint) getBuf(hdr, payload []byte) *[]byte {
	b := e.pool.Get().(*[]byte)
	*b = append(append((*b)[:0], hdr...), payload...)
	return b
}

// arrive applies the faults to a packet sent by from and queues it for
// delivery to e.
func (e *Endpoint) arrive(from *Endpoint, hdr, payload []byte) {
	d := &e.in
	o := &e.opts
	d.mu.Lock()
	defer d.mu.Unlock()
	// Draw every decision for every packet, so that changing one rate
	// does not change the other faults' choices.
	r := d.rng
	lose, dup, reorder, corrupt := r.Float64() < o.Loss, r.Float64() < o.Duplicate, r.Float64() < o.Reorder, r.Float64() < o.Corrupt
	bit := r.Uint64()
	jitter := time.Duration(r.Uint64() >> 1) // non-negative
	if lose {
		from.stats.lost.Add(1)
		return
	}
	if d.closed {
		from.stats.queueDrops.Add(1)
		return
	}
	copies := 1
	if dup {
		copies = 2
	}
	delay := o.Delay
	if o.Jitter > 0 {
		delay += jitter % o.Jitter
	}
	var now time.Time
	if delay > 0 || reorder || d.pending.Len() > 0 {
		now = e.clk.Now()
	}
	if reorder {
		delay += o.ReorderDelay
		from.stats.reordered.Add(1)
	}
	for i := range copies {
		if len(d.ready)+d.pending.Len() >= o.QueueLimit {
			from.stats.queueDrops.Add(1)
			return
		}
		buf := e.getBuf(hdr, payload)
		if corrupt && i == 0 && len(*buf) > 0 {
			n := bit % uint64(len(*buf)*8)
			(*buf)[n/8] ^= 1 << (n % 8)
			from.stats.corrupted.Add(1)
		}
		if i == 1 {
			from.stats.duplicated.Add(1)
		}
		if delay <= 0 && (d.pending.Len() == 0 || d.pending[0].at.After(now)) {
			d.ready = append(d.ready, buf)
			select {
			case d.wake <- struct{}{}:
			default:
			}
			continue
		}
		// Delayed, or queued behind packets already due but not yet
		// moved by the timer, so it does not overtake them.
		if delay > 0 {
			from.stats.delayed.Add(1)
		}
		d.seq++
		heap.Push(&d.pending, delayed{at: now.Add(delay), seq: d.seq, buf: buf})
		e.armLocked()
	}
}

// armLocked makes sure a timer is set for the earliest pending packet.
func (e *Endpoint) armLocked() {
	d := &e.in
	if d.pending.Len() == 0 || d.closed {
		return
	}
	at := d.pending[0].at
	if d.timer != nil {
		if !at.Before(d.timerAt) {
			return // the armed timer fires first
		}
		if !d.timer.Stop() {
			// It is firing now and will re-arm after taking d.mu.
			return
		}
		e.wg.Done()
	}
	d.timerAt = at
	e.wg.Add(1)
	d.timer = e.clk.AfterFunc(max(at.Sub(e.clk.Now()), 0), e.fire)
}

// fire moves the packets that are due from pending to ready.
func (e *Endpoint) fire() {
	defer e.wg.Done()
	d := &e.in
	d.mu.Lock()
	defer d.mu.Unlock()
	d.timer = nil
	if d.closed {
		return
	}
	now := e.clk.Now()
	moved := false
	for d.pending.Len() > 0 && !d.pending[0].at.After(now) {
		p := heap.Pop(&d.pending).(delayed)
		d.ready = append(d.ready, p.buf)
		moved = true
	}
	if moved {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	e.armLocked()
}

// deliverLoop hands ready packets to the receiver until Close.
func (e *Endpoint) deliverLoop() {
	defer e.wg.Done()
	d := &e.in
	var batch []*[]byte
	for {
		select {
		case <-e.done:
			return
		case <-d.wake:
		}
		d.mu.Lock()
		batch, d.ready = d.ready, batch[:0]
		d.mu.Unlock()
		for i, buf := range batch {
			if e.closed() {
				return
			}
			n := uint64(len(*buf)) // the receiver may keep buf
			kept, delivered := false, true
			if f := e.lend.Load(); f != nil {
				kept = (*f)(buf)
			} else if f := e.recv.Load(); f != nil {
				(*f)(*buf)
			} else {
				delivered = false
				e.stats.rxNoReceiver.Add(1)
			}
			if delivered {
				e.stats.rxPackets.Add(1)
				e.stats.rxBytes.Add(n)
			}
			if !kept {
				e.pool.Put(buf)
			}
			batch[i] = nil
		}
	}
}

// Close stops the endpoint: packets in flight to it are discarded, its
// delivery goroutine and pending timers are stopped and waited for, and
// packets its peer sends afterwards are dropped (counted as QueueDrops
// by the peer). It must not be called from the receiver.
func (e *Endpoint) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.isClosed {
		return &net.OpError{Op: "close", Net: "channel", Err: net.ErrClosed}
	}
	e.isClosed = true
	close(e.done)
	d := &e.in
	d.mu.Lock()
	d.closed = true
	if d.timer != nil && d.timer.Stop() {
		d.timer = nil
		e.wg.Done()
	}
	d.ready = nil
	d.pending = nil
	d.mu.Unlock()
	e.wg.Wait()
	return nil
}
