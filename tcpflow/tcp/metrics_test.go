package tcp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
)

// connectSACKRTT is connectSACK with a handshake that takes rtt, so
// that the connection starts with an RTT sample as on a real path.
func (r *rawRig) connectSACKRTT(ln tcpflow.FlowListener, addr netip.AddrPort, rtt time.Duration) (*sackPeer, *endpoint) {
	c, f := r.connectWith(ln, addr, &header.TCPOptions{SACKPermitted: true, HasMSS: true, MSS: 1000}, rtt)
	return c, f.(*endpoint)
}

// TestPathMetricsReordering: the reordering window a connection measured
// from D-SACKs starts the next connection to the same address (RFC 9040
// section 4, Linux's tcp_metrics), so that it does not retransmit at its
// start what the path merely reordered; with Options.NoMetricsSave, or
// to another address, the next connection learns again, from a spurious
// retransmission. The path is TestReoWndMeasured's: 1 ms RTT, a short
// cut of 50 µs.
func TestPathMetricsReordering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		o      Options
		second string
		early  bool // the second connection retransmits at once
	}{
		{"saved", Options{}, "10.0.0.9:4001", false},
		{"NoMetricsSave", Options{NoMetricsSave: true}, "10.0.0.9:4001", true},
		{"another address", Options{}, "10.0.0.10:4001", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRawRig(t, tc.o)
			ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
			require.NoError(t, err)
			t.Cleanup(func() { ln.Close() })

			// The first connection: a segment taken for lost, then
			// D-SACKed, measures the window.
			c, e := r.connectSACKRTT(ln, netip.MustParseAddrPort("10.0.0.9:4000"), time.Millisecond)
			seq := sendSegs(t, r, e, 8)
			r.clk.Advance(50 * time.Microsecond)
			c.ackSACK(seq[0], [2]uint32{seq[1], seq[2]})
			r.clk.Advance(50 * time.Microsecond)
			require.Len(t, dataSegs(r.take()), 1, "the first deemed lost")
			r.clk.Advance(900 * time.Microsecond)
			c.ackSACK(seq[8])
			r.clk.Advance(50 * time.Microsecond)
			c.ackSACK(seq[8], [2]uint32{seq[0], seq[1]})
			e.mu.Lock()
			learned := e.reoWndMeas
			e.abortLocked(errors.New("done"))
			e.mu.Unlock()
			require.NotZero(t, learned)
			r.take()

			// The second: its second segment SACKed after 50 µs, the
			// first acknowledged after 1 ms.
			c2, e2 := r.connectSACKRTT(ln, netip.MustParseAddrPort(tc.second), time.Millisecond)
			seq = sendSegs(t, r, e2, 4)
			r.clk.Advance(50 * time.Microsecond)
			c2.ackSACK(seq[0], [2]uint32{seq[1], seq[2]})
			var again int
			for range 18 {
				r.clk.Advance(50 * time.Microsecond)
				again += len(dataSegs(r.take()))
			}
			c2.ackSACK(seq[4])
			if tc.early {
				assert.NotZero(t, again, "learned again")
			} else {
				assert.Zero(t, again, "the window measured before waits for the reordering")
				e2.mu.Lock()
				assert.Equal(t, learned, e2.reoWndMeas)
				e2.mu.Unlock()
			}
		})
	}
}

// sendSegs writes n segments of 1000 bytes on e and returns their
// sequence numbers and the one after them.
func sendSegs(t *testing.T, r *rawRig, e *endpoint, n int) []uint32 {
	_, err := e.WriteNodelay(make([]byte, n*1000))
	require.NoError(t, err)
	segs := dataSegs(r.take())
	require.Len(t, segs, n)
	seq := make([]uint32, n+1)
	for i, s := range segs {
		seq[i] = s.SeqNum()
		require.Len(t, s.Payload(), 1000)
	}
	seq[n] = seq[n-1] + 1000
	return seq
}

// TestPathCacheBounds: entries expire after pathMetricsTTL, a path that
// showed no reordering saves nothing, one that reordered but measured no
// window keeps the window saved before, and at most maxPathMetrics
// addresses are kept, the oldest replaced.
func TestPathCacheBounds(t *testing.T) {
	r := newRawRig(t, Options{})
	p := r.p
	conn := func(addr string) *endpoint {
		return p.newEndpoint(connID{remote: netip.MustParseAddrPort(addr)}, nil)
	}
	e := conn("10.1.0.1:1")
	e.savePath()
	assert.Empty(t, p.paths.m, "no reordering seen")
	e.reordering, e.reoWndMeas = true, 700*time.Microsecond
	e.savePath()

	e = conn("10.1.0.1:2")
	assert.True(t, e.reordering)
	assert.Equal(t, 700*time.Microsecond, e.reoWndMeas)
	e.reoWndMeas = 0 // reordered, measured nothing
	e.savePath()
	assert.Equal(t, 700*time.Microsecond, conn("10.1.0.1:3").reoWndMeas, "the earlier window kept")

	r.clk.Advance(pathMetricsTTL)
	e = conn("10.1.0.1:4")
	assert.False(t, e.reordering, "expired")
	assert.Zero(t, e.reoWndMeas)

	for i := range maxPathMetrics + 1 {
		e := conn(fmt.Sprintf("10.2.%d.%d:1", i/256, i%256))
		e.reordering = true
		e.savePath()
		r.clk.Advance(time.Millisecond)
	}
	assert.Len(t, p.paths.m, maxPathMetrics)
	assert.False(t, conn("10.2.0.0:1").reordering, "the oldest replaced")
	assert.True(t, conn("10.2.0.1:1").reordering)
}

// TestPathSavedOnce: a connection saves its path when it stops sending
// (TIME-WAIT) and not again when TIME-WAIT ends, which would put back
// its older window over what a newer connection to the same address
// saved meanwhile.
func TestPathSavedOnce(t *testing.T) {
	r := newRawRig(t, Options{})
	p := r.p
	conn := func(addr string, reo time.Duration) *endpoint {
		e := p.newEndpoint(connID{remote: netip.MustParseAddrPort(addr)}, nil)
		e.reordering, e.reoWndMeas = true, reo
		return e
	}
	old := conn("10.1.0.1:1", 700*time.Microsecond)
	old.mu.Lock()
	old.enterTimeWait()
	old.mu.Unlock()
	newer := conn("10.1.0.1:2", 300*time.Microsecond)
	newer.mu.Lock()
	newer.closeLocked(nil)
	newer.mu.Unlock()
	old.mu.Lock()
	old.closeLocked(nil) // TIME-WAIT over
	old.mu.Unlock()
	assert.Equal(t, 300*time.Microsecond, p.paths.m[netip.MustParseAddr("10.1.0.1")].reoWnd, "the newer connection's window")
}
