package tcp

import (
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

func TestCookieRoundTrip(t *testing.T) {
	k := newKeys([]byte("cookie secret"))
	id := connID{local: netip.MustParseAddrPort("10.0.0.2:80"), remote: netip.MustParseAddrPort("10.0.0.9:40000")}
	const slot = 26_562_500
	for idx := range uint8(len(cookieMSS)) {
		for _, peerISN := range []seqnum.Value{0, 1, 0x7fffffff, 0xffffffff, 123456789} {
			c := k.cookie(id, peerISN, slot, idx)
			for _, now := range []uint32{slot, slot + 1} {
				got, ok := k.checkCookie(id, peerISN, c, now)
				require.True(t, ok, "idx %d isn %d now %d", idx, peerISN, now)
				assert.Equal(t, idx, got)
			}
			// Expired: two slots later; and not valid before it was made.
			_, ok := k.checkCookie(id, peerISN, c, slot+2)
			assert.False(t, ok, "expired")
			_, ok = k.checkCookie(id, peerISN, c, slot-1)
			assert.False(t, ok, "from the future")
			// Wrong peer ISN.
			_, ok = k.checkCookie(id, peerISN+1, c, slot)
			assert.False(t, ok, "peer ISN")
			// Wrong tuple: each address and port.
			for _, bad := range []connID{
				{local: netip.MustParseAddrPort("10.0.0.3:80"), remote: id.remote},
				{local: netip.MustParseAddrPort("10.0.0.2:81"), remote: id.remote},
				{local: id.local, remote: netip.MustParseAddrPort("10.0.0.8:40000")},
				{local: id.local, remote: netip.MustParseAddrPort("10.0.0.9:40001")},
				{local: id.remote, remote: id.local},
			} {
				_, ok = k.checkCookie(bad, peerISN, c, slot)
				assert.False(t, ok, "tuple %v", bad)
			}
			// Tampered: any one bit flipped, the MSS index bits included.
			for bit := range 32 {
				_, ok = k.checkCookie(id, peerISN, c^seqnum.Value(1)<<bit, slot)
				assert.False(t, ok, "bit %d flipped", bit)
			}
			// Another secret.
			k2 := newKeys([]byte("other secret"))
			_, ok = k2.checkCookie(id, peerISN, c, slot)
			assert.False(t, ok, "secret")
		}
	}
}

func TestCookieMSSIndex(t *testing.T) {
	for _, c := range []struct {
		mss  uint16
		want uint16
	}{
		{0, 536}, {100, 536}, {536, 536}, {1219, 536}, {1220, 1220}, {1400, 1300},
		{1448, 1440}, {1460, 1460}, {1500, 1460}, {8960, 8960}, {65535, 8960},
	} {
		assert.Equal(t, c.want, cookieMSS[cookieMSSIndex(c.mss)], "mss %d", c.mss)
	}
	for i, m := range cookieMSS {
		assert.Equal(t, uint8(i), cookieMSSIndex(m))
	}
	assert.LessOrEqual(t, len(cookieMSS), 1<<cookieIndexBits)
}

// TestCookieTSOptions round-trips every window scale and SACK
// combination through the TSval of the SYN-ACK and the rebuilt SYN.
func TestCookieTSOptions(t *testing.T) {
	for _, tsNow := range []uint32{0, 1, 63, 64, 1_000_000_007, 0xffffffff} {
		for ws := 0; ws <= 15; ws++ { // 15: none offered
			for _, sack := range []bool{false, true} {
				synOpts := header.TCPOptions{HasTimestamps: true, SACKPermitted: sack}
				if ws < 15 {
					synOpts.HasWindowScale, synOpts.WindowScale = true, uint8(ws)
				}
				tsval := cookieTSVal(tsNow, cookieTSOptions(&synOpts))
				// Never ahead of our clock, never far behind.
				age := tsNow - tsval
				assert.Less(t, age, uint32(2*(cookieTSMask+1)), "tsNow %d", tsNow)
				ack := segment{seq: 1001, ack: 5001, flags: header.TCPFlagACK}
				ack.opts = header.TCPOptions{HasTimestamps: true, TSVal: 777, TSEcr: tsval}
				syn := synFromCookie(&ack, 4)
				assert.Equal(t, seqnum.Value(1000), syn.seq)
				assert.Equal(t, uint16(1460), syn.opts.MSS)
				assert.Equal(t, ws < 15, syn.opts.HasWindowScale, "ws %d", ws)
				if ws < 15 {
					assert.Equal(t, uint8(ws), syn.opts.WindowScale)
				}
				assert.Equal(t, sack, syn.opts.SACKPermitted)
				assert.True(t, syn.opts.HasTimestamps)
				assert.Equal(t, uint32(777), syn.opts.TSVal)
			}
		}
	}
	// A window scale above 14 is capped like synOptions does.
	o := header.TCPOptions{HasWindowScale: true, WindowScale: 200}
	assert.Equal(t, uint32(14), cookieTSOptions(&o))
	// Without timestamps, no options survive.
	ack := segment{seq: 1, ack: 1, flags: header.TCPFlagACK}
	syn := synFromCookie(&ack, 0)
	assert.False(t, syn.opts.HasWindowScale || syn.opts.SACKPermitted || syn.opts.HasTimestamps)
	assert.Equal(t, uint16(536), syn.opts.MSS)
}

// TestRcvShiftFor checks that a cookie SYN-ACK announces the window
// scale the endpoint it creates will use.
func TestRcvShiftFor(t *testing.T) {
	for _, size := range []int{1, 0xffff, 0x10000, 1 << 20, 1<<20 + 1, 3 << 20, 1 << 30} {
		p, err := New(Options{
			Addr:       netip.MustParseAddr("10.0.0.1"),
			Output:     func(src, dst netip.Addr, h, payload []byte) error { return nil },
			Clock:      clock.NewManual(time.Unix(0, 0)),
			RecvBuffer: size,
		})
		require.NoError(t, err)
		e := p.newEndpoint(connID{}, nil)
		assert.Equal(t, e.rcvShift, rcvShiftFor(p.o.RecvBuffer), "size %d", size)
		p.Close()
	}
}

// cookieRig is a Protocol whose segments are crafted and captured by
// the test.
type cookieRig struct {
	t   *testing.T
	p   *Protocol
	clk *clock.Manual

	mu  sync.Mutex
	out []header.TCP
}

var (
	rigAddr = netip.MustParseAddr("10.0.0.2")
	rigPort = uint16(80)
)

func newCookieRig(t *testing.T, o Options) *cookieRig {
	r := &cookieRig{t: t, clk: clock.NewManual(time.Unix(1_700_000_000, 0))}
	o.Addr = rigAddr
	o.Clock = r.clk
	o.Output = func(src, dst netip.Addr, h, payload []byte) error {
		seg := append(append(header.TCP(nil), h...), payload...)
		r.mu.Lock()
		r.out = append(r.out, seg)
		r.mu.Unlock()
		return nil
	}
	p, err := New(o)
	require.NoError(t, err)
	r.p = p
	t.Cleanup(func() { p.Close() })
	return r
}

// send hands the protocol a segment from src.
func (r *cookieRig) send(src netip.AddrPort, f header.TCPFields, o *header.TCPOptions, payload []byte) {
	var buf [header.TCPMaxOptionsSize]byte
	if o != nil {
		n, err := o.Marshal(buf[:])
		require.NoError(r.t, err)
		f.Options = buf[:n]
	}
	f.SrcPort, f.DstPort = src.Port(), rigPort
	seg := make(header.TCP, f.EncodedLen(), f.EncodedLen()+len(payload))
	seg.Encode(&f)
	seg = append(seg, payload...)
	seg.SetChecksumFor(src.Addr(), rigAddr)
	r.p.HandleSegment(src.Addr(), rigAddr, seg)
}

// take returns and forgets the segments sent.
func (r *cookieRig) take() []header.TCP {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.out
	r.out = nil
	return out
}

// fillBacklog sends n SYNs from spoofed peers.
func (r *cookieRig) fillBacklog(n int) {
	for i := range n {
		src := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.200"), uint16(1000+i))
		r.send(src, header.TCPFields{SeqNum: uint32(i), Flags: header.TCPFlagSYN, WindowSize: 1000}, nil, nil)
	}
	r.take()
}

func (r *cookieRig) conn(remote netip.AddrPort) *endpoint {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return r.p.conns[connID{local: netip.AddrPortFrom(rigAddr, rigPort), remote: remote}]
}

func opts(t *testing.T, seg header.TCP) header.TCPOptions {
	o, err := header.ParseTCPOptions(seg.Options())
	require.NoError(t, err)
	return o
}

// TestCookieConnectionOptions completes handshakes through cookies and
// checks the connections' negotiated options and variables.
func TestCookieConnectionOptions(t *testing.T) {
	const mss = 1460
	cases := []struct {
		name string
		syn  header.TCPOptions
		// What the connection must run with.
		wsOK, sackOK, tsOK bool
		sndShift           uint8
		peerMSS            int
	}{
		{"all", header.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true, HasTimestamps: true, TSVal: 4242}, true, true, true, 7, 1460},
		{"ts and sack", header.TCPOptions{HasMSS: true, MSS: 1400, SACKPermitted: true, HasTimestamps: true, TSVal: 1}, false, true, true, 0, 1300},
		{"ts and wscale 0", header.TCPOptions{HasMSS: true, MSS: 9000, HasWindowScale: true, HasTimestamps: true, TSVal: 99}, true, false, true, 0, 1460},
		{"ts and wscale 14", header.TCPOptions{HasMSS: true, MSS: 1220, HasWindowScale: true, WindowScale: 14, HasTimestamps: true, TSVal: 0xfffffff0}, true, false, true, 14, 1220},
		{"no timestamps", header.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true}, false, false, false, 0, 1460},
		{"no options", header.TCPOptions{}, false, false, false, 0, 536},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newCookieRig(t, Options{SYNBacklog: 2, MaxConnections: 8, MSS: mss})
			type accepted struct {
				f     tcpflow.Flow
				hello string
			}
			flows := make(chan accepted, 1)
			require.NoError(t, r.p.Listen(rigPort, tcpflow.Listener{Process: func(f tcpflow.Flow) {
				b := make([]byte, 5)
				io.ReadFull(f, b)
				flows <- accepted{f, string(b)}
				io.Copy(io.Discard, f)
			}}))
			r.fillBacklog(2)
			peer := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(50000+i))
			var peerISN uint32 = 0xfffffffd // the sequence numbers wrap in the first data
			r.send(peer, header.TCPFields{SeqNum: peerISN, Flags: header.TCPFlagSYN, WindowSize: 65535}, &c.syn, nil)
			require.Nil(t, r.conn(peer), "the SYN left no state")
			out := r.take()
			require.Len(t, out, 1)
			synack := out[0]
			require.Equal(t, header.TCPFlagSYN|header.TCPFlagACK, synack.Flags())
			assert.Equal(t, uint32(peerISN+1), synack.AckNum())
			so := opts(t, synack)
			assert.True(t, so.HasMSS)
			assert.Equal(t, uint16(mss), so.MSS)
			assert.Equal(t, c.tsOK, so.HasTimestamps)
			assert.Equal(t, c.wsOK, so.HasWindowScale)
			assert.Equal(t, c.sackOK, so.SACKPermitted)
			if c.wsOK {
				assert.Equal(t, uint8(5), so.WindowScale, "1 MB receive buffer")
			}
			if c.tsOK {
				assert.Equal(t, c.syn.TSVal, so.TSEcr)
				assert.LessOrEqual(t, so.TSVal, uint32(r.clk.Now().UnixMilli()))
			}
			assert.Equal(t, uint64(1), r.p.Stats().SYNCookiesSent)

			// The handshake's ACK: with the first data on even cases, alone
			// (the data follows) on odd ones.
			r.clk.Advance(10 * time.Second)
			withData := i%2 == 0
			var ao *header.TCPOptions
			if c.tsOK {
				ao = &header.TCPOptions{HasTimestamps: true, TSVal: c.syn.TSVal + 10, TSEcr: so.TSVal}
			}
			ack := header.TCPFields{SeqNum: peerISN + 1, AckNum: synack.SeqNum() + 1, Flags: header.TCPFlagACK, WindowSize: 1000}
			var payload []byte
			if withData {
				ack.Flags |= header.TCPFlagPSH
				payload = []byte("hello")
			}
			r.send(peer, ack, ao, payload)
			st := r.p.Stats()
			assert.Equal(t, uint64(1), st.SYNCookiesValid)
			assert.Equal(t, uint64(0), st.SYNCookiesInvalid)
			assert.Equal(t, uint64(3), st.PassiveOpens)

			e := r.conn(peer)
			require.NotNil(t, e)
			type vars struct {
				state                    state
				wsOK, sackOK, tsOK       bool
				sndShift, rcvShift       uint8
				mss                      int
				tsRecent, sndWnd         uint32
				iss, sndUna, sndNxt, irs seqnum.Value
				rcvNxt                   seqnum.Value
			}
			e.mu.Lock()
			got := vars{
				e.state, e.wsOK, e.sackOK, e.tsOK, e.sndShift, e.rcvShift, e.mss, e.tsRecent, e.sndWnd,
				e.iss, e.sndUna, e.sndNxt, e.irs, e.rcvNxt,
			}
			e.mu.Unlock()
			want := vars{
				state: stateEstablished, wsOK: c.wsOK, sackOK: c.sackOK, tsOK: c.tsOK,
				sndShift: c.sndShift, mss: min(mss, c.peerMSS), sndWnd: uint32(1000) << c.sndShift,
				iss: seqnum.Value(synack.SeqNum()), sndUna: seqnum.Value(synack.SeqNum() + 1), sndNxt: seqnum.Value(synack.SeqNum() + 1),
				irs: seqnum.Value(peerISN), rcvNxt: seqnum.Value(peerISN + 1),
			}
			if c.wsOK {
				want.rcvShift = 5
			}
			if c.tsOK {
				want.mss -= 12
				want.tsRecent = c.syn.TSVal + 10
			}
			if withData {
				want.rcvNxt = want.rcvNxt.Add(5) // the ACK's data was taken
			}
			require.Equal(t, want, got)
			if !withData {
				ack.Flags |= header.TCPFlagPSH // at the same sequence number
				if ao != nil {
					ao.TSVal++
				}
				r.send(peer, ack, ao, []byte("hello"))
			}
			var a accepted
			select {
			case a = <-flows:
			case <-time.After(10 * time.Second): // a guard, not a timing
				t.Fatal("no flow delivered")
			}
			f := a.f
			assert.Equal(t, peer, f.Dst())
			assert.Equal(t, "hello", a.hello)

			// Both ways: our data goes out with the options agreed.
			r.take()
			_, err := f.Write([]byte("world"))
			require.NoError(t, err)
			out = r.take()
			require.NotEmpty(t, out)
			var data header.TCP
			for _, s := range out {
				if len(s.Payload()) > 0 {
					data = s
				}
			}
			require.NotNil(t, data)
			assert.Equal(t, "world", string(data.Payload()))
			assert.Equal(t, synack.SeqNum()+1, data.SeqNum())
			assert.Equal(t, uint32(peerISN+1+5), data.AckNum())
			do := opts(t, data)
			assert.Equal(t, c.tsOK, do.HasTimestamps)
			if c.tsOK {
				assert.Equal(t, ao.TSVal, do.TSEcr)
				assert.GreaterOrEqual(t, do.TSVal, so.TSVal, "our timestamps do not go backwards")
			}
			if c.wsOK {
				assert.Equal(t, uint16(rcvInitialWindow>>5), data.WindowSize(), "the window is scaled (the initial window, autotuning)")
			} else {
				assert.Equal(t, uint16(0xffff), data.WindowSize())
			}
		})
	}
}

