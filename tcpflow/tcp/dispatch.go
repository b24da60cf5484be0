package tcp

import (
	"net/netip"

	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// HandleSegment processes one TCP segment received from src to dst. The
// IPv4 layer has checked that dst is ours; HandleSegment checks the TCP
// checksum and header. seg is not retained.
func (p *Protocol) HandleSegment(src, dst netip.Addr, seg []byte) {
	p.HandleSegmentBuf(src, dst, seg, nil)
}

// HandleSegmentBuf is HandleSegment for a segment lying in buf, a
// buffer the link lends: it reports whether the protocol kept buf (its
// data queued for reading in place), to give it back later through
// Options.ReturnBuffer. With a nil buf or ReturnBuffer it keeps nothing.
func (p *Protocol) HandleSegmentBuf(src, dst netip.Addr, seg []byte, buf *[]byte) (kept bool) {
	if p.o.ReturnBuffer == nil {
		buf = nil
	}
	p.stats.segIn.Add(1)
	t := header.TCP(seg)
	if t.IsValid() != nil || !p.o.ChecksumOffload && !t.IsChecksumValid(src, dst) {
		p.stats.invalid.Add(1)
		return
	}
	s, err := parseSegment(t)
	if err != nil {
		p.stats.invalid.Add(1)
		return
	}
	s.buf = buf
	id := connID{local: netip.AddrPortFrom(dst, t.DstPort()), remote: netip.AddrPortFrom(src, t.SrcPort())}
	if t.SrcPort() == 0 || t.DstPort() == 0 {
		p.stats.invalid.Add(1)
		return
	}
	p.mu.Lock()
	e := p.conns[id]
	p.mu.Unlock()
	if e != nil {
		e.handleSegment(&s)
		return s.kept
	}
	p.handleNoConn(id, &s)
	return s.kept
}

// returnBuf gives a lent buffer back to the link.
func (p *Protocol) returnBuf(b *[]byte) { p.o.ReturnBuffer(b) }

// handleNoConn handles a segment for no connection: a SYN for a
// listener, an ACK giving back a SYN cookie, or a reset (RFC 9293
// section 3.10.7.1).
func (p *Protocol) handleNoConn(id connID, s *segment) {
	if s.flags&header.TCPFlagRST != 0 {
		return
	}
	switch s.flags & (header.TCPFlagSYN | header.TCPFlagACK) {
	case header.TCPFlagSYN:
		if p.handleSYN(id, s) {
			return
		}
	case header.TCPFlagACK:
		if p.handleCookieACK(id, s) {
			return
		}
	}
	p.stats.invalid.Add(1)
	p.sendResetFor(id, s)
}

// sendResetFor answers s, which belongs to no connection, with a reset.
func (p *Protocol) sendResetFor(id connID, s *segment) {
	if s.flags&header.TCPFlagRST != 0 {
		return
	}
	var f header.TCPFields
	f.SrcPort, f.DstPort = id.local.Port(), id.remote.Port()
	if s.flags&header.TCPFlagACK != 0 {
		f.SeqNum = uint32(s.ack)
		f.Flags = header.TCPFlagRST
	} else {
		f.AckNum = uint32(s.seq.Add(s.logicalLen()))
		f.Flags = header.TCPFlagRST | header.TCPFlagACK
	}
	p.stats.rstOut.Add(1)
	p.writeFields(id, &f, nil)
}

// writeFields encodes f, checksums it with payload and sends it.
func (p *Protocol) writeFields(id connID, f *header.TCPFields, payload []byte) {
	var buf [header.TCPMaximumHeaderSize]byte
	p.writeFieldsBuf(id, f, payload, &buf)
}

// writeFieldsBuf is writeFields encoding the header in buf: a
// connection passes its own, so that sending allocates nothing.
func (p *Protocol) writeFieldsBuf(id connID, f *header.TCPFields, payload []byte, buf *[header.TCPMaximumHeaderSize]byte) {
	hl := f.EncodedLen()
	h := header.TCP(buf[:hl])
	h.Encode(f)
	src, dst := id.local.Addr(), id.remote.Addr()
	if p.o.ChecksumOffload {
		h.SetChecksum(0)
	} else {
		ph := header.PseudoHeaderChecksum(header.ProtocolTCP, src, dst, uint16(hl+len(payload)))
		h.SetChecksum(^header.Checksum(payload, h.CalculateChecksum(ph)))
	}
	p.stats.segOut.Add(1)
	if err := p.o.Output(src, dst, h, payload); err != nil {
		p.debug("tcp: output failed", "err", err)
	}
}

// handleSYN starts a passive open, or answers with a SYN cookie when
// the listener's backlog is full; it reports whether a listener took
// the SYN (or dropped it for lack of room), false to reset it.
func (p *Protocol) handleSYN(id connID, s *segment) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	l := p.listenerForLocked(id.local.Port())
	if l == nil {
		p.mu.Unlock()
		return false
	}
	if len(p.conns) >= p.o.MaxConnections || l.pending >= p.o.SYNBacklog && p.o.NoSYNCookies {
		// At the connection limit a cookie could not become a
		// connection either.
		p.forgetTransientLocked(l)
		p.mu.Unlock()
		p.stats.synDropped.Add(1)
		return true
	}
	if p.budget.exhausted() {
		// No memory for its buffers: refused at once rather than left
		// to retransmit its SYN.
		p.forgetTransientLocked(l)
		p.mu.Unlock()
		p.stats.budgetRefused.Add(1)
		p.sendResetFor(id, s)
		return true
	}
	if l.pending >= p.o.SYNBacklog {
		now := p.clk.Now()
		l.cookieSlot = cookieSlot(now) + 1
		p.mu.Unlock()
		p.sendCookie(id, s, now)
		return true
	}
	l.pending++
	e := p.newEndpoint(id, l.ka)
	e.listener = l
	p.conns[id] = e
	p.mu.Unlock()
	p.stats.passive.Add(1)
	e.mu.Lock()
	e.passiveOpen(s)
	e.mu.Unlock()
	return true
}

// remove forgets e; called with e.mu held.
func (p *Protocol) remove(e *endpoint) {
	p.mu.Lock()
	if p.conns[e.id] == e {
		delete(p.conns, e.id)
	}
	if l := e.listener; l != nil && !e.delivered {
		l.pending--
		e.listener = nil
		p.forgetTransientLocked(l)
	}
	p.mu.Unlock()
}

// HandleICMPError handles an ICMP error quoting a segment we sent from
// local to remote with sequence number seq. refused is true for a port
// or protocol unreachable (a hard error during setup), false for other
// soft errors, which are ignored.
func (p *Protocol) HandleICMPError(local, remote netip.AddrPort, seq uint32, refused bool) {
	p.mu.Lock()
	e := p.conns[connID{local: local, remote: remote}]
	p.mu.Unlock()
	if e == nil || !refused {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// RFC 5927: only act on errors quoting a sequence number in flight.
	v := seqnum.Value(seq)
	if e.state == stateSynSent && v.InRange(e.sndUna, e.sndMax.Add(1)) {
		e.fail(errICMPRefused)
	}
}
