package stack

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

// segLog records the TCP segments a stack sends.
type segLog struct {
	mu   sync.Mutex
	segs []header.TCP
}

func (l *segLog) watch(f *filterLink) {
	f.setDrop(func(ip header.IPv4) bool {
		if ip.Protocol() == header.ProtocolTCP {
			l.mu.Lock()
			l.segs = append(l.segs, append(header.TCP(nil), ip.Payload()...))
			l.mu.Unlock()
		}
		return false
	})
}

// pureAcks counts the segments without data, SYN, FIN or RST.
func (l *segLog) pureAcks() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.segs {
		if len(s.Payload()) == 0 && s.Flags()&(header.TCPFlagSYN|header.TCPFlagFIN|header.TCPFlagRST) == 0 {
			n++
		}
	}
	return n
}

func (l *segLog) reset() {
	l.mu.Lock()
	l.segs = nil
	l.mu.Unlock()
}

func (l *segLog) all() []header.TCP {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]header.TCP(nil), l.segs...)
}

func TestDelayedAck(t *testing.T) {
	p := newPair(t, pairOpts{})
	clk := p.clk.(*clock.Manual)
	fa, fb := p.connect(t, 80, nil)
	buf := make([]byte, 64<<10)
	// The first 16 segments of a connection are acknowledged at once
	// (Linux's quick-ACK start): get them out of the way.
	for range 16 {
		for _, f := range [][2]tcpflow.Flow{{fa, fb}, {fb, fa}} {
			_, err := f[0].WriteNodelay([]byte("warm"))
			require.NoError(t, err)
			_, err = io.ReadFull(f[1], buf[:4])
			require.NoError(t, err)
			p.settle(t)
		}
	}
	var fromB segLog
	fromB.watch(p.lb)

	// One small segment: its ACK waits for the delayed ACK timeout.
	_, err := fa.WriteNodelay([]byte("ping"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, buf[:4])
	require.NoError(t, err)
	assert.Equal(t, 0, fromB.pureAcks(), "ACK sent before the delay")
	clk.Advance(tcp.DefaultDelayedACK - time.Millisecond)
	assert.Equal(t, 0, fromB.pureAcks(), "ACK sent before the delay")
	clk.Advance(time.Millisecond)
	eventually(t, func() bool { return fromB.pureAcks() == 1 }, "the delayed ACK")

	// Data sent back in time carries the ACK: no pure ACK at all.
	fromB.reset()
	_, err = fa.WriteNodelay([]byte("ping"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, buf[:4])
	require.NoError(t, err)
	_, err = fb.WriteNodelay([]byte("pong"))
	require.NoError(t, err)
	_, err = io.ReadFull(fa, buf[:4])
	require.NoError(t, err)
	in := p.b.Stats().TCP.SegmentsIn
	clk.Advance(tcp.DefaultDelayedACK) // a's delayed ACK of the response
	eventually(t, func() bool { return p.b.Stats().TCP.SegmentsIn > in }, "a's ACK of the response")
	assert.Equal(t, 0, fromB.pureAcks(), "the response carried the ACK")
	segs := fromB.all()
	require.Len(t, segs, 1)
	assert.Equal(t, "pong", string(segs[0].Payload()))

	// Two full-sized segments are acknowledged at once, with one ACK.
	p.settle(t)
	fromB.reset()
	mss := 1460 - 12 // timestamps on every segment
	_, err = fa.WriteNodelay(make([]byte, 2*mss))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, buf[:2*mss])
	require.NoError(t, err)
	eventually(t, func() bool { return fromB.pureAcks() == 1 }, "the ACK of two segments")
	p.settle(t)
	clk.Advance(tcp.DefaultDelayedACK) // no delayed ACK follows (and no RTO yet)
	p.settle(t)
	assert.Equal(t, 1, fromB.pureAcks(), "one ACK for two segments")
}

func TestDelayedAckOff(t *testing.T) {
	p := newPair(t, pairOpts{tcp: tcp.Options{DelayedACK: -1}})
	fa, fb := p.connect(t, 80, nil)
	var fromB segLog
	fromB.watch(p.lb)
	_, err := fa.WriteNodelay([]byte("ping"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, make([]byte, 4))
	require.NoError(t, err)
	eventually(t, func() bool { return fromB.pureAcks() == 1 }, "an immediate ACK")
}

// TestOutOfOrderAckedAtOnce: a segment beyond a hole is acknowledged at
// once (a duplicate ACK with a SACK block), without the delay.
func TestOutOfOrderAckedAtOnce(t *testing.T) {
	p := newPair(t, pairOpts{})
	fa, _ := p.connect(t, 80, nil)
	var fromB segLog
	fromB.watch(p.lb)
	n := 0
	p.la.setDrop(func(ip header.IPv4) bool {
		if ip.Protocol() == header.ProtocolTCP && len(header.TCP(ip.Payload()).Payload()) > 0 {
			n++ // the writer's goroutine only
			return n == 1
		}
		return false
	})
	_, err := fa.WriteNodelay(make([]byte, 2000))
	require.NoError(t, err)
	eventually(t, func() bool { return fromB.pureAcks() >= 1 }, "a duplicate ACK without delay")
	o, err := header.ParseTCPOptions(fromB.all()[0].Options())
	require.NoError(t, err)
	assert.NotZero(t, o.NumSACKBlocks, "SACK block for the out-of-order segment")
}

// TestPAWS replays an old segment, with its old timestamp, at the
// receiver's next sequence number: it is dropped as an old duplicate
// (RFC 7323 section 5) and the stream goes on intact.
func TestPAWS(t *testing.T) {
	p := newPair(t, pairOpts{})
	clk := p.clk.(*clock.Manual)
	fa, fb := p.connect(t, 80, nil)
	var fromA segLog
	fromA.watch(p.la)
	buf := make([]byte, 100)

	_, err := fa.WriteNodelay([]byte("first"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, buf[:5])
	require.NoError(t, err)
	var old header.TCP
	for _, s := range fromA.all() {
		if string(s.Payload()) == "first" {
			old = s
		}
	}
	require.NotNil(t, old)
	clk.Advance(10 * time.Millisecond) // the timestamp clock ticks in ms
	_, err = fa.WriteNodelay([]byte("second"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, buf[:6])
	require.NoError(t, err)

	old.SetSeqNum(old.SeqNum() + 11)
	old.SetChecksumFor(addrA, addrB)
	p.b.deliver(ipPacket(addrA, addrB, header.ProtocolTCP, old))
	assert.EqualValues(t, 1, p.b.Stats().TCP.PAWSRejected)

	_, err = fa.WriteNodelay([]byte("third"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, buf[:5])
	require.NoError(t, err)
	assert.Equal(t, "third", string(buf[:5]), "the replayed segment must not be delivered")
}

// settle waits until every packet either link accepted has been handed
// to the other stack (without faults, nothing is lost on the way).
func (p *pair) settle(t *testing.T) {
	t.Helper()
	ea, eb := p.la.Endpoint.(*channel.Endpoint), p.lb.Endpoint.(*channel.Endpoint)
	eventually(t, func() bool {
		return ea.Stats().TxPackets == eb.Stats().RxPackets && eb.Stats().TxPackets == ea.Stats().RxPackets
	}, "the links to drain")
}
