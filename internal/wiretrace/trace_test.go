package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link/netem"
)

var (
	sender   = netip.MustParseAddrPort("10.0.0.1:40000")
	receiver = netip.MustParseAddrPort("10.0.0.2:80")
	t0       = time.Unix(1_700_000_000, 0)
)

// seg is a packet of the synthetic wire below: offered at off µs after
// t0, handed on at each of hand (none: lost).
type seg struct {
	fromSender bool
	seq, ack   uint32
	payload    int
	sack       []header.SACKBlock
	off        int
	hand       []int
}

// packet encodes s's headers, as a pcap with a snap length keeps them;
// id makes each packet's bytes unique, as the IP ID and TSval do.
func packet(t *testing.T, s seg, id uint16) []byte {
	src, dst := receiver, sender
	if s.fromSender {
		src, dst = sender, receiver
	}
	opts := header.TCPOptions{NumSACKBlocks: len(s.sack)}
	copy(opts.SACKBlocks[:], s.sack)
	ob := make([]byte, opts.Len())
	n, err := opts.Marshal(ob)
	require.NoError(t, err)
	tf := header.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: s.seq, AckNum: s.ack,
		Flags: header.TCPFlagACK, WindowSize: 1000, Options: ob[:n]}
	b := make([]byte, header.IPv4MinimumSize+tf.EncodedLen())
	header.IPv4(b).Encode(&header.IPv4Fields{TotalLength: uint16(len(b) + s.payload), ID: id, TTL: 64,
		Protocol: header.ProtocolTCP, Src: src.Addr(), Dst: dst.Addr()})
	header.TCP(b[header.IPv4MinimumSize:]).Encode(&tf)
	return b
}

// timed is a packet and its time, in µs after t0.
type timed struct {
	at  int
	pkt []byte
}

// tapInOrder records recs into pc in time order.
func tapInOrder(pc *netem.Pcap, recs []timed) {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].at < recs[j].at })
	for _, r := range recs {
		pc.Tap(netem.DirAtoB, t0.Add(time.Duration(r.at)*time.Microsecond), r.pkt)
	}
}

// writeWire writes the pcaps of segs (in the order offered) as
// netem.Pcap does, and returns their common prefix.
func writeWire(t *testing.T, segs []seg) string {
	var offered, handed bytes.Buffer
	po, ph := netem.NewPcap(&offered, 128), netem.NewPcap(&handed, 128)
	var outs []timed
	for i, s := range segs {
		p := packet(t, s, uint16(i+1))
		po.Tap(netem.DirAtoB, t0.Add(time.Duration(s.off)*time.Microsecond), p)
		for _, h := range s.hand {
			outs = append(outs, timed{h, p})
		}
	}
	tapInOrder(ph, outs) // as the wire's deliver tap sees them
	require.NoError(t, po.Err())
	require.NoError(t, ph.Err())
	name := filepath.Join(t.TempDir(), "wire")
	require.NoError(t, os.WriteFile(name+".pcap", offered.Bytes(), 0o644))
	require.NoError(t, os.WriteFile(name+".out.pcap", handed.Bytes(), 0o644))
	return name
}

// A wire that delays everything by 1 ms but D3 (reordered), loses D8
// and R9, and duplicates A1. Sequence numbers start at 1001; each data
// segment holds 100 bytes.
var wireScript = []seg{
	{fromSender: true, seq: 1001, payload: 100, off: 10, hand: []int{1010}},                       // D1
	{fromSender: true, seq: 1101, payload: 100, off: 20, hand: []int{1020}},                       // D2
	{fromSender: true, seq: 1201, payload: 100, off: 30, hand: []int{2500}},                       // D3, late
	{fromSender: true, seq: 1301, payload: 100, off: 40, hand: []int{1040}},                       // D4
	{ack: 1101, off: 1015, hand: []int{2015, 2016}},                                               // A1 (duplicated)
	{ack: 1201, off: 1030, hand: []int{2030}},                                                     // A2
	{ack: 1201, sack: []header.SACKBlock{{Start: 1301, End: 1401}}, off: 1050, hand: []int{2050}}, // A3
	// R3: RACK resends D3 while it is still on its way.
	{fromSender: true, seq: 1201, payload: 100, off: 2100, hand: []int{3100}},
	{ack: 1401, off: 2505, hand: []int{3505}}, // A4
	// R4: D4 was SACKed (A3) 950 µs before.
	{fromSender: true, seq: 1301, payload: 100, off: 3000, hand: []int{4000}},
	{fromSender: true, seq: 1401, payload: 100, off: 3200, hand: []int{4200}}, // D5
	{ack: 1501, off: 4210, hand: []int{5210}},                                 // A5
	// R5: A5 reports D5 but is still on the wire.
	{fromSender: true, seq: 1401, payload: 100, off: 5000, hand: []int{6000}},
	{fromSender: true, seq: 1501, payload: 100, off: 5100, hand: []int{6100}}, // D6
	{ack: 1601, off: 6105, hand: []int{7105}},                                 // A6
	// R6: 45 µs after A6 arrived.
	{fromSender: true, seq: 1501, payload: 100, off: 7150, hand: []int{8150}},
	{fromSender: true, seq: 1601, payload: 100, off: 7200, hand: []int{8200}}, // D7
	// R7: 3 µs after D7 arrived, before the receiver acknowledged it.
	{fromSender: true, seq: 1601, payload: 100, off: 8203, hand: []int{9203}},
	{ack: 1701, off: 8210, hand: []int{9210}},                                  // A7
	{fromSender: true, seq: 1701, payload: 100, off: 8300},                     // D8, lost
	{fromSender: true, seq: 1701, payload: 100, off: 9000, hand: []int{10000}}, // R8, needed
	{fromSender: true, seq: 1001, payload: 100, off: 9500},                     // R9, spurious and lost
	{ack: 1801, off: 10005, hand: []int{11005}},                                // A8
}

