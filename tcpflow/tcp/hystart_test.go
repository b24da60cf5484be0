package tcp

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// A bottleneck on the manual clock, for slow start: the protocol sends
// through a drop-tail queue of queue packets drained at rate bits per
// second (20 bytes of IP header counted on each segment), then a
// propagation delay; a receiver played here acknowledges every segment
// at once, with SACK blocks for what arrived out of order, and its
// ACKs come back after the same delay. Everything runs in the test's
// goroutine, inside the clock's Advance: the run is deterministic.

type simPath struct {
	rate  int64         // bits per second
	queue int           // packets waiting, the one being sent not counted
	delay time.Duration // one way
	// ackEvery is how many in-order segments the receiver acknowledges
	// at once (zero: every one); a lone one waits for a millisecond.
	ackEvery int
}

// simResult is what one transfer over a simPath did.
type simResult struct {
	drops   int // at the queue, in all
	ssDrops int // of segments sent in the first slow start (ssthresh still the initial one)
	maxQ    int // the longest queue
	stats   Stats
	elapsed time.Duration
	ssEnd   int // the window when the first slow start ended (bytes)
}

// simSender runs a transfer of size bytes from a Protocol with options
// o over p, bounded by an hour of the manual clock.
func simSender(t *testing.T, o Options, p simPath, size int) simResult {
	t.Helper()
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	t0 := clk.Now()
	peer := netip.MustParseAddrPort("10.0.0.9:4000")
	var (
		res       simResult
		e         *endpoint
		busyUntil time.Time   // when the queue's head has been sent
		starts    []time.Time // when each queued packet begins to be sent
		proto     *Protocol
		deliver   func(seg header.TCP) // to the receiver
		synAck    header.TCP
	)
	o.Addr, o.Clock = rigAddr, clk
	o.SendBuffer = max(o.SendBuffer, size)
	o.ChecksumOffload = true
	o.Output = func(src, dst netip.Addr, h, payload []byte) error {
		seg := append(append(header.TCP(nil), h...), payload...)
		if deliver == nil { // the handshake: straight to the receiver
			synAck = seg
			return nil
		}
		now := clk.Now()
		for len(starts) > 0 && !starts[0].After(now) {
			starts = starts[1:]
		}
		if busyUntil.After(now) {
			if len(starts) >= p.queue {
				res.drops++
				if e != nil && e.ssthresh == initialSsthresh {
					res.ssDrops++
				}
				return nil
			}
			starts = append(starts, busyUntil)
			res.maxQ = max(res.maxQ, len(starts))
		} else {
			busyUntil = now
		}
		busyUntil = busyUntil.Add(time.Duration(int64(len(seg)+20) * 8 * int64(time.Second) / p.rate))
		clk.AfterFunc(busyUntil.Add(p.delay).Sub(now), func() { deliver(seg) })
		return nil
	}
	proto, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { proto.Close() })
	ln, err := proto.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
	require.NoError(t, err)
	defer ln.Close()

	// The receiver.
	const peerISS = 5000
	var (
		base    uint32   // the sender's first data sequence number
		rcvNxt  int      // bytes received in order
		ooo     [][2]int // out-of-order ranges, sorted, disjoint
		latest  [2]int   // the latest out-of-order arrival
		sendAck func()
	)
	toSender := func(flags header.TCPFlags, o *header.TCPOptions, delay time.Duration) {
		var ob [header.TCPMaxOptionsSize]byte
		n := 0
		if o != nil {
			n, _ = o.Marshal(ob[:])
		}
		f := header.TCPFields{SrcPort: peer.Port(), DstPort: rigPort, SeqNum: peerISS + 1, AckNum: base + uint32(rcvNxt), Flags: flags, WindowSize: 65535, Options: ob[:n]}
		if flags&header.TCPFlagSYN != 0 {
			f.SeqNum = peerISS
		}
		seg := make(header.TCP, f.EncodedLen())
		seg.Encode(&f)
		clk.AfterFunc(delay, func() { proto.HandleSegment(peer.Addr(), rigAddr, seg) })
	}
	toSender(header.TCPFlagSYN, &header.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 8, SACKPermitted: true}, 0)
	clk.Advance(0)
	clk.Advance(0)
	require.NotNil(t, synAck, "SYN-ACK")
	base = synAck.SeqNum() + 1
	toSender(header.TCPFlagACK, nil, 0)
	clk.Advance(0)
	f, err := ln.AcceptFlow()
	require.NoError(t, err)
	defer f.Close()
	e = f.(*endpoint)
	sendAck = func() {
		var so header.TCPOptions
		add := func(r [2]int) {
			if so.NumSACKBlocks < header.TCPMaxSACKBlocks {
				so.SACKBlocks[so.NumSACKBlocks] = header.SACKBlock{Start: base + uint32(r[0]), End: base + uint32(r[1])}
				so.NumSACKBlocks++
			}
		}
		for _, r := range ooo {
			if r[0] <= latest[0] && latest[1] <= r[1] {
				add(r)
			}
		}
		for _, r := range ooo {
			if !(r[0] <= latest[0] && latest[1] <= r[1]) {
				add(r)
			}
		}
		toSender(header.TCPFlagACK, &so, p.delay)
	}
	unacked, flushArmed := 0, false
	flush := func() {
		flushArmed = false
		if unacked > 0 {
			unacked = 0
			sendAck()
		}
	}
	deliver = func(seg header.TCP) {
		n := len(seg.Payload())
		if n == 0 {
			return
		}
		start := int(seg.SeqNum() - base)
		r := [2]int{start, start + n}
		switch {
		case r[1] <= rcvNxt: // a duplicate
		case r[0] <= rcvNxt:
			rcvNxt = r[1]
			for len(ooo) > 0 && ooo[0][0] <= rcvNxt {
				rcvNxt = max(rcvNxt, ooo[0][1])
				ooo = ooo[1:]
			}
			if unacked++; len(ooo) == 0 && unacked < p.ackEvery {
				if !flushArmed {
					flushArmed = true
					clk.AfterFunc(time.Millisecond, flush)
				}
				return
			}
		default:
			latest = r
			i, _ := slices.BinarySearchFunc(ooo, r, func(a, b [2]int) int { return a[0] - b[0] })
			ooo = slices.Insert(ooo, i, r)
			// Merge neighbours.
			merged := ooo[:1]
			for _, x := range ooo[1:] {
				if last := &merged[len(merged)-1]; x[0] <= last[1] {
					last[1] = max(last[1], x[1])
				} else {
					merged = append(merged, x)
				}
			}
			ooo = merged
		}
		unacked = 0
		sendAck()
	}

	data := make([]byte, size)
	ssEnded := false
	_, err = f.WriteNodelay(data)
	require.NoError(t, err)
	for rcvNxt < size {
		require.Less(t, clk.Now().Sub(t0), time.Hour, "the transfer did not end")
		clk.Advance(50 * time.Microsecond)
		if !ssEnded && e.ssthresh != initialSsthresh {
			ssEnded, res.ssEnd = true, e.cwnd
		}
	}
	res.elapsed = clk.Now().Sub(t0)
	res.stats = proto.Stats()
	return res
}

