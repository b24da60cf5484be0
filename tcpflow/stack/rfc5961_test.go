package stack

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
)

// forge sends b a segment as if from a's end of the connection fa.
func forge(p *pair, fa tcpflow.Flow, seq, ack uint32, flags header.TCPFlags) {
	h := make(header.TCP, header.TCPMinimumSize)
	h.Encode(&header.TCPFields{
		SrcPort: fa.Src().Port(), DstPort: fa.Dst().Port(),
		SeqNum: seq, AckNum: ack, Flags: flags, WindowSize: 1000,
	})
	h.SetChecksumFor(addrA, addrB)
	p.b.deliver(ipPacket(addrA, addrB, header.ProtocolTCP, h))
}

// lastFromB returns the sequence and acknowledgment numbers of the last
// segment b sent: b's next sequence number, and the next one it expects
// from a.
func lastFromB(t *testing.T, l *segLog) (seq, ack uint32) {
	t.Helper()
	segs := l.all()
	require.NotEmpty(t, segs)
	s := segs[len(segs)-1]
	return s.SeqNum() + uint32(len(s.Payload())), s.AckNum()
}

// TestRFC5961 checks the blind-attack defences: a reset or a SYN that is
// in the window but not exactly at the next sequence number gets a
// challenge ACK and leaves the connection alone; only a reset at
// exactly RCV.NXT resets it.
func TestRFC5961(t *testing.T) {
	p := newPair(t, pairOpts{})
	fa, fb := p.connect(t, 80, nil)
	var fromB segLog
	fromB.watch(p.lb)
	_, err := fb.WriteNodelay([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadFull(fa, make([]byte, 1))
	require.NoError(t, err)
	p.settle(t)
	sndB, rcvB := lastFromB(t, &fromB)

	// A reset in the window, not at RCV.NXT: a challenge ACK.
	fromB.reset()
	forge(p, fa, rcvB+100, 0, header.TCPFlagRST)
	acks := fromB.all()
	require.Len(t, acks, 1, "one challenge ACK")
	assert.Equal(t, header.TCPFlagACK, acks[0].Flags())
	assert.Equal(t, rcvB, acks[0].AckNum())

	// A SYN on the established connection: a challenge ACK too.
	fromB.reset()
	forge(p, fa, rcvB+7, 0, header.TCPFlagSYN)
	acks = fromB.all()
	require.Len(t, acks, 1, "one challenge ACK")
	assert.Equal(t, header.TCPFlagACK, acks[0].Flags())

	// A reset outside the window is dropped silently.
	fromB.reset()
	forge(p, fa, rcvB-100000, 0, header.TCPFlagRST)
	assert.Empty(t, fromB.all())

	// The connection still works.
	_, err = fa.WriteNodelay([]byte("still here"))
	require.NoError(t, err)
	buf := make([]byte, 10)
	_, err = io.ReadFull(fb, buf)
	require.NoError(t, err)
	assert.Equal(t, "still here", string(buf))
	p.settle(t)

	// A reset exactly at RCV.NXT resets it.
	forge(p, fa, rcvB+10, sndB, header.TCPFlagRST)
	_, err = fb.Read(buf)
	assert.ErrorIs(t, err, tcpflow.ErrReset)
}

// TestSimultaneousClose: both ends close while their FINs are lost, so
// the retransmitted FINs cross; both ends go through CLOSING or
// FIN-WAIT-2 to TIME-WAIT, and each reads every byte and then EOF.
func TestSimultaneousClose(t *testing.T) {
	p := newPair(t, pairOpts{})
	clk := p.clk.(*clock.Manual)
	fa, fb := p.connect(t, 80, nil)
	p.la.setDrop(dropAll)
	p.lb.setDrop(dropAll)
	_, err := fa.Write([]byte("from a"))
	require.NoError(t, err)
	_, err = fb.Write([]byte("from b"))
	require.NoError(t, err)
	require.NoError(t, fa.CloseWrite())
	require.NoError(t, fb.CloseWrite())
	assert.Equal(t, 2, strings.Count(stateOf(p.a)+stateOf(p.b), "FIN-WAIT-1"))
	p.la.setDrop(nil)
	p.lb.setDrop(nil)
	for i := 0; i < 10 && strings.Count(stateOf(p.a)+stateOf(p.b), "TIME-WAIT") < 2; i++ {
		clk.Advance(time.Second) // the retransmissions
		p.settle(t)
	}
	assert.Equal(t, 2, strings.Count(stateOf(p.a)+stateOf(p.b), "TIME-WAIT"), "a: %s b: %s", stateOf(p.a), stateOf(p.b))
	got, err := io.ReadAll(fa)
	require.NoError(t, err)
	assert.Equal(t, "from b", string(got))
	got, err = io.ReadAll(fb)
	require.NoError(t, err)
	assert.Equal(t, "from a", string(got))
}
