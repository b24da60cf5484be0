package main

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/conduit-go/conduit/tcpflow/header"
)

// segment is one TCP segment the wire was offered, and each time a copy
// of it was handed on (none if the wire dropped it, two if it
// duplicated it).
type segment struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    header.TCPFlags
	payload  int // bytes of data, from the IP header's length
	sack     []header.SACKBlock

	offered time.Time
	handed  []time.Time
	raw     string // the bytes captured, which identify it

	// With a capture of the kernel at its device: when it handed the
	// segment to the device, and when it was handed each copy (zero
	// if it was not captured, as for segments to the other side).
	kSent time.Time
	kGot  []time.Time
}

// delivered reports whether a copy was handed on, and the first time.
func (s *segment) delivered() (time.Time, bool) {
	if len(s.handed) == 0 {
		return time.Time{}, false
	}
	return s.handed[0], true
}

// parseSegment parses a captured IPv4 packet; ok is false for anything
// but an unfragmented TCP segment whose headers were captured whole.
func parseSegment(data []byte) (segment, bool) {
	ip := header.IPv4(data)
	if len(data) < header.IPv4MinimumSize || ip.Version() != 4 || ip.Protocol() != header.ProtocolTCP || ip.IsFragment() {
		return segment{}, false
	}
	hl, total := ip.HeaderLength(), int(ip.TotalLength())
	if hl < header.IPv4MinimumSize || len(data) < hl+header.TCPMinimumSize || total < hl+header.TCPMinimumSize {
		return segment{}, false
	}
	tcp := header.TCP(data[hl:])
	off := tcp.DataOffset()
	if off < header.TCPMinimumSize || len(tcp) < off || total < hl+off {
		return segment{}, false
	}
	s := segment{
		src:     netip.AddrPortFrom(ip.Src(), tcp.SrcPort()),
		dst:     netip.AddrPortFrom(ip.Dst(), tcp.DstPort()),
		seq:     tcp.SeqNum(),
		ack:     tcp.AckNum(),
		flags:   tcp.Flags(),
		payload: total - hl - off,
	}
	if opts, err := header.ParseTCPOptions(tcp[header.TCPMinimumSize:off]); err == nil {
		s.sack = append([]header.SACKBlock(nil), opts.SACK()...)
	}
	return s, true
}

// match pairs the packets handed on with those offered, by their
// captured bytes (headers, IP ID and checksums included): the n-th copy
// handed on of given bytes is the n-th offered, and a copy beyond the
// offers is a duplicate of the last. It returns the offered segments in
// the order of their offer times; it fails on a packet handed on that was never offered.
func match(offered, handed []record) ([]*segment, error) {
	byBytes := map[string][]*segment{}
	var segs []*segment
	for _, r := range offered {
		s, ok := parseSegment(r.data)
		if !ok {
			continue
		}
		s.offered, s.raw = r.at, string(r.data)
		p := &s
		segs = append(segs, p)
		byBytes[string(r.data)] = append(byBytes[string(r.data)], p)
	}
	next := map[string]int{}
	for i, r := range handed {
		if _, ok := parseSegment(r.data); !ok {
			continue
		}
		k := string(r.data)
		cands := byBytes[k]
		if len(cands) == 0 {
			return nil, fmt.Errorf("packet %d handed on at %v was never offered", i+1, r.at.Format(time.StampMicro))
		}
		j := next[k]
		if j == len(cands) {
			j-- // a duplicate
		} else {
			next[k] = j + 1
		}
		cands[j].handed = append(cands[j].handed, r.at)
	}
	// The two directions' taps share the file: keep it in time order.
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].offered.Before(segs[j].offered) })
	return segs, nil
}

// devMatch is how many of a device capture's packets matched the wire's.
type devMatch struct {
	sent, sentUnmatched int
	got, gotUnmatched   int
}

