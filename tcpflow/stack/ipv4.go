package stack

import (
	"net/netip"

	"github.com/conduit-go/conduit/tcpflow/header"
)

const defaultTTL = 64

// deliver is the link's receiver: one IPv4 packet, valid during the call.
func (s *Stack) deliver(pkt []byte) { s.deliverBuf(pkt, nil) }

// deliverLent is the receiver of a link.Lender: it reports whether TCP
// kept the buffer (to give it back through the link's Return).
func (s *Stack) deliverLent(bp *[]byte) bool { return s.deliverBuf(*bp, bp) }

// deliverBuf handles the packet pkt, which lies in bp if the link lent
// it; it reports whether bp was kept.
func (s *Stack) deliverBuf(pkt []byte, bp *[]byte) bool {
	s.ipIn.Add(1)
	ip := header.IPv4(pkt)
	if len(pkt) < header.IPv4MinimumSize || ip.Version() != header.IPv4Version || ip.IsValid(len(pkt)) != nil {
		s.ipInvalid.Add(1)
		return false
	}
	if ip.Dst() != s.addr {
		s.notOurs.Add(1)
		return false
	}
	if ip.IsFragment() {
		s.frags.Add(1)
		return false
	}
	switch ip.Protocol() {
	case header.ProtocolTCP:
		return s.tcp.HandleSegmentBuf(ip.Src(), ip.Dst(), ip.Payload(), bp)
	case header.ProtocolICMPv4:
		s.handleICMP(ip)
	default:
		s.unknown.Add(1)
	}
	return false
}

// handleICMP answers echo requests and passes errors about our TCP
// segments to TCP.
func (s *Stack) handleICMP(ip header.IPv4) {
	m := header.ICMPv4(ip.Payload())
	if m.IsValid() != nil {
		s.ipInvalid.Add(1)
		return
	}
	switch {
	case m.Type() == header.ICMPv4Echo && m.Code() == 0:
		if ip.Src().IsMulticast() || ip.Src() == s.broadcast() {
			return
		}
		bp := s.pool.Get().(*[]byte)
		b := append((*bp)[:0], make([]byte, header.IPv4MinimumSize)...)
		b, err := header.AppendEchoReply(b, m)
		if err == nil && len(b) <= s.mtu {
			s.echo.Add(1)
			s.writeIPv4(b, header.ProtocolICMPv4, ip.Src())
		}
		*bp = b
		s.pool.Put(bp)
	case m.Type().IsError():
		s.icmp.Add(1)
		o, err := m.Original()
		if err != nil || o.Protocol() != header.ProtocolTCP || o.Src() != s.addr {
			return
		}
		t := header.TCP(o[o.HeaderLength():])
		if len(t) < 8 {
			return // RFC 792 quotes at least 8 bytes: ports and sequence number
		}
		refused := m.Type() == header.ICMPv4DstUnreachable &&
			(m.Code() == header.ICMPv4PortUnreachable || m.Code() == header.ICMPv4ProtoUnreachable)
		s.tcp.HandleICMPError(
			netip.AddrPortFrom(o.Src(), t.SrcPort()),
			netip.AddrPortFrom(o.Dst(), t.DstPort()),
			t.SeqNum(), refused)
	}
}

func (s *Stack) broadcast() netip.Addr {
	a := s.pfx.Masked().Addr().As4()
	bits := s.pfx.Bits()
	for i := bits; i < 32; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(a)
}

// writeIPv4 fills the IPv4 header at the start of pkt (whose first 20
// bytes are reserved for it) and sends the packet to dst.
func (s *Stack) writeIPv4(pkt []byte, proto uint8, dst netip.Addr) {
	s.encodeIPv4(pkt, len(pkt), proto, dst)
	s.ipOut.Add(1)
	if err := s.ep.WritePacket(pkt); err != nil {
		s.outErr.Add(1)
		s.debug("stack: link write failed", "err", err)
	}
}

// encodeIPv4 fills the IPv4 header at the start of b for a packet of
// size bytes.
func (s *Stack) encodeIPv4(b []byte, size int, proto uint8, dst netip.Addr) {
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(size),
		ID:          uint16(s.ipID.Add(1)),
		Flags:       header.IPv4FlagDF,
		TTL:         defaultTTL,
		Protocol:    proto,
		Src:         s.addr,
		Dst:         dst,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
}

// outputTCP is TCP's output: one segment in one IPv4 packet.
func (s *Stack) outputTCP(src, dst netip.Addr, hdr, payload []byte) error {
	if s.gw != nil {
		// The link copies the headers and the payload once.
		hp := s.hdrPool.Get().(*[header.IPv4MinimumSize + header.TCPMaximumHeaderSize]byte)
		h := append(hp[:header.IPv4MinimumSize], hdr...)
		s.encodeIPv4(h, len(h)+len(payload), header.ProtocolTCP, dst)
		s.ipOut.Add(1)
		if err := s.gw.WritePacketv(h, payload); err != nil {
			s.outErr.Add(1)
			s.debug("stack: link write failed", "err", err)
		}
		s.hdrPool.Put(hp)
		return nil
	}
	bp := s.pool.Get().(*[]byte)
	b := (*bp)[:header.IPv4MinimumSize]
	b = append(b, hdr...)
	b = append(b, payload...)
	s.writeIPv4(b, header.ProtocolTCP, dst)
	*bp = b
	s.pool.Put(bp)
	return nil
}