// TestHyStartBottleneck: at bottlenecks with a drop-tail queue, the
// first slow start ends before the queue overflows: no segment sent in
// it is dropped. Without HyStart (NoHyStart) slow start runs on until
// the queue drops a window's worth. The first row is the netem wire of
// BenchmarkKernelWire's bottleneck (100 Mbit/s, 64 packets, 1 ms each
// way), where RFC 9406's delay increase comes a round too late (the
// queue holds 7.7 ms, the threshold is 4 ms between rounds) and the
// ACK train ends slow start; on the last, a slow link, ACKs come
// further apart than a quarter of the RTT, no train forms, and the
// delay increase and CSS do it: they lose a few segments when CSS's
// growth overfills the queue, against a round's doubling without.
func TestHyStartBottleneck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        simPath
		ssBound  int // drops of the first slow start allowed with HyStart++
		bound    int // drops of the whole transfer allowed
		wantCSS  bool
		minTrain uint64
	}{
		// After slow start the window creeps into the queue: with
		// CUBIC's 5 % a round trip until it overflows, 5, 5 and 7
		// drops on the paths where the floor stopped at the queue
		// drops none.
		{"100Mbit,queue=64,1ms", simPath{100_000_000, 64, time.Millisecond, 1}, 0, 0, false, 1},
		{"100Mbit,queue=64,1ms,delack", simPath{100_000_000, 64, time.Millisecond, 2}, 0, 0, false, 1},
		{"100Mbit,queue=200,5ms,delack", simPath{100_000_000, 200, 5 * time.Millisecond, 2}, 0, 0, false, 1},
		{"20Mbit,queue=100,10ms", simPath{20_000_000, 100, 10 * time.Millisecond, 1}, 0, 0, true, 1},
		// 2.4 ms a packet: no train. CSS enters at 40 segments with
		// 38 in the pipe and the queue (40 + 20): its growth by a
		// quarter a round overfills it by up to a quarter window.
		{"5Mbit,queue=40,20ms", simPath{5_000_000, 40, 20 * time.Millisecond, 1}, 20, 20, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on := simSender(t, Options{}, tc.p, 2<<20)
			off := simSender(t, Options{NoHyStart: true}, tc.p, 2<<20)
			t.Logf("HyStart++: %d drops (%d in slow start), max queue %d, slow start ended at %d segments, CSS %d, ACK trains %d, %v; without: %d drops (%d in slow start), ended at %d, %v",
				on.drops, on.ssDrops, on.maxQ, on.ssEnd/1460, on.stats.HyStartCSS, on.stats.HyStartACKTrains, on.elapsed,
				off.drops, off.ssDrops, off.ssEnd/1460, off.elapsed)
			require.LessOrEqual(t, on.ssDrops, tc.ssBound, "drops of segments sent in the first slow start")
			require.LessOrEqual(t, on.drops, tc.bound, "drops of the transfer")
			require.Greater(t, off.ssDrops, 2*tc.ssBound+10, "without HyStart++ the queue overflows in slow start")
			require.LessOrEqual(t, on.drops, off.drops)
			require.Equal(t, tc.wantCSS, on.stats.HyStartCSS > 0, "CSS")
			require.Equal(t, tc.minTrain, on.stats.HyStartACKTrains, "ACK trains")
			require.Zero(t, off.stats.HyStartCSS+off.stats.HyStartACKTrains+off.stats.HyStartExits)
			// The simulated clock: the same bottleneck, the same time
			// within 2 %, or less.
			require.Less(t, on.elapsed, off.elapsed+off.elapsed/50)
		})
	}
}

