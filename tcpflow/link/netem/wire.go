package netem

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/tcpflow/link"
)

// The streams of the two directions' generators.
const (
	streamAtoB = 0x6e6574656d2d6162 // "netem-ab"
	streamBtoA = 0x6e6574656d2d6261 // "netem-ba"
)

// direction carries the packets of one way: a path deciding their fate,
// a scheduler waking it when they are due, and the function handing
// them on.
type direction struct {
	mu         sync.Mutex
	p          *path
	sched      scheduler
	armedAt    time.Time // the time sched is armed for; zero if none
	closed     bool
	delivering uint64 // packets taken by fire and not yet counted

	fireMu  sync.Mutex // one fire at a time, so deliveries stay in order
	batch   []held
	deliver func(pkt []byte) error
	pool    sync.Pool // *[]byte
	dir     Dir
	tap     func(Dir, time.Time, []byte)
	tapBuf  []byte // hdr and payload joined for tap, under mu

	deliverTap func(Dir, time.Time, []byte) // called under fireMu
}

var errNoReceiver = errors.New("netem: no receiver")

func newDirection(im Impairment, cfg *Config, dir Dir, stream uint64, deliver func([]byte) error) (*direction, error) {
	d := &direction{deliver: deliver, dir: dir, tap: cfg.Tap, deliverTap: cfg.DeliverTap}
	d.pool.New = func() any { b := make([]byte, 0, 2048); return &b }
	d.p = newPath(im, cfg.Seed, stream, d.alloc)
	if cfg.Clock != nil {
		d.sched = newClockScheduler(cfg.Clock, d.fire)
		return d, nil
	}
	s, err := newRealScheduler(d.fire)
	if err != nil {
		return nil, err
	}
	d.sched = s
	return d, nil
}

func (d *direction) alloc(hdr, payload []byte) *[]byte {
	b := d.pool.Get().(*[]byte)
	*b = append(append((*b)[:0], hdr...), payload...)
	return b
}

func (d *direction) free(b *[]byte) { d.pool.Put(b) }

// offer hands a packet to the wire; it copies what it keeps.
func (d *direction) offer(hdr, payload []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.p.c.Packets++
		d.p.c.Bytes += uint64(len(hdr) + len(payload))
		d.p.c.Discarded++
		return
	}
	now := d.sched.now()
	if d.tap != nil {
		pkt := hdr
		if len(payload) > 0 {
			d.tapBuf = append(append(d.tapBuf[:0], hdr...), payload...)
			pkt = d.tapBuf
		}
		d.tap(d.dir, now, pkt)
	}
	d.p.offer(now, hdr, payload)
	d.armLocked()
}

// armLocked arms the scheduler for the earliest packet held, unless it
// is armed for that time or sooner already.
func (d *direction) armLocked() {
	at, ok := d.p.next()
	if !ok || (!d.armedAt.IsZero() && !at.Before(d.armedAt)) {
		return
	}
	d.armedAt = at
	d.sched.arm(at)
}

// fire hands on the packets that are due and arms for the next.
func (d *direction) fire() {
	d.fireMu.Lock()
	defer d.fireMu.Unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.armedAt = time.Time{}
	d.batch = d.p.due(d.sched.now(), d.batch[:0])
	d.delivering = uint64(len(d.batch))
	d.mu.Unlock()

	var ok, okBytes, failed, late uint64
	var lateMax time.Duration
	for i := range d.batch {
		b := d.batch[i].buf
		now := d.sched.now()
		if l := now.Sub(d.batch[i].at); l > LateBound {
			late++
			lateMax = max(lateMax, l)
		}
		if d.deliverTap != nil {
			d.deliverTap(d.dir, now, *b)
		}
		if err := d.deliver(*b); err != nil {
			failed++
		} else {
			ok++
			okBytes += uint64(len(*b))
		}
		d.free(b)
		d.batch[i] = held{}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.p.c.Delivered += ok
	d.p.c.DeliveredB += okBytes
	d.p.c.WriteErrors += failed
	d.p.c.Late += late
	d.p.c.LateMax = max(d.p.c.LateMax, lateMax)
	d.delivering = 0
	if !d.closed {
		d.armLocked()
	}
}

func (d *direction) counters() Counters {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.p.counters()
	c.InFlight += d.delivering
	return c
}

// close discards what is held and stops the scheduler, waiting for a
// fire that is running (whose packets are still handed on).
func (d *direction) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.p.discard(d.free)
	d.mu.Unlock()
	d.sched.close()
}

func newDirections(cfg *Config, ab, ba func([]byte) error) (*direction, *direction, error) {
	if err := cfg.AtoB.validate("AtoB"); err != nil {
		return nil, nil, err
	}
	if err := cfg.BtoA.validate("BtoA"); err != nil {
		return nil, nil, err
	}
	dab, err := newDirection(cfg.AtoB, cfg, DirAtoB, streamAtoB, ab)
	if err != nil {
		return nil, nil, err
	}
	dba, err := newDirection(cfg.BtoA, cfg, DirBtoA, streamBtoA, ba)
	if err != nil {
		dab.close()
		return nil, nil, err
	}
	return dab, dba, nil
}