// matchDevice sets the kernel's times of segs from a capture of the
// kernel at its device: sent, what it handed to the device (which the
// wire then read and was offered), and got, what it was handed (which
// the wire handed on), matched by their captured bytes, the n-th
// capture with the n-th offer or copy handed on. Packets that match
// nothing (those not yet read when the capture ended, those of other
// protocols) are counted, not an error.
func matchDevice(segs []*segment, sent, got []record) devMatch {
	var m devMatch
	offers := map[string][]*segment{}
	type cp struct {
		s *segment
		i int
	}
	copies := map[string][]cp{}
	for _, s := range segs {
		offers[s.raw] = append(offers[s.raw], s)
		for i := range s.handed {
			copies[s.raw] = append(copies[s.raw], cp{s, i})
		}
		s.kGot = make([]time.Time, len(s.handed))
	}
	for _, cs := range copies {
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].s.handed[cs[i].i].Before(cs[j].s.handed[cs[j].i]) })
	}
	for _, r := range sent {
		if s, tcp, ok := pop(offers, r); ok {
			s.kSent = r.at
			m.sent++
		} else if tcp {
			m.sentUnmatched++
		}
	}
	for _, r := range got {
		if c, tcp, ok := pop(copies, r); ok {
			c.s.kGot[c.i] = r.at
			m.got++
		} else if tcp {
			m.gotUnmatched++
		}
	}
	return m
}

// pop takes the first of the values under r's bytes from by: ok if
// there was one; tcp if r is a TCP segment (the only packets by holds).
func pop[T any](by map[string][]T, r record) (v T, tcp, ok bool) {
	if _, tcp = parseSegment(r.data); !tcp {
		return v, false, false
	}
	k := string(r.data)
	vs := by[k]
	if len(vs) == 0 {
		return v, true, false
	}
	by[k] = vs[1:]
	return vs[0], true, true
}

// kernelGot returns the first time the kernel was handed a copy of s.
func (s *segment) kernelGot() (time.Time, bool) {
	var first time.Time
	for _, t := range s.kGot {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first, !first.IsZero()
}

// flow is one TCP connection, seen from the wire: the side that sent
// the data and the side that acknowledged it.
type flow struct {
	sender, receiver netip.AddrPort
	data, acks       []*segment // in the order offered
	isn              uint32     // the sender's first sequence number seen
}

// flows groups segments by connection and finds each one's data
// direction (the side that sent more bytes). Connections that carried
// no data are left out.
func flows(segs []*segment) []*flow {
	type key struct{ a, b netip.AddrPort }
	canon := func(s *segment) key {
		if s.src.Compare(s.dst) < 0 {
			return key{s.src, s.dst}
		}
		return key{s.dst, s.src}
	}
	by := map[key][]*segment{}
	var order []key
	for _, s := range segs {
		k := canon(s)
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], s)
	}
	var fs []*flow
	for _, k := range order {
		bytes := map[netip.AddrPort]int{}
		for _, s := range by[k] {
			bytes[s.src] += s.payload
		}
		f := &flow{sender: k.a, receiver: k.b}
		if bytes[k.b] > bytes[k.a] {
			f.sender, f.receiver = k.b, k.a
		}
		if bytes[f.sender] == 0 {
			continue
		}
		first := true
		for _, s := range by[k] {
			if s.src == f.sender {
				if first {
					f.isn, first = s.seq, false
				}
				if s.payload > 0 {
					f.data = append(f.data, s)
				}
			} else {
				f.acks = append(f.acks, s)
			}
		}
		fs = append(fs, f)
	}
	return fs
}

// rel is a sequence number of the sender's relative to its first.
func (f *flow) rel(v uint32) int64 { return int64(int32(v - f.isn)) }

// covers reports whether ACK a reports byte seq (relative) as received:
// cumulatively or in a SACK block.
func (f *flow) covers(a *segment, seq int64) (covered, cumulative bool) {
	if a.flags.Contains(header.TCPFlagACK) && f.rel(a.ack) > seq {
		return true, true
	}
	for _, b := range a.sack {
		if f.rel(b.Start) <= seq && seq < f.rel(b.End) {
			return true, false
		}
	}
	return false, false
}

// firstAckAfter returns the index of the first ACK offered at or after t.
func (f *flow) firstAckAfter(t time.Time) int {
	return sort.Search(len(f.acks), func(i int) bool { return !f.acks[i].offered.Before(t) })
}