func TestTrace(t *testing.T) {
	name := writeWire(t, wireScript)
	offered, err := readPcap(name + ".pcap")
	require.NoError(t, err)
	handed, err := readPcap(name + ".out.pcap")
	require.NoError(t, err)
	segs, err := match(offered, handed)
	require.NoError(t, err)
	require.Len(t, segs, len(wireScript))
	r := analyze(segs)
	assert.Equal(t, 1, r.conns)
	assert.Equal(t, retransReport{
		total: 7, spurious: 5, lostSpurious: 1,
		wire: spuriousSort{originalLate: 1, notReported: 1, reportOnWire: 1, reportJustIn: 1, reportOld: 1},
	}, r.retrans)
	// New data reached the receiver eight times (D1–D7 and R8); each
	// was reported 5 or 10 µs later.
	us := time.Microsecond
	assert.ElementsMatch(t, []time.Duration{5 * us, 10 * us, 10 * us, 5 * us, 10 * us, 5 * us, 10 * us, 5 * us}, r.turnaround)
	assert.Len(t, r.dataDelay, 13, "every data segment handed on, once")
	assert.Len(t, r.ackDelay, 8, "every ACK, the duplicate once")
	assert.Equal(t, 1470*us, percentile(r.dataDelay, 100)-percentile(r.dataDelay, 50), "D3's extra delay")

	var out bytes.Buffer
	require.NoError(t, run(&out, []string{name + ".out.pcap", name}))
	assert.Equal(t, 1, strings.Count(out.String(), "connections"), "one report per wire")
	assert.Contains(t, out.String(), "receiver turnaround (8): p10 5 µs p50 5 µs p90 10 µs")
	assert.Contains(t, out.String(), "retransmissions 7, spurious 5 (and 1 lost on the wire)")
}

// writeDevice writes, beside the wire's pcaps at name, a capture of the
// sender's kernel at its device: it handed each of the sender's
// segments to the device 5 µs before the wire was offered it, or at
// sent[i] µs for segment i of script; and it was handed each copy of an
// ACK 3 µs after the wire handed it on, or got[i] µs after. One packet
// more that the wire never read ends the sent capture.
func writeDevice(t *testing.T, name string, script []seg, sent, got map[int]int) {
	var sb, gb bytes.Buffer
	ps, pg := netem.NewPcap(&sb, 128), netem.NewPcap(&gb, 128)
	var sents, gots []timed
	for i, s := range script {
		p := packet(t, s, uint16(i+1))
		if s.fromSender {
			us, ok := sent[i]
			if !ok {
				us = s.off - 5
			}
			sents = append(sents, timed{us, p})
			continue
		}
		for _, h := range s.hand {
			lag, ok := got[i]
			if !ok {
				lag = 3
			}
			gots = append(gots, timed{h + lag, p})
		}
	}
	sents = append(sents, timed{20000, packet(t, seg{fromSender: true, seq: 9001, payload: 100}, 999)})
	tapInOrder(ps, sents) // a capture is in time order
	tapInOrder(pg, gots)
	require.NoError(t, ps.Err())
	require.NoError(t, pg.Err())
	require.NoError(t, os.WriteFile(name+".dev.sent.pcap", sb.Bytes(), 0o644))
	require.NoError(t, os.WriteFile(name+".dev.got.pcap", gb.Bytes(), 0o644))
}

