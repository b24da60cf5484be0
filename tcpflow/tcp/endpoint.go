package tcp

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// state is a connection state of RFC 9293 section 3.3.2.
type state uint8

const (
	stateClosed state = iota
	stateSynSent
	stateSynRcvd
	stateEstablished
	stateFinWait1
	stateFinWait2
	stateCloseWait
	stateClosing
	stateLastAck
	stateTimeWait
)

var stateNames = [...]string{"CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"}

func (s state) String() string { return stateNames[s] }

// Internal causes, wrapped in *tcpflow.Error at the boundary.
var (
	errConnReset   = errors.New("tcp: connection reset")
	errRetransmit  = errors.New("tcp: retransmissions unanswered")
	errKeepalive   = errors.New("tcp: keepalive probes unanswered")
	errICMPRefused = errors.New("tcp: ICMP destination unreachable")
	errAborted     = errors.New("tcp: connection aborted")
	errUserTimeout = errors.New("tcp: user timeout: data waited too long for the peer")
)

type timeoutError struct{ error }

func (timeoutError) Timeout() bool { return true }

func kindOf(err error) error {
	switch {
	case errors.Is(err, errConnReset):
		return tcpflow.ErrReset
	case errors.Is(err, errICMPRefused):
		return tcpflow.ErrRefused
	case errors.Is(err, errRetransmit), errors.Is(err, errKeepalive), errors.Is(err, errUserTimeout):
		return tcpflow.ErrTimeout
	}
	return nil
}

// endpoint is one TCP connection and the Flow handed to the user. Its
// methods are safe for concurrent use; concurrent writes are serialized
// whole (one Write's bytes are never interleaved with another's).
type endpoint struct {
	p  *Protocol
	id connID

	wmu sync.Mutex // serializes writers

	mu       sync.Mutex
	cond     sync.Cond // on mu: broadcast at every change a waiter may need
	charged  int       // memory charged to the buffer budget (budget.go)
	err      error     // why the connection ended abnormally
	listener *listener // passive opens, until delivered

	readDeadline, writeDeadline time.Time

	// Flags, together so that they share words.
	state      state
	delivered  bool // handed to the listener (guarded by p.mu)
	userClosed bool // Close was called
	finQueued  bool // the FIN follows the send buffer
	inRecovery bool
	rttTiming  bool // the SYN is timed (no timestamps)
	reordering bool // the path was seen to reorder
	tornDown   bool // teardown has run (it runs again when TIME-WAIT ends)
	rttCandOK  bool
	recoverRTO bool // recover was set by an RTO
	oooFin     bool // a FIN at oooFinSeq is queued
	dsack      bool // a duplicate to report in the next ACK (RFC 2883)
	finRcvd    bool
	sackOK     bool // options negotiated
	tsOK       bool
	wsOK       bool
	quickAcks  uint8 // in-order segments still to acknowledge at once
	nOOORecent uint8 // entries of oooRecent in use
	sndShift   uint8 // the peer's window scale
	rcvShift   uint8 // our window scale

	// Send side (snd.go).
	iss, sndUna, sndNxt, sndMax seqnum.Value
	sndWnd                      uint32 // scaled
	maxSndWnd                   uint32
	sndWl1, sndWl2              seqnum.Value
	probes                      int32 // unanswered zero-window probes (here to fill a word)
	sndBuf                      ring
	sndBufStart                 seqnum.Value // sequence number of sndBuf[0]
	pushSeq                     seqnum.Value // data before it goes out without Nagle delay
	mss                         int
	// Congestion control (cc.go).
	cwnd, ssthresh int
	caBytes        int // NewReno: bytes acknowledged toward the next increase
	cubic          cubicState
	hy             hystart      // HyStart++ in the first slow start (hystart.go)
	spurSeq        seqnum.Value // the retransmitted segment delivered last (sack.go, here to fill a word)
	// Proportional Rate Reduction in recovery (RFC 6937), in bytes.
	prrDelivered, prrOut, recoverFS int
	dupAcks                         int
	recover                         seqnum.Value
	tsRecent                        uint32 // the peer's timestamp to echo (RFC 7323), here to share a word
	// RTT and RTO (RFC 6298).
	srtt, rttvar, rto time.Duration
	backoff, retries  int32         // RTO doublings since the last new ACK; retransmissions of the segment at sndUna
	rttStart          time.Duration // when the SYN was sent (Protocol.since)
	stallAt           time.Duration // the peer's last acknowledgment of new data, or when data began to wait for it (Protocol.since)
	// Retransmission queue and loss detection (sack.go).
	txq                 []txSeg
	txqBase             []txSeg // txq's array, from its start
	sb                  scoreboard
	xmitCount, rackXmit uint64
	rackRTT             time.Duration
	minRTT              time.Duration // windowed minimum (RFC 8985)
	minRTTAt            time.Duration // when minRTT was taken (Protocol.since; 0: never)
	fack                seqnum.Value  // highest sequence number delivered
	dsackRound          seqnum.Value  // no second widening before sndUna reaches it
	reoWndMult          int32         // RACK's reordering window, in quarters of min RTT
	reoWndPersist       int32         // recoveries left before the window goes back to a quarter
	reoWndMeas          time.Duration // RACK's reordering window as measured from D-SACKs (onDSACK)
	spurLate            time.Duration // how long after its retransmission spurSeq was delivered
	rttCandXmit         uint64
	rttCand             time.Duration // the RTT of the oldest segment sent once that this ACK delivers
	recXmit             uint64        // first transmission of this recovery

	// Receive side (rcv.go).
	irs, rcvNxt  seqnum.Value
	rcvBuf       rcvQueue
	ooo          []oooSeg
	oooFinSeq    seqnum.Value
	oooRecent    [sackRecent]seqnum.Value // starts of the latest out-of-order arrivals' blocks, newest first (sack.go)
	dsackStart   seqnum.Value
	dsackEnd     seqnum.Value
	rcvAdvEdge   seqnum.Value  // rcvNxt + window advertised
	rcvAcked     seqnum.Value  // the acknowledgment number last sent
	rcvSpaceSeq  seqnum.Value  // rcvNxt when the round of rcvSpaceAt began (rcvtune.go)
	rcvSpacePrev int32         // bytes that arrived in order in the busiest round so far
	rcvSpace     int32         // the receive buffer the window offers (0: no data yet)
	oooAcks      uint8         // ACKs sent at once for out-of-order arrivals at this rcvNxt (ackcomp.go)
	acksHeld     uint8         // out-of-order arrivals whose ACK is held, since the last ACK sent
	rcvSpaceAt   time.Duration // when the round began (Protocol.since)
	rdBuf        []byte        // a waiting Read's buffer, filled from rdN on
	rdN          int

	// Timers (timer.go).
	rtoTimer, persistTimer, kaTimer, closeTimer, rackTimer, tlpTimer timer
	delackTimer                                                      timer
	ka                                                               *tcpflow.Keepalive
	kaProbes                                                         int
	lastRecv                                                         time.Time
	nowC                                                             time.Time // see tick
	hdrBuf                                                           [header.TCPMaximumHeaderSize]byte
	tlpProbes                                                        int32 // tail loss probes sent since the last new ACK (here to fill a word)
}