// TestCookieRejected checks the ACKs that must not create connections.
func TestCookieRejected(t *testing.T) {
	// Half-open connections give up after 3 s.
	r := newCookieRig(t, Options{SYNBacklog: 1, MaxConnections: 3, SYNRetries: 1, RTOInitial: time.Second})
	require.NoError(t, r.p.Listen(rigPort, tcpflow.Listener{Process: func(f tcpflow.Flow) { io.Copy(io.Discard, f) }}))
	peer := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 50000)

	// No cookie was ever sent: a stray ACK is reset without a hash.
	r.send(peer, header.TCPFields{SeqNum: 1, AckNum: 2, Flags: header.TCPFlagACK, WindowSize: 100}, nil, nil)
	out := r.take()
	require.Len(t, out, 1)
	assert.Equal(t, header.TCPFlagRST, out[0].Flags())
	assert.Equal(t, uint64(0), r.p.Stats().SYNCookiesInvalid)

	r.fillBacklog(1)
	handshake := func(from netip.AddrPort, isn uint32) uint32 {
		r.send(from, header.TCPFields{SeqNum: isn, Flags: header.TCPFlagSYN, WindowSize: 100}, nil, nil)
		out := r.take()
		require.Len(r.t, out, 1)
		return out[0].SeqNum()
	}
	cookie := handshake(peer, 1000)
	expectReset := func(from netip.AddrPort, seq, ack uint32, why string) {
		t.Helper()
		before := r.p.Stats().SYNCookiesInvalid
		r.send(from, header.TCPFields{SeqNum: seq, AckNum: ack, Flags: header.TCPFlagACK, WindowSize: 100}, nil, nil)
		out := r.take()
		require.Len(t, out, 1, why)
		assert.Equal(t, header.TCPFlagRST, out[0].Flags(), why)
		assert.Equal(t, ack, out[0].SeqNum(), why)
		assert.Equal(t, before+1, r.p.Stats().SYNCookiesInvalid, why)
		assert.Nil(t, r.conn(from), why)
	}
	expectReset(peer, 1001, cookie+2, "wrong cookie")
	expectReset(peer, 1002, cookie+1, "wrong peer ISN")
	expectReset(netip.AddrPortFrom(peer.Addr(), 50001), 1001, cookie+1, "wrong port")
	assert.Equal(t, 1, r.p.NumConnections())

	// Expired: the cookie two slots later. The listener sent no cookie
	// since, so the ACK is reset without counting.
	r.clk.Advance(2 * cookieSlotSeconds * time.Second)
	r.take()
	require.Equal(t, 0, r.p.NumConnections(), "the half-open connection gave up")
	r.send(peer, header.TCPFields{SeqNum: 1001, AckNum: cookie + 1, Flags: header.TCPFlagACK, WindowSize: 100}, nil, nil)
	out = r.take()
	require.Len(t, out, 1)
	assert.Equal(t, header.TCPFlagRST, out[0].Flags())
	assert.Nil(t, r.conn(peer))
	assert.Equal(t, uint64(3), r.p.Stats().SYNCookiesInvalid)
	// Expired too when the listener is still sending cookies.
	r.fillBacklog(1)
	handshake(netip.AddrPortFrom(peer.Addr(), 60000), 7)
	expectReset(peer, 1001, cookie+1, "expired")

	// One slot later, a fresh cookie is still good.
	cookie = handshake(peer, 1000)
	r.clk.Advance(cookieSlotSeconds * time.Second)
	r.take()
	r.send(peer, header.TCPFields{SeqNum: 1001, AckNum: cookie + 1, Flags: header.TCPFlagACK, WindowSize: 100}, nil, nil)
	require.NotNil(t, r.conn(peer))
	assert.Equal(t, uint64(1), r.p.Stats().SYNCookiesValid)
	assert.Empty(t, r.take())

	// At the connection limit a valid cookie is dropped, not reset.
	r.fillBacklog(1)
	peer2 := netip.AddrPortFrom(peer.Addr(), 50002)
	cookie = handshake(peer2, 5000)
	peer3 := netip.AddrPortFrom(peer.Addr(), 50003)
	cookie3 := handshake(peer3, 6000)
	r.send(peer2, header.TCPFields{SeqNum: 5001, AckNum: cookie + 1, Flags: header.TCPFlagACK, WindowSize: 100}, nil, nil)
	require.Equal(t, 3, r.p.NumConnections())
	dropped := r.p.Stats().SYNDropped
	r.send(peer3, header.TCPFields{SeqNum: 6001, AckNum: cookie3 + 1, Flags: header.TCPFlagACK, WindowSize: 100}, nil, nil)
	assert.Empty(t, r.take())
	assert.Nil(t, r.conn(peer3))
	assert.Equal(t, 3, r.p.NumConnections())
	assert.Equal(t, dropped+1, r.p.Stats().SYNDropped)
	// And SYNs are dropped too at the limit: no cookie would do.
	sent := r.p.Stats().SYNCookiesSent
	r.send(netip.AddrPortFrom(peer.Addr(), 50004), header.TCPFields{SeqNum: 1, Flags: header.TCPFlagSYN, WindowSize: 100}, nil, nil)
	assert.Empty(t, r.take())
	assert.Equal(t, sent, r.p.Stats().SYNCookiesSent)
}

