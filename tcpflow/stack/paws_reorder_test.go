package stack

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow/header"
)

// TestPAWSOneTickOld: a path that reorders segments sent within a tick
// of the peer's timestamp clock (a millisecond) delivers some with a
// timestamp one tick older than the last recorded. As in Linux
// (TCP_PAWS_WINDOW), PAWS lets them pass: an ACK overtaken by a later
// one is taken without an ACK in reply, and data at the next sequence
// number is delivered; ten ticks old, it is still an old duplicate
// (TestPAWS).
func TestPAWSOneTickOld(t *testing.T) {
	p := newPair(t, pairOpts{})
	clk := p.clk.(*clock.Manual)
	fa, fb := p.connect(t, 80, nil)
	var fromA, fromB segLog
	fromA.watch(p.la)
	fromB.watch(p.lb)
	buf := make([]byte, 100)

	_, err := fa.WriteNodelay([]byte("first"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, buf[:5])
	require.NoError(t, err)
	p.settle(t)
	var oldData, oldAck header.TCP
	for _, s := range fromA.all() {
		if string(s.Payload()) == "first" {
			oldData = s
		}
	}
	acks := fromB.all()
	require.NotEmpty(t, acks)
	oldAck = acks[len(acks)-1]
	require.NotNil(t, oldData)
	require.Empty(t, oldAck.Payload())

	clk.Advance(time.Millisecond) // one tick
	_, err = fa.WriteNodelay([]byte("second"))
	require.NoError(t, err)
	_, err = io.ReadFull(fb, buf[:6])
	require.NoError(t, err)
	p.settle(t)

	// b's ACK of "first", overtaken by its ACK of "second".
	before := len(fromA.all())
	p.a.deliver(ipPacket(addrB, addrA, header.ProtocolTCP, oldAck))
	p.settle(t)
	assert.Zero(t, p.a.Stats().TCP.PAWSRejected, "an ACK one tick old")
	assert.Equal(t, before, len(fromA.all()), "no ACK in reply")

	// A's "first", one tick older than "second", at b's next sequence
	// number, is delivered.
	oldData.SetSeqNum(oldData.SeqNum() + 11)
	oldData.SetChecksumFor(addrA, addrB)
	p.b.deliver(ipPacket(addrA, addrB, header.ProtocolTCP, oldData))
	require.Zero(t, p.b.Stats().TCP.PAWSRejected, "data one tick old") // else the read blocks
	_, err = io.ReadFull(fb, buf[:5])
	require.NoError(t, err)
	assert.Equal(t, "first", string(buf[:5]))
}

// TestPAWSDisorderedDupAck: a duplicate ACK overtaken by later ones,
// five ticks older than the last timestamp recorded, still acknowledges
// sndUna and carries SACK blocks: as Linux does (tcp_disordered_ack),
// it passes PAWS and is not answered.
func TestPAWSDisorderedDupAck(t *testing.T) {
	p := newPair(t, pairOpts{})
	clk := p.clk.(*clock.Manual)
	fa, _ := p.connect(t, 80, nil)
	var mu sync.Mutex
	var first uint32
	dataSent := 0
	var fromA segLog
	// Every transmission of a's first segment is lost: b only sends
	// duplicate ACKs.
	p.la.setDrop(func(ip header.IPv4) bool {
		tcpHdr := header.TCP(ip.Payload())
		fromA.mu.Lock()
		fromA.segs = append(fromA.segs, append(header.TCP(nil), tcpHdr...))
		fromA.mu.Unlock()
		if len(tcpHdr.Payload()) == 0 {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if dataSent++; dataSent == 1 {
			first = tcpHdr.SeqNum()
		}
		return tcpHdr.SeqNum() == first
	})
	var fromB segLog
	fromB.watch(p.lb)
	_, err := fa.WriteNodelay(make([]byte, 3*1448))
	require.NoError(t, err)
	p.settle(t)
	dups := fromB.all()
	require.Len(t, dups, 2, "a duplicate ACK for each segment after the hole")
	held := dups[0]
	require.Equal(t, first, held.AckNum())

	clk.Advance(5 * time.Millisecond)
	_, err = fa.WriteNodelay(make([]byte, 1448))
	require.NoError(t, err)
	p.settle(t)
	require.Len(t, fromB.all(), 3)
	require.Equal(t, first, fromB.all()[2].AckNum(), "a later duplicate ACK, five ticks younger")

	before := len(fromA.all())
	p.a.deliver(ipPacket(addrB, addrA, header.ProtocolTCP, held))
	p.settle(t)
	assert.Zero(t, p.a.Stats().TCP.PAWSRejected)
	assert.Equal(t, before, len(fromA.all()), "no ACK in reply")
}