// hyEndpoint returns an endpoint in its first slow start with 1000-byte
// segments, cwnd segments in flight, SRTT srtt.
func hyEndpoint(t *testing.T, o Options, cwnd int, srtt time.Duration) *endpoint {
	p := newTestProtocol(t)
	p.o.NoHyStart = o.NoHyStart
	e := p.newEndpoint(connID{}, nil)
	e.mss, e.cwnd, e.ssthresh, e.srtt = 1000, cwnd*1000, initialSsthresh, srtt
	e.sndUna, e.sndNxt, e.sndMax = 0, seqnum.Value(cwnd*1000), seqnum.Value(cwnd*1000)
	return e
}

// hyRound acknowledges segments one by one, spacing apart, each with
// the RTT sample rtt(i), the window kept full, until a round of
// HyStart++ ends (sndUna reaches its windowEnd) or slow start does; it
// returns the time after the last ACK.
func hyRound(e *endpoint, now time.Time, spacing time.Duration, rtt func(i int) time.Duration) time.Time {
	we, known := e.hy.windowEnd, e.hy.phase != hyIdle
	for i := 0; ; i++ {
		e.sndUna = e.sndUna.Add(seqnum.Size(e.mss))
		e.slowStartAck(e.mss, rtt(i), now)
		if !known {
			we, known = e.hy.windowEnd, true
		}
		if end := e.sndUna.Add(seqnum.Size(e.cwnd)); e.sndNxt.LessThan(end) {
			e.sndNxt = end
		}
		e.sndMax = e.sndNxt
		now = now.Add(spacing)
		if e.hy.phase == hyDone || !e.sndUna.LessThan(we) {
			return now
		}
	}
}