// TestNoSYNCookies checks that with cookies disabled a full backlog
// drops SYNs and cookie-like ACKs are reset.
func TestNoSYNCookies(t *testing.T) {
	r := newCookieRig(t, Options{SYNBacklog: 1, NoSYNCookies: true})
	require.NoError(t, r.p.Listen(rigPort, tcpflow.Listener{Process: func(f tcpflow.Flow) {}}))
	r.fillBacklog(1)
	peer := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 50000)
	r.send(peer, header.TCPFields{SeqNum: 1000, Flags: header.TCPFlagSYN, WindowSize: 100}, nil, nil)
	assert.Empty(t, r.take())
	st := r.p.Stats()
	assert.Equal(t, uint64(1), st.SYNDropped)
	assert.Equal(t, uint64(0), st.SYNCookiesSent)
	// Even the right cookie is not accepted.
	c := r.p.keys.cookie(connID{local: netip.AddrPortFrom(rigAddr, rigPort), remote: peer}, 1000, cookieSlot(r.clk.Now()), 0)
	r.send(peer, header.TCPFields{SeqNum: 1001, AckNum: uint32(c) + 1, Flags: header.TCPFlagACK, WindowSize: 100}, nil, nil)
	out := r.take()
	require.Len(t, out, 1)
	assert.Equal(t, header.TCPFlagRST, out[0].Flags())
	assert.Nil(t, r.conn(peer))
}
