package tcp

import (
	"encoding/binary"
	"time"

	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// SYN cookies (RFC 4987 section 3.6, after Linux's): when a listener's
// SYN backlog is full, a SYN is answered with a SYN-ACK whose initial
// sequence number encodes what the connection needs and nothing is
// remembered. The peer's ACK of that SYN-ACK, arriving for no
// connection, gives the cookie back (its acknowledgment number minus
// one) with the peer's ISN (its sequence number minus one); a valid
// cookie creates the connection directly in ESTABLISHED.
//
// The cookie is 29 bits of a keyed hash of the connection's addresses
// and ports, the peer's ISN, a coarse time slot and an MSS index, and
// the 3-bit MSS index itself:
//
//	bits 31..3  SHA-256('c', addresses, ports, peer ISN, slot, index, secret)
//	bits  2..0  index into cookieMSS
//
// A cookie is valid during its slot and the next one (64 to 128
// seconds). The options a cookie cannot carry survive only if the SYN
// carried timestamps: the low bits of our SYN-ACK's TSval, which the
// peer echoes in every TSecr, hold its window scale and SACK-permitted.
// Without timestamps the connection runs without window scale and SACK.
// Those bits are not authenticated, as in Linux: they are the peer's own
// choices, and a peer lying about them harms only its own connection.

// cookieSlotSeconds is the length of a cookie's time slot.
const cookieSlotSeconds = 64

// cookieMSS is the table of MSS values a cookie can encode (3 bits):
// the common path MTUs (minimum, IPv6 tunnels, PPPoE and VPNs,
// Ethernet, jumbo frames). A peer's MSS is rounded down to an entry; one
// below 536 counts as 536, the minimum every host must accept (RFC 9293
// section 3.7.1).
var cookieMSS = [...]uint16{536, 1220, 1300, 1440, 1460, 4312, 8960}

const cookieIndexBits = 3

// cookieTSBits is how many low bits of the SYN-ACK's TSval carry the
// options: bits 0..3 the peer's window scale (0 to 14; 15 when it
// offered none), bit 4 SACK-permitted, bit 5 reserved (zero).
const (
	cookieTSBits   = 6
	cookieTSMask   = 1<<cookieTSBits - 1
	cookieNoWScale = 0xf
	cookieTSSACK   = 1 << 4
)

// cookieSlot returns the time slot of now.
func cookieSlot(now time.Time) uint32 { return uint32(now.Unix() / cookieSlotSeconds) }

// cookieMSSIndex returns the index of the largest table entry not above
// mss (0 for any mss below the first).
func cookieMSSIndex(mss uint16) uint8 {
	i := 0
	for i+1 < len(cookieMSS) && cookieMSS[i+1] <= mss {
		i++
	}
	return uint8(i)
}

// cookieHash is the keyed hash of a cookie.
func (k *keys) cookieHash(id connID, peerISN seqnum.Value, slot uint32, idx uint8) uint32 {
	var extra [4 + 4 + 1]byte
	binary.BigEndian.PutUint32(extra[0:], uint32(peerISN))
	binary.BigEndian.PutUint32(extra[4:], slot)
	extra[8] = idx
	return k.hash('c', id.local, id.remote, true, extra[:])
}

// cookie returns the ISN of a SYN-ACK answering the SYN of id whose
// sequence number is peerISN, sent in slot, for an MSS index.
func (k *keys) cookie(id connID, peerISN seqnum.Value, slot uint32, idx uint8) seqnum.Value {
	const low = 1<<cookieIndexBits - 1
	return seqnum.Value(k.cookieHash(id, peerISN, slot, idx)&^low | uint32(idx))
}

// checkCookie validates a cookie given back in slot now (it may have
// been made in now or the slot before) and returns its MSS index.
func (k *keys) checkCookie(id connID, peerISN, cookie seqnum.Value, now uint32) (idx uint8, ok bool) {
	const low = 1<<cookieIndexBits - 1
	idx = uint8(uint32(cookie) & low)
	if int(idx) >= len(cookieMSS) {
		return 0, false
	}
	for _, slot := range [2]uint32{now, now - 1} {
		if k.cookie(id, peerISN, slot, idx) == cookie {
			return idx, true
		}
	}
	return 0, false
}

// cookieTSVal returns the TSval of a cookie SYN-ACK sent at tsNow (our
// timestamp clock) carrying the option bits opts: tsNow with its low
// bits replaced, never above tsNow, so that our later timestamps do not
// go backwards.
func cookieTSVal(tsNow uint32, opts uint32) uint32 {
	ts := tsNow&^cookieTSMask | opts&cookieTSMask
	if int32(ts-tsNow) > 0 {
		ts -= cookieTSMask + 1
	}
	return ts
}

// cookieTSOptions encodes the peer's window scale and SACK-permitted
// from its SYN's options.
func cookieTSOptions(o *header.TCPOptions) uint32 {
	v := uint32(cookieNoWScale)
	if o.HasWindowScale {
		v = uint32(min(o.WindowScale, 14))
	}
	if o.SACKPermitted {
		v |= cookieTSSACK
	}
	return v
}

// synFromCookie rebuilds the SYN a valid cookie ACK s answers: the
// peer's ISN and the options the cookie and the ACK's TSecr kept.
func synFromCookie(s *segment, idx uint8) segment {
	syn := segment{seq: s.seq.Sub(1), flags: header.TCPFlagSYN}
	syn.opts.HasMSS, syn.opts.MSS = true, cookieMSS[idx]
	if s.opts.HasTimestamps {
		bits := s.opts.TSEcr & cookieTSMask
		if ws := uint8(bits & 0xf); ws != cookieNoWScale {
			syn.opts.HasWindowScale, syn.opts.WindowScale = true, ws
		}
		syn.opts.SACKPermitted = bits&cookieTSSACK != 0
		syn.opts.HasTimestamps, syn.opts.TSVal = true, s.opts.TSVal
	}
	return syn
}

// rcvShiftFor is the window scale newEndpoint chooses for a receive
// buffer of size bytes; a cookie SYN-ACK announces it before the
// endpoint exists.
func rcvShiftFor(size int) uint8 {
	var shift uint8
	for shift < 14 && size>>shift > 0xffff {
		shift++
	}
	return shift
}

// sendCookie answers the SYN s of id, for a listener whose backlog is
// full, with a SYN-ACK whose ISN is a cookie, remembering nothing.
func (p *Protocol) sendCookie(id connID, s *segment, now time.Time) {
	peerMSS := uint16(minMSS)
	if s.opts.HasMSS && s.opts.MSS > 0 {
		peerMSS = s.opts.MSS
	}
	idx := cookieMSSIndex(peerMSS)
	iss := p.keys.cookie(id, s.seq, cookieSlot(now), idx)
	var o header.TCPOptions
	o.HasMSS, o.MSS = true, uint16(min(p.o.MSS, 0xffff))
	if s.opts.HasTimestamps {
		if s.opts.HasWindowScale {
			o.HasWindowScale, o.WindowScale = true, rcvShiftFor(p.o.RecvBuffer)
		}
		o.SACKPermitted = s.opts.SACKPermitted
		tsNow := uint32(now.UnixMilli()) // endpoint.tsNow's clock
		o.HasTimestamps = true
		o.TSVal, o.TSEcr = cookieTSVal(tsNow, cookieTSOptions(&s.opts)), s.opts.TSVal
	}
	var buf [header.TCPMaxOptionsSize]byte
	n, _ := o.Marshal(buf[:])
	f := header.TCPFields{
		SrcPort: id.local.Port(), DstPort: id.remote.Port(),
		SeqNum: uint32(iss), AckNum: uint32(s.seq.Add(1)),
		Flags: header.TCPFlagSYN | header.TCPFlagACK,
		// The window a new endpoint's SYN-ACK announces (windowField):
		// never scaled in a SYN.
		WindowSize: uint16(min(p.o.RecvBuffer, 0xffff)),
		Options:    buf[:n],
	}
	p.stats.cookiesSent.Add(1)
	p.writeFields(id, &f, nil)
}

// handleCookieACK handles an ACK (no SYN, no RST) for no connection: if
// its port's listener recently answered SYNs with cookies and the ACK
// gives back a valid one, it creates the connection. It reports whether
// it took the segment; false means the segment deserves a reset.
func (p *Protocol) handleCookieACK(id connID, s *segment) bool {
	if p.o.NoSYNCookies {
		return false
	}
	now := p.clk.Now()
	slot := cookieSlot(now)
	p.mu.Lock()
	l := p.lookupListenerLocked(id.local.Port())
	// Only a listener that sent cookies in this slot or the one before
	// may get valid ones back (Linux's "recent overflow" check): other
	// stray ACKs cost no hash and are not counted as invalid cookies.
	// The listeners function's listeners are kept while they may get
	// cookies back (Protocol.transient).
	recent := l != nil && !p.closed && !l.closed && l.cookieSlot != 0 && slot-(l.cookieSlot-1) <= 1
	p.mu.Unlock()
	if !recent {
		return false
	}
	idx, ok := p.keys.checkCookie(id, s.seq.Sub(1), s.ack.Sub(1), slot)
	if !ok {
		p.stats.cookiesInvalid.Add(1)
		return false
	}
	p.stats.cookiesValid.Add(1)

	// Lock order: e.mu, then p.mu. e is not yet reachable, so that it
	// is fully set up before any other segment can find it.
	e := p.newEndpoint(id, l.ka)
	e.mu.Lock()
	p.mu.Lock()
	if p.closed || l.closed || p.lookupListenerLocked(id.local.Port()) != l {
		p.mu.Unlock()
		e.mu.Unlock()
		return false
	}
	if other := p.conns[id]; other != nil {
		// Another copy of the ACK made the connection meanwhile.
		p.mu.Unlock()
		e.mu.Unlock()
		other.handleSegment(s)
		return true
	}
	if len(p.conns) >= p.o.MaxConnections {
		// Dropped like a SYN; the peer's retransmission may find room.
		p.mu.Unlock()
		e.mu.Unlock()
		p.stats.synDropped.Add(1)
		return true
	}
	if p.budget.exhausted() {
		p.mu.Unlock()
		e.mu.Unlock()
		p.stats.budgetRefused.Add(1)
		p.sendResetFor(id, s)
		return true
	}
	e.listener = l
	l.pending++ // established takes it back
	p.conns[id] = e
	p.mu.Unlock()
	p.stats.passive.Add(1)
	e.cookieOpen(s, idx)
	if len(s.data) > 0 || s.has(header.TCPFlagFIN) {
		e.handleSegmentLocked(s)
		e.settle()
	}
	e.mu.Unlock()
	p.established(e)
	return true
}

// cookieOpen sets up, in ESTABLISHED, the connection a valid cookie ACK
// s completes: what passiveOpen and the SYN-RECEIVED to ESTABLISHED
// transition of handleSegmentLocked would have set. No RTT sample is
// taken (the SYN-ACK's send time is not known precisely). e.mu is held.
func (e *endpoint) cookieOpen(s *segment, idx uint8) {
	syn := synFromCookie(s, idx)
	e.synOptions(&syn)
	e.setISS(s.ack.Sub(1))
	e.sndUna = s.ack    // the ACK acknowledges our SYN
	e.windowField(true) // the right edge our SYN-ACK advertised
	e.sndWnd = uint32(s.window) << e.sndShift
	e.maxSndWnd = e.sndWnd
	e.sndWl1, e.sndWl2 = s.seq, s.ack
	e.lastRecv = e.p.clk.Now()
	e.state = stateEstablished
	e.startKeepalive()
	e.broadcast()
}