var _ tcpflow.Flow = (*endpoint)(nil)

func (p *Protocol) newEndpoint(id connID, ka *tcpflow.Keepalive) *endpoint {
	e := &endpoint{p: p, id: id, rto: p.o.RTOInitial, mss: min(p.o.MSS, DefaultMSS), reoWndMult: 1}
	e.cond.L = &e.mu
	e.loadPath()
	if ka != nil && ka.After > 0 {
		k := *ka
		if k.Interval <= 0 {
			k.Interval = k.After
		}
		k.Probes = max(k.Probes, 1)
		e.ka = &k
	}
	e.rtoTimer.init(e, timerRTO)
	e.persistTimer.init(e, timerPersist)
	e.kaTimer.init(e, timerKeepalive)
	e.closeTimer.init(e, timerClose)
	e.rackTimer.init(e, timerRACK)
	e.tlpTimer.init(e, timerTLP)
	e.delackTimer.init(e, timerDelayedACK)
	for e.rcvShift < 14 && p.o.RecvBuffer>>e.rcvShift > 0xffff {
		e.rcvShift++
	}
	return e
}

// now returns the time: the clock's, or the one read when the operation
// under way began (see tick). e.mu is held.
func (e *endpoint) now() time.Time {
	if !e.nowC.IsZero() {
		return e.nowC
	}
	return e.p.clk.Now()
}

// tick reads the clock once for an operation (a segment's processing, a
// write, a timer), so that its steps share one reading instead of each
// asking the clock; endTick(tick()) ends it. Nested calls leave the
// outer reading in place. e.mu is held.
func (e *endpoint) tick() bool {
	if !e.nowC.IsZero() {
		return false
	}
	e.nowC = e.p.clk.Now()
	return true
}

// endTick ends the operation tick began, if it began one.
func (e *endpoint) endTick(began bool) {
	if began {
		e.nowC = time.Time{}
	}
}

// broadcast wakes every waiter. e.mu is held.
func (e *endpoint) broadcast() { e.cond.Broadcast() }

