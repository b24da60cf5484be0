package tcp

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
)

// rawRig is a Protocol whose segments are captured, with the time each
// was sent, for a test that plays the peer by hand on a manual clock:
// everything runs in the test's goroutine.
type rawRig struct {
	t   *testing.T
	p   *Protocol
	clk *clock.Manual
	t0  time.Time

	mu  sync.Mutex
	out []sentSeg
}

type sentSeg struct {
	at  time.Duration // since t0
	seg header.TCP
}

func newRawRig(t *testing.T, o Options) *rawRig {
	r := &rawRig{t: t, clk: clock.NewManual(time.Unix(1_700_000_000, 0))}
	r.t0 = r.clk.Now()
	o.Addr = rigAddr
	o.Clock = r.clk
	o.Output = func(src, dst netip.Addr, h, payload []byte) error {
		seg := append(append(header.TCP(nil), h...), payload...)
		r.mu.Lock()
		r.out = append(r.out, sentSeg{at: r.clk.Now().Sub(r.t0), seg: seg})
		r.mu.Unlock()
		return nil
	}
	p, err := New(o)
	require.NoError(t, err)
	r.p = p
	t.Cleanup(func() { p.Close() })
	return r
}

func (r *rawRig) take() []sentSeg {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.out
	r.out = nil
	return out
}

// rawPeer is one connection's far end, played by the test.
type rawPeer struct {
	r        *rawRig
	addr     netip.AddrPort
	seq, ack uint32 // our next sequence number, and what we acknowledge
}

// send hands the protocol a segment of the peer's.
func (c *rawPeer) send(flags header.TCPFlags, window uint16, payload []byte) {
	r := c.r
	f := header.TCPFields{SrcPort: c.addr.Port(), DstPort: rigPort, SeqNum: c.seq, AckNum: c.ack, Flags: flags, WindowSize: window}
	seg := make(header.TCP, f.EncodedLen(), f.EncodedLen()+len(payload))
	seg.Encode(&f)
	seg = append(seg, payload...)
	seg.SetChecksumFor(c.addr.Addr(), rigAddr)
	r.p.HandleSegment(c.addr.Addr(), rigAddr, seg)
	c.seq += uint32(len(payload))
}

// connect completes a handshake with the rig's listener, ending with an
// ACK that advertises window, and returns the accepted flow.
func (r *rawRig) connect(ln tcpflow.FlowListener, addr netip.AddrPort, window uint16) (*rawPeer, tcpflow.Flow) {
	c := &rawPeer{r: r, addr: addr, seq: 1000}
	c.send(header.TCPFlagSYN, 65535, nil)
	c.seq++
	out := r.take()
	require.Len(r.t, out, 1)
	synack := out[0].seg
	require.Equal(r.t, header.TCPFlagSYN|header.TCPFlagACK, synack.Flags())
	c.ack = synack.SeqNum() + 1
	c.send(header.TCPFlagACK, window, nil)
	f, err := ln.AcceptFlow()
	require.NoError(r.t, err)
	r.t.Cleanup(func() { f.Close() })
	return c, f
}

func isProbe(s header.TCP, c *rawPeer) bool {
	return s.Flags() == header.TCPFlagACK && len(s.Payload()) == 0 && s.SeqNum() == c.ack-1
}