func constRTT(d time.Duration) func(int) time.Duration { return func(int) time.Duration { return d } }

// TestHyStartThresh: the RTT increase that ends standard slow start is
// an eighth of the last round's minimum RTT, within [4 ms, 16 ms] (RFC
// 9406 section 4.2).
func TestHyStartThresh(t *testing.T) {
	for _, tc := range []struct{ last, want time.Duration }{
		{100 * time.Microsecond, 4 * time.Millisecond},
		{2 * time.Millisecond, 4 * time.Millisecond},
		{32 * time.Millisecond, 4 * time.Millisecond},
		{40 * time.Millisecond, 5 * time.Millisecond},
		{100 * time.Millisecond, 12500 * time.Microsecond},
		{128 * time.Millisecond, 16 * time.Millisecond},
		{time.Second, 16 * time.Millisecond},
	} {
		require.Equal(t, tc.want, hystartThresh(tc.last), "last round's minimum %v", tc.last)
	}
}

// TestHyStartDelayIncrease plays rounds of a 40 ms path whose ACKs come
// too far apart for an ACK train: the window doubles while the round's
// minimum RTT stays within 5 ms (an eighth of 40) of the last one's;
// once it rises by more than an eighth after 8 samples, Conservative Slow Start grows
// the window by a quarter of slow start's growth; after CSS's fifth
// round (the partial first one counted) ssthresh is the window and
// slow start is over. Fewer than 8 samples in a round decide nothing.
func TestHyStartDelayIncrease(t *testing.T) {
	const rtt = 40 * time.Millisecond
	spacing := 3 * time.Millisecond // more than SRTT/4 once the RTT grows: no train
	e := hyEndpoint(t, Options{}, 10, 12*time.Millisecond)
	now := time.Unix(100, 0)
	now = hyRound(e, now, spacing, constRTT(rtt)) // 10 ACKs: 10 -> 20
	require.Equal(t, 20_000, e.cwnd)
	require.Equal(t, hySS, e.hy.phase)
	require.EqualValues(t, microseconds(rtt), e.hy.lastMin)
	// The ACK that ends a round sends into the next: 18 ACKs.
	now = hyRound(e, now, spacing, constRTT(rtt+4900*time.Microsecond))
	require.Equal(t, 38_000, e.cwnd, "4.9 ms more: standard slow start")
	require.Equal(t, hySS, e.hy.phase)

	// The next round's first 8 samples are 6 ms above the last round's
	// minimum, more than its eighth: CSS from the eighth ACK on.
	last := rtt + 4900*time.Microsecond
	acks := 0
	now = hyRound(e, now, spacing, func(i int) time.Duration {
		acks++
		if i < 7 {
			require.Equal(t, hySS, e.hy.phase, "after %d samples", i)
		}
		return last + 6*time.Millisecond
	})
	require.Equal(t, 36, acks)
	require.Equal(t, hyCSS, e.hy.phase)
	require.EqualValues(t, 1, e.p.Stats().HyStartCSS)
	// 8 ACKs of slow start, 28 of CSS (a quarter each).
	require.Equal(t, 38_000+8*1000+28*250, e.cwnd)
	require.EqualValues(t, 1, e.hy.cssRounds, "the partial round counts")

	for r := 2; r <= hyCSSRounds; r++ {
		before, n := e.cwnd, 0
		now = hyRound(e, now, spacing, func(int) time.Duration { n++; return last + 6*time.Millisecond })
		require.Equal(t, before+n*250, e.cwnd, "CSS round %d", r)
		if r < hyCSSRounds {
			require.Equal(t, hyCSS, e.hy.phase, "CSS round %d", r)
			require.Equal(t, initialSsthresh, e.ssthresh)
		}
	}
	require.Equal(t, hyDone, e.hy.phase)
	require.Equal(t, e.cwnd, e.ssthresh, "congestion avoidance from the window CSS reached")
	require.EqualValues(t, 1, e.p.Stats().HyStartExits)
	require.Zero(t, e.p.Stats().HyStartACKTrains)
}