// wait releases e.mu until the next state change or the deadline; it
// returns os.ErrDeadlineExceeded once the deadline has passed. Waiting
// allocates nothing unless there is a deadline. e.mu is held.
func (e *endpoint) wait(deadline *time.Time) error {
	d := *deadline
	if d.IsZero() {
		e.cond.Wait()
		return nil
	}
	left := time.Until(d)
	if left <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.AfterFunc(left, func() {
		e.mu.Lock()
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	e.cond.Wait()
	t.Stop()
	return nil
}

func (e *endpoint) opError(op string, err error) error {
	if err == nil || err == io.EOF || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	kind := kindOf(err)
	if kind == tcpflow.ErrTimeout {
		err = timeoutError{err}
	}
	return &tcpflow.Error{Op: op, Addr: e.id.remote, Kind: kind, Err: err}
}

// Read reads received data: io.EOF after the peer's FIN, an error
// matching tcpflow.ErrReset after a reset, tcpflow.ErrTimeout when the
// peer stopped answering.
func (e *endpoint) Read(b []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if e.userClosed {
			return 0, net.ErrClosed
		}
		if e.rcvBuf.Len() > 0 {
			if len(b) == 0 {
				return 0, nil
			}
			c := e.rcvBuf.Read(b, e.p.returnBuf)
			t := e.tick()
			e.settle()
			e.consumed(c)
			e.endTick(t)
			return c, nil
		}
		if e.err != nil {
			return 0, e.opError("read", e.err)
		}
		if e.finRcvd || e.state == stateClosed {
			return 0, io.EOF
		}
		if len(b) == 0 {
			return 0, nil
		}
		// Wait, offering b to the data that arrives meanwhile: it is
		// copied there directly rather than through the receive ring.
		direct := e.rdBuf == nil
		if direct {
			e.rdBuf, e.rdN = b, 0
		}
		err := e.wait(&e.readDeadline)
		if direct {
			n := e.rdN
			e.rdBuf, e.rdN = nil, 0
			if n > 0 {
				t := e.tick()
				e.consumed(n)
				e.endTick(t)
				return n, nil
			}
		}
		if err != nil {
			return 0, err
		}
	}
}

// Write queues b, applying Nagle's algorithm.
func (e *endpoint) Write(b []byte) (int, error) {
	n, err := e.writev([][]byte{b}, false)
	return int(n), err
}

// WriteNodelay queues b and sends it at once.
func (e *endpoint) WriteNodelay(b []byte) (int, error) {
	n, err := e.writev([][]byte{b}, true)
	return int(n), err
}

// Writev queues every buffer, in order, applying Nagle's algorithm.
func (e *endpoint) Writev(bufs net.Buffers) (int64, error) { return e.writev(bufs, false) }

// WritevNodelay queues every buffer and sends them at once.
func (e *endpoint) WritevNodelay(bufs net.Buffers) (int64, error) { return e.writev(bufs, true) }

func (e *endpoint) writev(bufs [][]byte, nodelay bool) (int64, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	var total int64
	for _, b := range bufs {
		for len(b) > 0 {
			if err := e.writableLocked(); err != nil {
				return total, err
			}
			room := e.p.o.SendBuffer - e.sndBuf.Len()
			budgetWait := false
			if room > 0 {
				room = e.sendRoom(min(room, len(b)))
				budgetWait = room == 0
			}
			if room <= 0 {
				// The buffer is full, or the buffer budget is: push
				// what is queued, and wait for room (or memory).
				e.pushSeq = e.sndBufEnd()
				t := e.tick()
				e.output()
				e.endTick(t)
				err := e.wait(&e.writeDeadline)
				if budgetWait {
					e.p.budget.unwait(e)
				}
				if err != nil {
					return total, err
				}
				continue
			}
			n := min(room, len(b))
			e.sndBuf.Write(b[:n])
			b = b[n:]
			total += int64(n)
		}
	}
	// Every buffer is queued: one pass of output sends them together.
	if nodelay {
		e.pushSeq = e.sndBufEnd()
	}
	t := e.tick()
	e.output()
	e.endTick(t)
	return total, nil
}

// writableLocked reports why data cannot be queued now, if so.
func (e *endpoint) writableLocked() error {
	switch {
	case e.userClosed:
		return net.ErrClosed
	case e.err != nil:
		return e.opError("write", e.err)
	case e.finQueued:
		return &tcpflow.Error{Op: "write", Addr: e.id.remote, Err: errors.New("write after CloseWrite")}
	case e.state == stateClosed:
		return net.ErrClosed
	}
	if !e.writeDeadline.IsZero() && !time.Now().Before(e.writeDeadline) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// CloseWrite sends a FIN once the queued data is sent.
func (e *endpoint) CloseWrite() error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.userClosed {
		return net.ErrClosed
	}
	if e.err != nil {
		return e.opError("close", e.err)
	}
	e.shutdownSend()
	return nil
}

// shutdownSend queues the FIN and moves to the state that follows.
func (e *endpoint) shutdownSend() {
	if e.finQueued {
		return
	}
	switch e.state {
	case stateEstablished:
		e.state = stateFinWait1
	case stateCloseWait:
		e.state = stateLastAck
	case stateSynRcvd:
		// The FIN goes once established (RFC 9293 3.10.4).
	default:
		return
	}
	e.finQueued = true
	e.output()
}

// Close flushes queued data, then sends a FIN. The connection finishes
// closing in the background; reads and writes fail with net.ErrClosed.
func (e *endpoint) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.userClosed {
		return net.ErrClosed
	}
	e.userClosed = true
	e.broadcast()
	// Unread data is dropped (a reset connection's too); later data is
	// acknowledged and dropped.
	e.rcvBuf.release(e.p.returnBuf)
	e.settle()
	switch e.state {
	case stateSynSent:
		e.closeLocked(nil)
		return nil
	case stateClosed, stateTimeWait:
		return nil
	}
	e.shutdownSend()
	if e.state == stateFinWait2 {
		e.closeTimer.set(e.p.o.FinTimeout)
	}
	return nil
}

