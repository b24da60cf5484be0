package vchan

import (
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one end of a vchan: two rings in shared memory, one per
// direction. It implements net.Conn, plus CloseWrite, Writev and the
// Nodelay variants conduit's flows have.
//
// Multiple goroutines may invoke methods on a Conn simultaneously;
// concurrent Reads (or concurrent Writes) are serialised.
//
// Read returns io.EOF only once the ring is drained and the peer has
// closed or half-closed (CloseWrite). Write to a peer that has closed
// fails with ErrPeerClosed (which matches net.ErrClosed). A peer process
// that dies without closing is noticed within Config.LivenessInterval and
// blocked calls fail with ErrPeerDied. A peer that breaks the protocol
// makes calls fail with ErrProtocol.
type Conn struct {
	e            *endpoint
	be           backend
	laddr, raddr *Addr
	liveness     time.Duration
	onClose      func() // removes rendezvous leftovers; may be nil

	readMu, writeMu sync.Mutex
	rdSpin          spinPolicy // guarded by readMu
	wrSpin          spinPolicy // guarded by writeMu
	closed          atomic.Bool
	wrShut          atomic.Bool
	rdDeadline      atomic.Int64 // unix nanoseconds, 0 = none
	wrDeadline      atomic.Int64
	closeOnce       sync.Once
	closeErr        error
}

var _ net.Conn = (*Conn)(nil)

func newConn(e *endpoint, be backend, laddr, raddr *Addr, cfg *Config, onClose func()) *Conn {
	spin := cfg.spinTime()
	return &Conn{e: e, be: be, laddr: laddr, raddr: raddr, liveness: cfg.liveness(), onClose: onClose,
		rdSpin: newSpinPolicy(spin), wrSpin: newSpinPolicy(spin)}
}

// Read reads from the ring the peer writes. See Conn for its errors.
func (c *Conn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.closed.Load() {
		return 0, opError("read", c.raddr, net.ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	e := c.e
	ready := func() bool {
		n, err := e.readable()
		return n > 0 || err != nil || c.closed.Load() ||
			atomic.LoadUint32(e.peerShut) != 0 || e.peerLive.load() == liveExited
	}
	for {
		n, err := e.readable()
		if err != nil {
			return 0, opError("read", c.raddr, err)
		}
		if n > 0 {
			return e.read(p, n), nil
		}
		if c.closed.Load() {
			return 0, opError("read", c.raddr, net.ErrClosed)
		}
		if atomic.LoadUint32(e.peerShut) != 0 || e.peerLive.load() == liveExited {
			// The peer publishes its data before its flags: look again.
			n, err := e.readable()
			if err != nil {
				return 0, opError("read", c.raddr, err)
			}
			if n > 0 {
				return e.read(p, n), nil
			}
			return 0, io.EOF
		}
		if err := c.block(ready, notifyWrite, &c.rdDeadline, &c.rdSpin); err != nil {
			if n, _ := e.readable(); n > 0 {
				return e.read(p, n), nil // drain what a dead peer left
			}
			return 0, opError("read", c.raddr, err)
		}
	}
}

// Write writes all of p into the ring, blocking while it is full.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.writev([][]byte{p})
	return int(n), err
}

// WriteNodelay is Write: a vchan has no Nagle delay, every write is
// visible to the peer at once.
func (c *Conn) WriteNodelay(p []byte) (int, error) { return c.Write(p) }

// Writev writes all the buffers, copying each into the ring in one pass
// and publishing the producer index once per pass (not once per buffer).
func (c *Conn) Writev(bufs net.Buffers) (int64, error) {
	return c.writev(bufs)
}

// WritevNodelay is Writev.
func (c *Conn) WritevNodelay(bufs net.Buffers) (int64, error) { return c.writev(bufs) }

func (c *Conn) writev(in [][]byte) (int64, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	bufs := make([][]byte, 0, len(in))
	for _, b := range in {
		if len(b) > 0 {
			bufs = append(bufs, b)
		}
	}
	e := c.e
	ready := func() bool {
		n, err := e.writable()
		return n > 0 || err != nil || c.closed.Load() || c.wrShut.Load() || e.peerLive.load() == liveExited
	}
	var total int64
	for len(bufs) > 0 {
		if c.closed.Load() || c.wrShut.Load() {
			return total, opError("write", c.raddr, net.ErrClosed)
		}
		if e.peerLive.load() == liveExited {
			return total, opError("write", c.raddr, ErrPeerClosed)
		}
		space, err := e.writable()
		if err != nil {
			return total, opError("write", c.raddr, err)
		}
		if space > 0 {
			total += int64(e.write(&bufs, space))
			continue
		}
		if err := c.block(ready, notifyRead, &c.wrDeadline, &c.wrSpin); err != nil {
			return total, opError("write", c.raddr, err)
		}
	}
	return total, nil
}

// block waits until ready might return true: it polls for the spin
// policy's budget, then asks the peer for a notification (bit), checks
// once more and sleeps on the backend's event. It returns
// os.ErrDeadlineExceeded when the deadline has passed and ErrPeerDied
// when the peer's process is gone; nil means "look again".
func (c *Conn) block(ready func() bool, bit uint8, deadline *atomic.Int64, sp *spinPolicy) error {
	start := time.Now()
	if d := deadline.Load(); d != 0 && start.UnixNano() >= d {
		return os.ErrDeadlineExceeded
	}
	if budget := sp.budget(); budget > 0 {
		for i := 1; ; i++ {
			if ready() {
				sp.spun(true)
				return nil
			}
			if i%64 == 0 {
				if time.Since(start) > budget {
					sp.spun(false)
					break
				}
				runtime.Gosched()
			}
		}
	}
	defer func() { sp.slept(time.Since(start)) }()
	lastCheck := start
	for {
		tok := c.be.prepare()
		c.e.requestNotify(bit)
		if ready() {
			return nil
		}
		now := time.Now()
		sleep := c.liveness - now.Sub(lastCheck)
		if d := deadline.Load(); d != 0 {
			if now.UnixNano() >= d {
				return os.ErrDeadlineExceeded
			}
			sleep = min(sleep, time.Duration(d-now.UnixNano()))
		}
		if sleep > 0 {
			c.be.wait(tok, sleep)
			if ready() {
				return nil
			}
		}
		if time.Since(lastCheck) >= c.liveness {
			if !c.be.peerAlive() {
				return ErrPeerDied
			}
			lastCheck = time.Now()
		}
		if d := deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
			return os.ErrDeadlineExceeded
		}
		if c.closed.Load() {
			return nil
		}
	}
}

// CloseWrite shuts down the writing side: the peer's Read returns io.EOF
// once it has read what was written before. Reading goes on.
func (c *Conn) CloseWrite() error {
	if c.closed.Load() {
		return opError("close", c.raddr, net.ErrClosed)
	}
	c.wrShut.Store(true)
	c.be.kick()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed.Load() {
		return opError("close", c.raddr, net.ErrClosed)
	}
	atomic.StoreUint32(c.e.myShut, 1) // after every byte written
	c.be.signal()
	return nil
}

// Close closes the vchan: the live flag goes to 0, the peer is signalled,
// blocked calls return net.ErrClosed, and the shared memory is unmapped
// once they have.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.closed.Store(true)
		c.be.kick()
		c.readMu.Lock()
		c.writeMu.Lock()
		c.e.myLive.store(liveExited)
		c.be.signal() // unconditionally, as libxenvchan_close does
		c.closeErr = c.be.release()
		c.writeMu.Unlock()
		c.readMu.Unlock()
		if c.onClose != nil {
			c.onClose()
		}
	})
	if !first {
		return opError("close", c.raddr, net.ErrClosed)
	}
	return opError("close", c.raddr, c.closeErr)
}

// LocalAddr returns this end's address.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for Read; blocked Reads observe it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdDeadline.Store(deadlineNanos(t))
	c.be.kick()
	return nil
}

// SetWriteDeadline sets the deadline for Write; blocked Writes observe it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wrDeadline.Store(deadlineNanos(t))
	c.be.kick()
	return nil
}

func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if n := t.UnixNano(); n > 0 {
		return n
	}
	return 1 // long past
}