// TestHyStartCSSGrowth: in CSS an ACK grows the window by a quarter of
// what slow start would (at most two segments per ACK, then divided).
func TestHyStartCSSGrowth(t *testing.T) {
	e := hyEndpoint(t, Options{}, 50, 10*time.Millisecond)
	e.hy.phase, e.hy.windowEnd, e.hy.cssBaseline = hyCSS, e.sndNxt, microseconds(20*time.Millisecond)
	now := time.Unix(100, 0)
	e.sndUna = e.sndUna.Add(1000)
	e.slowStartAck(1000, 0, now)
	require.Equal(t, 50_250, e.cwnd)
	e.sndUna = e.sndUna.Add(5000)
	e.slowStartAck(5000, 0, now) // a stretch ACK: two segments count
	require.Equal(t, 50_750, e.cwnd)
	e.hy.phase = hySS
	e.sndUna = e.sndUna.Add(5000)
	e.slowStartAck(5000, 0, now)
	require.Equal(t, 52_750, e.cwnd, "slow start: two segments")
}

// TestHyStartSpurious: an RTT increase that the rest of the round takes
// back (jitter, or a short queue that drained) sends CSS back to
// standard slow start, which may end again later (RFC 9406 section
// 4.2); a loss ends HyStart++ wherever it is.
func TestHyStartSpurious(t *testing.T) {
	const rtt = 40 * time.Millisecond
	spacing := 3 * time.Millisecond
	e := hyEndpoint(t, Options{}, 10, 12*time.Millisecond)
	now := time.Unix(100, 0)
	now = hyRound(e, now, spacing, constRTT(rtt))
	before, n := e.cwnd, 0
	now = hyRound(e, now, spacing, func(i int) time.Duration {
		n++
		if i < 8 {
			return rtt + 6*time.Millisecond // CSS at the eighth
		}
		if i == 8 {
			require.Equal(t, hyCSS, e.hy.phase)
		}
		return rtt + time.Millisecond // below the baseline: back
	})
	require.Equal(t, hySS, e.hy.phase)
	require.EqualValues(t, 1, e.p.Stats().HyStartCSS)
	require.EqualValues(t, 1, e.p.Stats().HyStartSpurious)
	require.Equal(t, before+8*1000+1*250+(n-9)*1000, e.cwnd, "8 ACKs of slow start, 1 of CSS, the rest of slow start")
	require.Equal(t, initialSsthresh, e.ssthresh)

	// CSS again, then a loss: congestion avoidance from the loss's
	// ssthresh, and HyStart++ is done.
	last := time.Duration(e.hy.lastMin) * time.Microsecond
	now = hyRound(e, now, spacing, constRTT(last+6*time.Millisecond))
	require.Equal(t, hyCSS, e.hy.phase)
	e.reduceSsthresh()
	require.Equal(t, hyDone, e.hy.phase)
	e.cwnd = e.ssthresh / 2 // as after an RTO: slow start again, without HyStart++
	before = e.cwnd
	hyRound(e, now, spacing, constRTT(10*rtt))
	require.Equal(t, before+1000, e.cwnd)
	require.EqualValues(t, 2, e.p.Stats().HyStartCSS)
	require.Zero(t, e.p.Stats().HyStartExits)
}