// LocalAddr returns the local address as a *net.TCPAddr.
func (e *endpoint) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(e.id.local) }

// RemoteAddr returns the remote address as a *net.TCPAddr.
func (e *endpoint) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(e.id.remote) }

// Dst returns the remote address and port.
func (e *endpoint) Dst() netip.AddrPort { return e.id.remote }

// Src returns the local address and port.
func (e *endpoint) Src() netip.AddrPort { return e.id.local }

// SetDeadline sets the read and write deadlines (wall-clock time, as
// for any net.Conn).
func (e *endpoint) SetDeadline(t time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.readDeadline, e.writeDeadline = t, t
	e.broadcast()
	return nil
}

// SetReadDeadline sets the read deadline.
func (e *endpoint) SetReadDeadline(t time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.readDeadline = t
	e.broadcast()
	return nil
}

// SetWriteDeadline sets the write deadline.
func (e *endpoint) SetWriteDeadline(t time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.writeDeadline = t
	e.broadcast()
	return nil
}

// String names the connection and its state, for logs and tests.
func (e *endpoint) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.id.local.String() + "->" + e.id.remote.String() + " " + e.state.String()
}

// fail ends the connection with err (a reset or a timeout): waiters wake
// with it. e.mu is held.
func (e *endpoint) fail(err error) {
	if e.err == nil {
		e.err = err
	}
	e.closeLocked(err)
}

// closeLocked moves to CLOSED and releases everything. e.mu is held.
func (e *endpoint) closeLocked(err error) {
	if err != nil && e.err == nil {
		e.err = err
	}
	e.state = stateClosed
	e.closeTimer.release()
	e.teardown()
	e.broadcast()
	e.p.remove(e)
}

// teardown releases what a connection needs only while it can still
// send or receive, on its way to TIME-WAIT or CLOSED: every timer but
// closeTimer (which times TIME-WAIT), the send buffer, the transmit
// queue and scoreboard, the out-of-order data; settle then gives their
// memory back to the buffer budget. The path's metrics are saved the
// first time only: by the end of TIME-WAIT a newer connection to the
// same address may have saved its own. e.mu is held.
func (e *endpoint) teardown() {
	if !e.tornDown {
		e.tornDown = true
		e.savePath()
	}
	e.rtoTimer.release()
	e.persistTimer.release()
	e.kaTimer.release()
	e.rackTimer.release()
	e.tlpTimer.release()
	e.delackTimer.release()
	e.sndBuf.release()
	e.txq, e.txqBase, e.sb = nil, nil, scoreboard{}
	e.ooo = nil
	e.settle()
}

// abortLocked sends a reset (unless the connection has not reached the
// peer or is over) and closes. e.mu is held.
func (e *endpoint) abortLocked(err error) {
	switch e.state {
	case stateClosed:
		return
	case stateSynSent, stateTimeWait:
	default:
		e.sendReset()
	}
	if err == nil {
		err = errAborted
	}
	e.closeLocked(err)
}

func (e *endpoint) abort(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.abortLocked(err)
}

// discard aborts a connection no user has (or will) and drops the data
// it received, so that its memory goes back to the buffer budget.
func (e *endpoint) discard() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.abortLocked(nil)
	e.rcvBuf.release(e.p.returnBuf)
	e.settle()
}
