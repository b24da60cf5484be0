package tcp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
)

// TestRecvWindowAutotune plays a sender in slow start against our
// receiver, on a path of 1 ms: ten segments in the first round trip,
// twice as many in each next one, the application reading all of it.
// The window starts at 64 KiB, not at the whole 1 MiB buffer, and keeps
// ahead of the sender in every round until it is the buffer. With
// Options.FixedRecvWindow it is the buffer from the start.
func TestRecvWindowAutotune(t *testing.T) {
	const (
		rtt = time.Millisecond
		mss = 1000
	)
	for _, fixed := range []bool{false, true} {
		t.Run(map[bool]string{false: "autotuned", true: "FixedRecvWindow"}[fixed], func(t *testing.T) {
			r := newRawRig(t, Options{FixedRecvWindow: fixed})
			ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
			require.NoError(t, err)
			t.Cleanup(func() { ln.Close() })
			c, f := connectScaled(t, r, ln, rtt)

			// The window our latest segment offered, in bytes (the
			// SYN-ACK's, unscaled, holds the first round).
			window, shift := 65535, 5
			buf := make([]byte, DefaultRecvBuffer)
			reached := false
			for round, n := 0, 10; n*mss <= 4*DefaultRecvBuffer; round, n = round+1, 2*n {
				if window < DefaultRecvBuffer-4*mss {
					require.GreaterOrEqual(t, window, n*mss, "round %d: the window holds the sender back", round)
				} else {
					reached = true
				}
				burst := min(n*mss, window/mss*mss)
				for sent := 0; sent < burst; sent += mss {
					c.send(header.TCPFlagACK, 65535, make([]byte, mss))
				}
				for got := 0; got < burst; {
					k, err := f.Read(buf[got:burst])
					require.NoError(t, err)
					got += k
				}
				for _, s := range r.take() {
					window = int(s.seg.WindowSize()) << shift
				}
				if round == 0 {
					if fixed {
						assert.Greater(t, window, 8*rcvInitialWindow, "the whole buffer")
						return
					}
					assert.LessOrEqual(t, window, rcvInitialWindow, "the initial window")
				}
				r.clk.Advance(rtt)
			}
			assert.True(t, reached, "the window grew to the buffer")
		})
	}
}

// connectScaled completes a handshake that takes rtt, with window
// scaling (the peer's shift 7, ours 5 for 1 MiB) and MSS 1000, and
// returns the peer and the accepted flow.
func connectScaled(t *testing.T, r *rawRig, ln tcpflow.FlowListener, rtt time.Duration) (*sackPeer, tcpflow.Flow) {
	c := &sackPeer{&rawPeer{r: r, addr: netip.MustParseAddrPort("10.0.0.9:4000"), seq: 1000}}
	c.sendOpts(header.TCPFlagSYN, &header.TCPOptions{HasMSS: true, MSS: 1000, HasWindowScale: true, WindowScale: 7})
	c.seq++
	out := r.take()
	require.Len(t, out, 1)
	c.ack = out[0].seg.SeqNum() + 1
	r.clk.Advance(rtt)
	c.sendOpts(header.TCPFlagACK, nil)
	f, err := ln.AcceptFlow()
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return c, f
}

// TestQuickAckStart: the first 16 segments of a connection are
// acknowledged at once, the next in-order segment only after the
// delayed-ACK timeout (Linux's quick-ACK mode at a connection's start):
// a client's first request is not left waiting for the timer.
func TestQuickAckStart(t *testing.T) {
	r := newRawRig(t, Options{})
	ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	c, f := connectScaled(t, r, ln, time.Millisecond)
	buf := make([]byte, 16)
	for i := range quickAcksAfterLoss + 1 {
		c.send(header.TCPFlagACK, 65535, []byte("q"))
		_, err := f.Read(buf)
		require.NoError(t, err)
		acks := len(r.take())
		if i < quickAcksAfterLoss {
			require.Equal(t, 1, acks, "segment %d acknowledged at once", i)
			continue
		}
		require.Zero(t, acks, "then the ACK is delayed")
		r.clk.Advance(DefaultDelayedACK)
		require.Len(t, r.take(), 1, "after the timeout")
	}
}

// TestRecvWindowSlowReader: the window grows from what the application
// read, not from what arrived: an application that reads 10 KB a round
// trip keeps the initial window, although the sender filled it.
func TestRecvWindowSlowReader(t *testing.T) {
	const mss = 1000
	r := newRawRig(t, Options{})
	ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	c, f := connectScaled(t, r, ln, time.Millisecond)
	e := f.(*endpoint)
	window := 65535
	buf := make([]byte, 10*mss)
	for round := range 8 {
		for sent := 0; sent+mss <= window; sent += mss {
			c.send(header.TCPFlagACK, 65535, make([]byte, mss))
		}
		e.mu.Lock()
		queued := e.rcvBuf.Len()
		e.mu.Unlock()
		if round > 0 && queued > 0 {
			_, err := f.Read(buf[:min(queued, len(buf))])
			require.NoError(t, err)
		}
		for _, s := range r.take() {
			window = int(s.seg.WindowSize()) << 5
		}
		r.clk.Advance(time.Millisecond)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	assert.Equal(t, rcvInitialWindow, e.rcvWindowCap(), "the window's buffer did not grow")
}