// TestHyStartACKTrain: from 16 segments on, ACKs that keep coming, each
// within a quarter of SRTT of the last, for half of SRTT since the
// round began, end slow start with ssthresh = cwnd. Windows that send
// in bursts shorter than the path, with idle time between, do not; nor
// do ACKs whose RTT samples are short (a path that reorders: the train
// is measured against SRTT, not the minimum RTT).
func TestHyStartACKTrain(t *testing.T) {
	const srtt = 2 * time.Millisecond
	now := time.Unix(100, 0)

	// Bursts: 10 µs apart, then the rest of the round trip idle.
	e := hyEndpoint(t, Options{}, 10, srtt)
	for range 4 {
		now = hyRound(e, now, 10*time.Microsecond, constRTT(100*time.Microsecond))
		now = now.Add(srtt)
	}
	require.Greater(t, e.cwnd, 100_000)
	require.Equal(t, hySS, e.hy.phase)

	// A continuous train at 120 µs (100 Mbit/s): past 1 ms, the ninth
	// ACK of the round, slow start ends.
	e = hyEndpoint(t, Options{}, 20, srtt)
	e.hy.phase, e.hy.windowEnd = hySS, e.sndNxt
	e.hy.roundStart = microseconds32(e.p.since(now))
	e.hy.lastACK = e.hy.roundStart
	n := 0
	hyRound(e, now.Add(120*time.Microsecond), 120*time.Microsecond, func(int) time.Duration { n++; return srtt })
	require.Equal(t, 9, n)
	require.Equal(t, hyDone, e.hy.phase)
	require.Equal(t, 29_000, e.cwnd)
	require.Equal(t, e.cwnd, e.ssthresh)
	require.EqualValues(t, 1, e.p.Stats().HyStartACKTrains)

	// Below 16 segments: no train.
	e = hyEndpoint(t, Options{}, 10, srtt)
	hyRound(e, now, 300*time.Microsecond, constRTT(srtt))
	require.Equal(t, hySS, e.hy.phase)
	require.Equal(t, 20_000, e.cwnd)

	// Off: plain slow start.
	e = hyEndpoint(t, Options{NoHyStart: true}, 20, srtt)
	hyRound(e, now, 120*time.Microsecond, constRTT(srtt))
	require.Equal(t, hyDone, e.hy.phase)
	require.Equal(t, 21_000, e.cwnd)
	require.Equal(t, initialSsthresh, e.ssthresh)
}

// TestCUBICAfterHyStart: once HyStart++ has ended slow start, before
// any loss, CUBIC grows the window by at least 5 % a round trip
// (Linux's bictcp_update), so that an exit below the path's capacity
// costs a few round trips; after a loss it follows its function again
// (here, on a short path, the Reno-friendly rate: under a segment).
func TestCUBICAfterHyStart(t *testing.T) {
	e := ccEndpoint(t, CUBIC, 100)
	e.srtt = 100 * time.Microsecond
	e.ssthresh = e.cwnd // as the ACK train or CSS leaves it
	now := ackRounds(e, time.Unix(100, 0), e.srtt, 1)
	require.GreaterOrEqual(t, e.cwnd, 105_000)
	require.Less(t, e.cwnd, 106_000)
	now = ackRounds(e, now, e.srtt, 10)
	require.Greater(t, e.cwnd, 105_000*160/100, "compounded: 1.05^11 > 1.7")

	loss(e)
	w := e.cwnd
	ackRounds(e, now, e.srtt, 1)
	require.Less(t, e.cwnd, w+1000, "after a loss: CUBIC's own growth")
}

// TestEndpointSizeClass: HyStart++'s state fits in the connection
// without moving it to the next allocation size class (1536 bytes).
func TestEndpointSizeClass(t *testing.T) {
	require.LessOrEqual(t, unsafe.Sizeof(endpoint{}), uintptr(1408))
}
