package tcp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// sumScoreboard returns the running sums of a retransmission queue (the
// bound and the highest retransmitted segment left zero).
func sumScoreboard(txq []txSeg) scoreboard {
	var sb scoreboard
	for i := range txq {
		s := &txq[i]
		sb.bytes += s.size()
		if s.sacked {
			sb.sacked++
			sb.sackedBytes += s.size()
		}
		if s.lost {
			sb.lost++
			sb.lostBytes += s.size()
		}
		if s.retrans {
			sb.retrans++
		}
	}
	return sb
}

// checkScoreboard verifies what the sender's loss recovery relies on:
// the retransmission queue is contiguous from sndUna, its running sums
// match it, the lower bound on retransmitted segments holds, and the
// windows are sane.
func checkScoreboard(e *endpoint) error {
	next := e.sndUna
	for i := range e.txq {
		s := &e.txq[i]
		if s.start != next || !s.start.LessThan(s.end) {
			return fmt.Errorf("segment %d is [%d, %d), want it to start at %d", i, s.start, s.end, next)
		}
		if s.sacked && s.lost {
			return fmt.Errorf("segment %d SACKed and lost", i)
		}
		next = s.end
		if s.retrans && !s.sacked && !s.lost && s.xmit < e.sb.retransMinXmit {
			return fmt.Errorf("segment %d retransmitted as %d, below the bound %d", i, s.xmit, e.sb.retransMinXmit)
		}
	}
	if len(e.txq) > 0 && next != e.sndMax && next != e.sndNxt {
		return fmt.Errorf("queue ends at %d, sndNxt %d sndMax %d", next, e.sndNxt, e.sndMax)
	}
	got, sb := e.sb, sumScoreboard(e.txq)
	got.retransMinXmit, got.retransHigh = 0, 0
	if got != sb {
		return fmt.Errorf("sums %+v, queue %+v", got, sb)
	}
	if e.pipe() < 0 || e.cwnd <= 0 || e.ssthresh <= 0 {
		return fmt.Errorf("pipe %d cwnd %d ssthresh %d", e.pipe(), e.cwnd, e.ssthresh)
	}
	if e.sndUna.GreaterThan(e.sndNxt) || e.sndNxt.GreaterThan(e.sndMax) {
		return fmt.Errorf("una %d nxt %d max %d", e.sndUna, e.sndNxt, e.sndMax)
	}
	return nil
}

// FuzzScoreboard drives an established sender with 64 KiB to send
// through arbitrary ACKs (any acknowledgment number near the window,
// any SACK blocks, D-SACKs, windows) and clock steps that fire the
// retransmission, reordering and probe timers: no panic, and after
// every step the scoreboard is consistent.
func FuzzScoreboard(f *testing.F) {
	f.Add([]byte{0x01, 0x10, 0x00, 0x02, 0x05, 0x08, 0x0a, 0x10})
	f.Add([]byte{0x21, 0x00, 0x00, 0x03, 0x02, 0x03, 0x05, 0x07, 0x09, 0x0b, 0x80, 0x10})
	f.Add([]byte{0x41, 0x04, 0x00, 0x01, 0x00, 0x01, 0xc0, 0x20, 0x01, 0x30})
	f.Fuzz(runScoreboard)
}

func runScoreboard(t *testing.T, in []byte) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	p, err := New(Options{
		Addr:   netip.MustParseAddr("10.0.0.1"),
		Output: func(src, dst netip.Addr, h, payload []byte) error { return nil },
		Clock:  clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	e := p.newEndpoint(connID{}, nil)
	defer func() {
		e.mu.Lock()
		e.closeLocked(nil)
		e.mu.Unlock()
	}()
	const mss = 100
	e.mu.Lock()
	e.setISS(1000)
	e.state, e.sackOK, e.mss = stateEstablished, true, mss
	e.cwnd, e.ssthresh = 10*mss, 1<<30
	e.sndUna = e.sndNxt // the SYN is acknowledged
	e.sndWnd = 1 << 20
	e.irs, e.rcvNxt = 5000, 5001
	e.sndBuf.Write(make([]byte, 64<<10))
	e.output()
	e.mu.Unlock()

	// Each step: a kind byte, then its arguments; ACK numbers and
	// SACK edges are in segments from sndUna, so that most land
	// in or near the window.
	at := func(b byte) seqnum.Value { return e.sndUna.Add(seqnum.Size(int(int8(b)) * mss)) }
	for len(in) >= 2 {
		kind, arg := in[0], in[1]
		in = in[2:]
		switch kind % 4 {
		case 0, 1: // an ACK with up to four SACK blocks
			s := segment{seq: e.rcvNxt, flags: header.TCPFlagACK, window: 0xffff}
			e.mu.Lock()
			s.ack = at(arg)
			n := int(kind>>2) % (header.TCPMaxSACKBlocks + 1)
			for i := 0; i < n && len(in) >= 2; i++ {
				s.opts.SACKBlocks[i] = header.SACKBlock{Start: uint32(at(in[0])), End: uint32(at(in[1]))}
				s.opts.NumSACKBlocks++
				in = in[2:]
			}
			if kind&0x80 != 0 {
				s.window = uint16(arg) << 4
			}
			began := e.tick()
			if e.processAck(&s) {
				e.output()
			}
			e.endTick(began)
			err := checkScoreboard(e)
			e.mu.Unlock()
			if err != nil {
				t.Fatalf("after ACK %d with %v: %v", int8(arg), s.opts.SACK(), err)
			}
		case 2: // time passes: timers fire
			clk.Advance(time.Duration(arg) * 100 * time.Microsecond)
			e.mu.Lock()
			err := checkScoreboard(e)
			e.mu.Unlock()
			if err != nil {
				t.Fatalf("after %v: %v", time.Duration(arg)*100*time.Microsecond, err)
			}
		case 3: // more data to send
			e.mu.Lock()
			e.sndBuf.Write(make([]byte, int(arg)*mss))
			began := e.tick()
			e.output()
			e.endTick(began)
			e.mu.Unlock()
		}
	}
}