// TestZeroWindowProbeBackoff plays a peer that keeps its window closed
// and answers every probe: the probes' interval doubles from the RTO up
// to RTOMax although each is answered (they went every 2 s before), and
// the connection is reset after the user timeout, its writes failing
// with tcpflow.ErrTimeout. A second peer opens its window after three
// probes: the data goes at once, and when the window closes again the
// probes start over from the RTO.
func TestZeroWindowProbeBackoff(t *testing.T) {
	const (
		rtoMax = 5 * time.Second
		ut     = 30 * time.Second
	)
	r := newRawRig(t, Options{RTOMax: rtoMax, UserTimeout: ut})
	ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
	require.NoError(t, err)
	defer ln.Close()

	c, f := r.connect(ln, netip.MustParseAddrPort("10.0.0.9:4000"), 0)
	start := r.clk.Now().Sub(r.t0)
	_, err = f.Write([]byte("waiting for a window"))
	require.NoError(t, err)
	require.Empty(t, r.take(), "nothing goes into a zero window")

	// The RTO is 200 ms (RTOMin: the handshake took no time). The
	// first probe goes after it, then each interval doubles, up to
	// RTOMax; the user timeout ends it at 30 s.
	var want []time.Duration
	for at, d := time.Duration(0), 200*time.Millisecond; ; d = min(2*d, rtoMax) {
		if at += d; at >= ut {
			break
		}
		want = append(want, at)
	}
	require.Equal(t, []time.Duration{
		200 * time.Millisecond, 600 * time.Millisecond, 1400 * time.Millisecond,
		3 * time.Second, 6200 * time.Millisecond, 11200 * time.Millisecond,
		16200 * time.Millisecond, 21200 * time.Millisecond, 26200 * time.Millisecond,
	}, want)

	var probes []time.Duration
	var resetAt time.Duration
	for step := 0; resetAt == 0 && step < 4000; step++ {
		r.clk.Advance(10 * time.Millisecond)
		for _, s := range r.take() {
			switch {
			case s.seg.Flags()&header.TCPFlagRST != 0:
				resetAt = s.at - start
			case isProbe(s.seg, c):
				probes = append(probes, s.at-start)
				c.send(header.TCPFlagACK, 0, nil) // answered, window still closed
			default:
				t.Fatalf("unexpected segment %v", s.seg.Flags())
			}
		}
	}
	assert.Equal(t, want, probes, "probe times")
	assert.Equal(t, ut, resetAt, "reset at the user timeout")
	_, err = f.Write([]byte("more"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, tcpflow.ErrTimeout), "%v", err)
	assert.EqualValues(t, 1, r.p.Stats().UserTimeouts)

	// A peer that opens its window after three probes gets the data at
	// once.
	c2, f2 := r.connect(ln, netip.MustParseAddrPort("10.0.0.9:4001"), 0)
	start = r.clk.Now().Sub(r.t0)
	_, err = f2.Write([]byte("first"))
	require.NoError(t, err)
	var got []byte
	var sentAt time.Duration
	probes = probes[:0]
	for len(got) == 0 {
		r.clk.Advance(10 * time.Millisecond)
		require.Less(t, r.clk.Now().Sub(r.t0)-start, ut)
		for _, s := range r.take() {
			switch {
			case isProbe(s.seg, c2):
				probes = append(probes, s.at-start)
				if len(probes) < 3 {
					c2.send(header.TCPFlagACK, 0, nil)
				} else {
					c2.send(header.TCPFlagACK, 65535, nil)
				}
			case len(s.seg.Payload()) > 0:
				got = append(got, s.seg.Payload()...)
				sentAt = s.at
			}
		}
	}
	assert.Equal(t, want[:3], probes)
	assert.Equal(t, "first", string(got))
	// Unacknowledged, it is sent again after the RTO itself: the
	// probes' backoff ended when the window opened.
	var again time.Duration
	for again == 0 {
		r.clk.Advance(10 * time.Millisecond)
		for _, s := range r.take() {
			if string(s.seg.Payload()) == "first" {
				again = s.at - sentAt
			}
		}
	}
	assert.Equal(t, 200*time.Millisecond, again, "retransmitted after the RTO, not backed off")
	// Acknowledged, with the window closed again: the next data waits
	// and the probes start over from the RTO.
	c2.ack += uint32(len(got))
	c2.send(header.TCPFlagACK, 0, nil)
	start = r.clk.Now().Sub(r.t0)
	_, err = f2.Write([]byte("second"))
	require.NoError(t, err)
	probes = probes[:0]
	for len(probes) < 2 {
		r.clk.Advance(10 * time.Millisecond)
		for _, s := range r.take() {
			if isProbe(s.seg, c2) {
				probes = append(probes, s.at-start)
				c2.send(header.TCPFlagACK, 0, nil)
			}
		}
	}
	assert.Equal(t, want[:2], probes)
	require.NoError(t, f2.Close())
}