// Wire is a wire between two link endpoints, made by Bridge. Its
// methods are safe for concurrent use.
type Wire struct {
	a, b      link.Endpoint
	ab, ba    *direction
	closeOnce sync.Once
}

// Bridge joins a and b by a wire: it sets their receivers, and carries
// what a receives to b.WritePacket impaired by cfg.AtoB, and what b
// receives to a.WritePacket impaired by cfg.BtoA. Each direction owns
// one goroutine (or, with cfg.Clock, timers of that clock) that hands
// packets on. The caller keeps a and b and closes them after the wire.
// Bridge returns an error wrapping ErrInvalid for an impairment out of
// range.
func Bridge(a, b link.Endpoint, cfg Config) (*Wire, error) {
	ab, ba, err := newDirections(&cfg, b.WritePacket, a.WritePacket)
	if err != nil {
		return nil, err
	}
	w := &Wire{a: a, b: b, ab: ab, ba: ba}
	a.SetReceiver(func(pkt []byte) { ab.offer(pkt, nil) })
	b.SetReceiver(func(pkt []byte) { ba.offer(pkt, nil) })
	return w, nil
}

// Stats returns a snapshot of both directions' counters.
func (w *Wire) Stats() Stats {
	return Stats{AtoB: w.ab.counters(), BtoA: w.ba.counters()}
}

// Close removes the wire's receivers from the endpoints, discards the
// packets in flight and stops the wire's goroutines, waiting for them.
// It does not close the endpoints. It must not be called from an
// endpoint's receiver.
func (w *Wire) Close() error {
	w.closeOnce.Do(func() {
		w.a.SetReceiver(nil)
		w.b.SetReceiver(nil)
		w.ab.close()
		w.ba.close()
	})
	return nil
}

// Endpoint is a link endpoint that reaches another one, inner, over a
// wire: made by Wrap, it is what a userspace stack attaches to. It
// implements link.Endpoint and link.GatherWriter; its methods are safe
// for concurrent use.
type Endpoint struct {
	inner   link.Endpoint
	out, in *direction
	recv    atomic.Pointer[func([]byte)]
	closed  atomic.Bool
}

var (
	_ link.Endpoint     = (*Endpoint)(nil)
	_ link.GatherWriter = (*Endpoint)(nil)
)

// Wrap returns an endpoint whose packets go to inner over a wire
// impaired by cfg.AtoB, and which receives what inner receives over the
// wire impaired by cfg.BtoA. It sets inner's receiver; the caller keeps
// inner and closes it after the endpoint. Wrap returns an error
// wrapping ErrInvalid for an impairment out of range.
func Wrap(inner link.Endpoint, cfg Config) (*Endpoint, error) {
	e := &Endpoint{inner: inner}
	out, in, err := newDirections(&cfg, inner.WritePacket, e.receive)
	if err != nil {
		return nil, err
	}
	e.out, e.in = out, in
	inner.SetReceiver(func(pkt []byte) { in.offer(pkt, nil) })
	return e, nil
}

func (e *Endpoint) receive(pkt []byte) error {
	f := e.recv.Load()
	if f == nil {
		return errNoReceiver
	}
	(*f)(pkt)
	return nil
}

// MTU returns inner's MTU.
func (e *Endpoint) MTU() int { return e.inner.MTU() }

// WritePacket copies pkt onto the wire towards inner.
func (e *Endpoint) WritePacket(pkt []byte) error { return e.WritePacketv(pkt, nil) }

// WritePacketv copies hdr and payload, as one packet, onto the wire
// towards inner.
func (e *Endpoint) WritePacketv(hdr, payload []byte) error {
	if e.closed.Load() {
		return &net.OpError{Op: "write", Net: "netem", Err: net.ErrClosed}
	}
	if n, mtu := len(hdr)+len(payload), e.inner.MTU(); n > mtu {
		return fmt.Errorf("%w: %d bytes > MTU %d", link.ErrPacketTooBig, n, mtu)
	}
	e.out.offer(hdr, payload)
	return nil
}

// SetReceiver sets the function called with each packet that comes
// over the wire from inner, from the wire's goroutine, one at a time and
// in order; packets arriving while it is nil are counted as WriteErrors.
// See link.Endpoint for the ownership of pkt.
func (e *Endpoint) SetReceiver(f func(pkt []byte)) {
	if f == nil {
		e.recv.Store(nil)
		return
	}
	e.recv.Store(&f)
}

// Stats returns a snapshot of the wire's counters: AtoB towards inner,
// BtoA from it.
func (e *Endpoint) Stats() Stats {
	return Stats{AtoB: e.out.counters(), BtoA: e.in.counters()}
}

// Close removes the receiver from inner, discards the packets in flight
// and stops the wire, waiting for its goroutines. It does not close
// inner. Later calls return an error satisfying
// errors.Is(err, net.ErrClosed). It must not be called from the
// receiver.
func (e *Endpoint) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return &net.OpError{Op: "close", Net: "netem", Err: net.ErrClosed}
	}
	e.inner.SetReceiver(nil)
	e.out.close()
	e.in.close()
	return nil
}