func TestTraceDevice(t *testing.T) {
	name := writeWire(t, wireScript)
	// R4 (script[9]) waited 1.1 ms in the device: the kernel sent it
	// before A3 (script[6]), which reaches the kernel 10 µs after the
	// wire handed it on, had arrived. The wire saw it sent 950 µs after.
	writeDevice(t, name, wireScript, map[int]int{9: 1900}, map[int]int{6: 10})
	offered, err := readPcap(name + ".pcap")
	require.NoError(t, err)
	handed, err := readPcap(name + ".out.pcap")
	require.NoError(t, err)
	dev, err := readDevice(name)
	require.NoError(t, err)
	require.NotNil(t, dev)
	segs, err := match(offered, handed)
	require.NoError(t, err)
	m := matchDevice(segs, dev.sent, dev.got)
	assert.Equal(t, devMatch{sent: 15, sentUnmatched: 1, got: 9}, m)
	r := analyze(segs)
	assert.Equal(t, spuriousSort{originalLate: 1, notReported: 1, reportOnWire: 1, reportJustIn: 1, reportOld: 1}, r.retrans.wire)
	// By the kernel's times R7, sent 2 µs before D7 arrived, was
	// early rather than unreported, and R4's report had not arrived.
	assert.Equal(t, 5, r.retrans.kernelOf)
	assert.Equal(t, spuriousSort{originalLate: 2, reportOnWire: 2, reportJustIn: 1}, r.retrans.kernel)
	assert.Len(t, r.devQueue, 15)
	assert.Equal(t, 1100*time.Microsecond, percentile(r.devQueue, 100))
	assert.Len(t, r.devLag, 9, "every copy of an ACK, the duplicate's too")
	assert.Equal(t, 10*time.Microsecond, percentile(r.devLag, 100))

	var out bytes.Buffer
	require.NoError(t, run(&out, []string{name + ".dev.got.pcap"}))
	assert.Contains(t, out.String(), "device capture: 15 sent matched (1 not), 9 received matched (0 not)")
	assert.Contains(t, out.String(), "by the kernel's times (5 of them)")

	// Without the capture, no kernel's view.
	require.NoError(t, os.Remove(name+".dev.sent.pcap"))
	out.Reset()
	require.NoError(t, run(&out, []string{name}))
	assert.NotContains(t, out.String(), "kernel's times")
}

func TestTraceCumulativeReport(t *testing.T) {
	// D1 is acknowledged; a retransmission of it 2 ms after the ACK
	// arrived counts as a report the sender had had, cumulative.
	name := writeWire(t, []seg{
		{fromSender: true, seq: 1, payload: 100, off: 0, hand: []int{1000}},
		{ack: 101, off: 1001, hand: []int{2001}},
		{fromSender: true, seq: 1, payload: 100, off: 4001, hand: []int{5001}},
	})
	var out bytes.Buffer
	require.NoError(t, run(&out, []string{name}))
	assert.Contains(t, out.String(), "report > 0.1 ms:        1 (1 cumulative)")
}

func TestMatchErrors(t *testing.T) {
	a := packet(t, seg{fromSender: true, seq: 1, payload: 10}, 1)
	b := packet(t, seg{fromSender: true, seq: 11, payload: 10}, 2)
	_, err := match([]record{{t0, a}}, []record{{t0, b}})
	require.ErrorContains(t, err, "never offered")

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "pcap header"},
		{"magic", make([]byte, 24), "not a little-endian pcap file"},
		{"link type", append([]byte{0x4d, 0x3c, 0xb2, 0xa1}, make([]byte, 20)...), "link type 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePcap(bytes.NewReader(tc.data))
			require.ErrorContains(t, err, tc.want)
		})
	}
	// A record cut short.
	var buf bytes.Buffer
	netem.NewPcap(&buf, 128).Tap(netem.DirAtoB, t0, a)
	_, err = parsePcap(bytes.NewReader(buf.Bytes()[:buf.Len()-1]))
	require.ErrorContains(t, err, "record 1")
}

// FuzzTrace: any bytes as the wire's two files and a device capture's
// two: an error or a report, never a panic.
func FuzzTrace(f *testing.F) {
	var buf bytes.Buffer
	pc := netem.NewPcap(&buf, 128)
	pc.Tap(netem.DirAtoB, t0, []byte{0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
		0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 3, 0xe8, 0, 0, 0, 0})
	f.Add(buf.Bytes(), buf.Bytes(), buf.Bytes(), buf.Bytes())
	f.Fuzz(func(t *testing.T, a, b, c, d []byte) {
		offered, err := parsePcap(bytes.NewReader(a))
		if err != nil {
			return
		}
		handed, err := parsePcap(bytes.NewReader(b))
		if err != nil {
			return
		}
		segs, err := match(offered, handed)
		if err != nil {
			return
		}
		sent, err1 := parsePcap(bytes.NewReader(c))
		got, err2 := parsePcap(bytes.NewReader(d))
		var m *devMatch
		if err1 == nil && err2 == nil {
			dm := matchDevice(segs, sent, got)
			m = &dm
		}
		r := analyze(segs)
		r.dev = m
		r.write(&bytes.Buffer{}, "fuzz")
	})
}
