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
	return r.connectWith(ln, netip.MustParseAddrPort("10.0.0.9:4000"), &header.TCPOptions{HasMSS: true, MSS: 1000, HasWindowScale: true, WindowScale: 7}, rtt)
}
