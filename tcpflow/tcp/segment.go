package tcp

import (
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// segment is a received segment, parsed. data aliases the packet buffer
// and is valid only while the segment is being handled.
type segment struct {
	seq, ack seqnum.Value
	flags    header.TCPFlags
	window   uint16 // unscaled
	opts     header.TCPOptions
	data     []byte
	// buf is the link's buffer holding the segment, when lent (see
	// Protocol.HandleSegmentBuf); kept records that data was queued
	// in place, so the buffer must not be reused yet.
	buf  *[]byte
	kept bool
}

func parseSegment(t header.TCP) (segment, error) {
	opts, err := header.ParseTCPOptions(t.Options())
	if err != nil {
		return segment{}, err
	}
	return segment{
		seq:    seqnum.Value(t.SeqNum()),
		ack:    seqnum.Value(t.AckNum()),
		flags:  t.Flags(),
		window: t.WindowSize(),
		opts:   opts,
		data:   t.Payload(),
	}, nil
}

func (s *segment) has(f header.TCPFlags) bool { return s.flags&f != 0 }

// logicalLen is the sequence space the segment occupies: data, SYN, FIN.
func (s *segment) logicalLen() seqnum.Size {
	n := seqnum.Size(len(s.data))
	if s.has(header.TCPFlagSYN) {
		n++
	}
	if s.has(header.TCPFlagFIN) {
		n++
	}
	return n
}

// oooSeg is a segment held in the out-of-order queue.
type oooSeg struct {
	seq  seqnum.Value
	data []byte
	fin  bool
}

func (o *oooSeg) end() seqnum.Value { return o.seq.Add(seqnum.Size(len(o.data))) }
