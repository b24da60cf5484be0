package stack

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
	"github.com/conduit-go/conduit/tcpflow/link/netem"
)

// startSpurWindow is how much of a connection's start startSpurious
// watches.
const startSpurWindow = 50 * time.Millisecond

// startSpurious counts, from the packets offered to a wire (its Tap),
// the retransmissions a data sender makes in a connection's first
// startSpurWindow that the receiver then reports as duplicates (D-SACK,
// RFC 2883): spurious retransmissions at a connection's start, where a
// sender's slow start into a window larger than the path can lose
// itself on a path that reorders (-wire.startspur).
type startSpurious struct {
	mu    sync.Mutex
	conns map[[2]netip.AddrPort]*spurConn // by (data sender, receiver)
	count int
}

type spurConn struct {
	start  time.Time
	maxEnd seqnum.Value          // the highest sequence number sent, +1
	early  map[seqnum.Value]bool // starts of the early retransmissions not yet reported
}

// Tap is a netem.Config.Tap.
func (s *startSpurious) Tap(_ netem.Dir, at time.Time, pkt []byte) {
	ip := header.IPv4(pkt)
	if len(pkt) < header.IPv4MinimumSize || ip.Protocol() != header.ProtocolTCP || len(pkt) < ip.HeaderLength()+header.TCPMinimumSize {
		return
	}
	tcp := header.TCP(ip.Payload())
	if tcp.DataOffset() < header.TCPMinimumSize || tcp.DataOffset() > len(tcp) {
		return
	}
	from := netip.AddrPortFrom(ip.Src(), tcp.SrcPort())
	to := netip.AddrPortFrom(ip.Dst(), tcp.DstPort())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[[2]netip.AddrPort]*spurConn{}
	}
	if tcp.Flags().Contains(header.TCPFlagSYN) {
		s.conns[[2]netip.AddrPort{from, to}] = &spurConn{start: at, maxEnd: seqnum.Value(tcp.SeqNum() + 1), early: map[seqnum.Value]bool{}}
		return
	}
	if n := len(tcp.Payload()); n > 0 {
		c := s.conns[[2]netip.AddrPort{from, to}]
		if c == nil {
			return
		}
		seq := seqnum.Value(tcp.SeqNum())
		if seq.LessThan(c.maxEnd) && at.Sub(c.start) < startSpurWindow {
			c.early[seq] = true
		}
		if end := seq.Add(seqnum.Size(n)); c.maxEnd.LessThan(end) {
			c.maxEnd = end
		}
		return
	}
	// An ACK: a D-SACK block is the first, below the ACK number or
	// inside the second block (RFC 2883 section 4).
	c := s.conns[[2]netip.AddrPort{to, from}]
	if c == nil || len(c.early) == 0 {
		return
	}
	o, err := header.ParseTCPOptions(tcp.Options())
	if err != nil || o.NumSACKBlocks == 0 {
		return
	}
	b := o.SACKBlocks[0]
	start, ack := seqnum.Value(b.Start), seqnum.Value(tcp.AckNum())
	dsack := start.LessThan(ack)
	if !dsack && o.NumSACKBlocks > 1 {
		b1 := o.SACKBlocks[1]
		dsack = seqnum.Value(b1.Start).LessThanEq(start) && seqnum.Value(b.End).LessThanEq(seqnum.Value(b1.End))
	}
	if dsack && c.early[start] {
		delete(c.early, start)
		s.count++
	}
}

// newStartSpurious returns a counter with -wire.startspur, else nil.
func newStartSpurious() *startSpurious {
	if !*wireStartSpur {
		return nil
	}
	return &startSpurious{}
}

// total returns the count so far.
func (s *startSpurious) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// TestStartSpurious: the counter counts a retransmission sent in the
// first 50 ms that a D-SACK (below the ACK, or inside the second block)
// reports, once; not a later one, nor one never D-SACKed.
func TestStartSpurious(t *testing.T) {
	snd, rcv := netip.MustParseAddrPort("10.0.0.1:1000"), netip.MustParseAddrPort("10.0.0.2:80")
	pkt := func(from, to netip.AddrPort, flags header.TCPFlags, seq, ack uint32, n int, blocks ...[2]uint32) []byte {
		var o header.TCPOptions
		for _, b := range blocks {
			o.SACKBlocks[o.NumSACKBlocks] = header.SACKBlock{Start: b[0], End: b[1]}
			o.NumSACKBlocks++
		}
		var ob [header.TCPMaxOptionsSize]byte
		on, _ := o.Marshal(ob[:])
		tf := header.TCPFields{SrcPort: from.Port(), DstPort: to.Port(), SeqNum: seq, AckNum: ack, Flags: flags, Options: ob[:on]}
		tl := tf.EncodedLen()
		ipf := header.IPv4Fields{TotalLength: uint16(header.IPv4MinimumSize + tl + n), TTL: 64, Protocol: header.ProtocolTCP, Src: from.Addr(), Dst: to.Addr()}
		b := make([]byte, int(ipf.TotalLength))
		header.IPv4(b).Encode(&ipf)
		header.TCP(b[header.IPv4MinimumSize:]).Encode(&tf)
		return b
	}
	t0 := time.Unix(100, 0)
	var s startSpurious
	s.Tap(0, t0, pkt(snd, rcv, header.TCPFlagSYN, 0, 0, 0))
	for i := range 10 {
		s.Tap(0, t0, pkt(snd, rcv, header.TCPFlagACK, 1+uint32(i)*1000, 1, 1000))
	}
	s.Tap(0, t0.Add(10*time.Millisecond), pkt(snd, rcv, header.TCPFlagACK, 1001, 1, 1000)) // early, D-SACKed below the ACK
	s.Tap(0, t0.Add(20*time.Millisecond), pkt(snd, rcv, header.TCPFlagACK, 5001, 1, 1000)) // early, D-SACKed inside the second block
	s.Tap(0, t0.Add(30*time.Millisecond), pkt(snd, rcv, header.TCPFlagACK, 7001, 1, 1000)) // early, never D-SACKed
	s.Tap(0, t0.Add(60*time.Millisecond), pkt(snd, rcv, header.TCPFlagACK, 8001, 1, 1000)) // late
	s.Tap(1, t0.Add(11*time.Millisecond), pkt(rcv, snd, header.TCPFlagACK, 1, 3001, 0, [2]uint32{1001, 2001}))
	s.Tap(1, t0.Add(12*time.Millisecond), pkt(rcv, snd, header.TCPFlagACK, 1, 3001, 0, [2]uint32{1001, 2001})) // reported again
	s.Tap(1, t0.Add(21*time.Millisecond), pkt(rcv, snd, header.TCPFlagACK, 1, 3001, 0, [2]uint32{5001, 6001}, [2]uint32{4001, 7001}))
	s.Tap(1, t0.Add(61*time.Millisecond), pkt(rcv, snd, header.TCPFlagACK, 1, 9001, 0, [2]uint32{8001, 9001}))
	s.Tap(1, t0.Add(62*time.Millisecond), pkt(rcv, snd, header.TCPFlagACK, 1, 9001, 0, [2]uint32{9001, 10001})) // a plain SACK block
	assert.Equal(t, 2, s.total())
}
