package tcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
)

// lastAck returns the acknowledgment number and window of the last
// segment in out, which must hold one.
func lastAck(t *testing.T, out []sentSeg) (ack uint32, window int) {
	t.Helper()
	require.NotEmpty(t, out)
	s := out[len(out)-1].seg
	return s.AckNum(), int(s.WindowSize())
}

// sendData sends data from c in segments of at most 1460 bytes as far
// as the window the protocol advertised (edge) lets it, until a
// segment is not taken whole; it returns what was taken and the new
// edge, checking the budget after each segment.
func (c *rawPeer) sendData(t *testing.T, data []byte, edge uint32) (taken int, _ uint32) {
	r := c.r
	start := c.seq
	for int(c.seq-start) < len(data) && int32(edge-c.seq) > 0 {
		off := int(c.seq - start)
		n := min(len(data)-off, 1460, int(edge-c.seq))
		c.send(header.TCPFlagACK, 65535, data[off:off+n])
		require.LessOrEqual(t, r.p.Stats().BufferBytes, uint64(r.p.budget.limit), "within the budget")
		ack, w := lastAck(t, r.take())
		if e := ack + uint32(w); int32(e-edge) > 0 {
			edge = e
		}
		if ack != c.seq {
			c.seq = ack // the rest goes again later
			break
		}
	}
	return int(c.seq - start), edge
}

// TestBudgetReceiveWindows has two peers send to a listener whose
// application reads nothing, under a 64 KiB budget: the windows offered
// are what the budget holds (32 KiB, the largest power-of-two receive
// ring within the 56 KiB growth limit), not the 1 MiB buffer; the
// second peer, promised the same memory, gets only what is left (a 16
// KiB ring: the growth limit cannot hold 32), the data
// beyond is dropped and counted, and the budget is never exceeded.
// Once the first connection's data is read, the second's is taken,
// byte-exact.
func TestBudgetReceiveWindows(t *testing.T) {
	const budget = 64 << 10
	r := newRawRig(t, Options{BufferBudget: budget, DelayedACK: -1})
	ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
	require.NoError(t, err)
	defer ln.Close()

	type conn struct {
		c    *rawPeer
		f    tcpflow.Flow
		edge uint32
	}
	var cs [2]conn
	for i := range cs {
		c := &rawPeer{r: r, addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), uint16(5000+i)), seq: 1000}
		c.send(header.TCPFlagSYN, 65535, nil) // no window scale: windows in bytes
		c.seq++
		out := r.take()
		require.Len(t, out, 1)
		c.ack = out[0].seg.SeqNum() + 1
		w := int(out[0].seg.WindowSize())
		assert.Equal(t, 32<<10, w, "window offered: a ring the budget holds, not min(RecvBuffer, 65535)")
		c.send(header.TCPFlagACK, 65535, nil)
		f, err := ln.AcceptFlow()
		require.NoError(t, err)
		defer f.Close()
		cs[i] = conn{c: c, f: f, edge: c.seq + uint32(w)}
	}

	data := [2][]byte{bytes.Repeat([]byte("first "), 40<<10/6), bytes.Repeat([]byte("second"), 40<<10/6)}
	n0, _ := cs[0].c.sendData(t, data[0], cs[0].edge)
	assert.Equal(t, 32<<10, n0, "the first peer fills its window")
	assert.Zero(t, r.p.Stats().BudgetDrops)
	n1, edge1 := cs[1].c.sendData(t, data[1], cs[1].edge)
	t.Logf("second peer: %d bytes of 32768 taken; %d bytes charged", n1, r.p.Stats().BufferBytes)
	assert.EqualValues(t, 1, r.p.Stats().BudgetDrops, "data the budget cannot hold is dropped")
	assert.Equal(t, 16<<10, n1)
	assert.Equal(t, uint64(32<<10+16<<10), r.p.Stats().BufferBytes, "two rings: a third of 32 KiB would pass the growth limit")

	// Reading the first connection's data frees its memory: the rest of
	// the second's is taken.
	buf := make([]byte, 64<<10)
	n, err := io.ReadAtLeast(cs[0].f, buf, 32<<10)
	require.NoError(t, err)
	assert.Equal(t, data[0][:32<<10], buf[:n])
	rest := data[1][n1 : 32<<10]
	taken, _ := cs[1].c.sendData(t, rest, edge1)
	require.Equal(t, len(rest), taken)
	n, err = io.ReadAtLeast(cs[1].f, buf, 32<<10)
	require.NoError(t, err)
	assert.Equal(t, data[1][:32<<10], buf[:n], "byte-exact")
	assert.LessOrEqual(t, r.p.Stats().BufferBytes, uint64(budget))
}

// TestBudgetGivenBack checks that the memory of data no one will read
// goes back to the budget: a connection reset with unread data, once
// closed, and a connection still in a listener's accept queue, once the
// listener is closed.
func TestBudgetGivenBack(t *testing.T) {
	r := newRawRig(t, Options{BufferBudget: 1 << 20})
	ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
	require.NoError(t, err)

	c, f := r.connect(ln, netip.MustParseAddrPort("10.0.0.9:6000"), 65535)
	c.send(header.TCPFlagACK, 65535, bytes.Repeat([]byte("x"), 1000))
	require.NotZero(t, r.p.Stats().BufferBytes, "unread data is charged")
	r.take() // its ACK
	c.send(header.TCPFlagRST, 0, nil)
	_, err = f.Write([]byte("y"))
	require.True(t, errors.Is(err, tcpflow.ErrReset), "%v", err)
	require.NoError(t, f.Close())
	assert.Zero(t, r.p.Stats().BufferBytes, "given back by Close after a reset")

	// A connection that brings data before it is accepted, then the
	// listener closes.
	c2 := &rawPeer{r: r, addr: netip.MustParseAddrPort("10.0.0.9:6001"), seq: 1000}
	c2.send(header.TCPFlagSYN, 65535, nil)
	c2.seq++
	c2.ack = r.take()[0].seg.SeqNum() + 1
	c2.send(header.TCPFlagACK, 65535, bytes.Repeat([]byte("z"), 1000))
	require.NotZero(t, r.p.Stats().BufferBytes)
	require.NoError(t, ln.Close())
	assert.Zero(t, r.p.Stats().BufferBytes, "given back when the listener resets it")
	r.take()
}

// TestBudgetWriteWaits fills a 128 KiB budget with zero-window peers:
// each Write queues what the budget holds (rings of 64, 32 and 16 KiB
// fill the 112 KiB growth limit, then 4 KiB floors come from the
// reserve), then waits for memory as on a full send buffer, until its
// deadline; once what is left cannot hold a new connection's floors, a
// SYN is refused with a reset. When the first peer is gone, a Write
// waiting for its ring to double goes on.
func TestBudgetWriteWaits(t *testing.T) {
	const budget = 128 << 10
	r := newRawRig(t, Options{BufferBudget: budget})
	ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
	require.NoError(t, err)
	defer ln.Close()

	c1, f1 := r.connect(ln, netip.MustParseAddrPort("10.0.0.9:7000"), 0)
	n, err := f1.Write(make([]byte, 64<<10))
	require.NoError(t, err)
	require.Equal(t, 64<<10, n)
	var fs []tcpflow.Flow
	for i, want := range []int{32 << 10, 16 << 10, sndFloor, sndFloor} {
		_, f := r.connect(ln, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), uint16(7001+i)), 0)
		fs = append(fs, f)
		f.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		n, err = f.Write(make([]byte, 128<<10))
		assert.True(t, errors.Is(err, os.ErrDeadlineExceeded), "%v", err)
		assert.Equal(t, want, n, "queued within the budget")
		assert.LessOrEqual(t, r.p.Stats().BufferBytes, uint64(budget))
	}
	assert.Equal(t, uint64(budget-budget/8+2*sndFloor), r.p.Stats().BufferBytes)

	// 8 KiB are left, less than a new connection's floors.
	c := &rawPeer{r: r, addr: netip.MustParseAddrPort("10.0.0.9:7009"), seq: 1000}
	r.take()
	c.send(header.TCPFlagSYN, 65535, nil)
	out := r.take()
	require.Len(t, out, 1)
	assert.NotZero(t, out[0].seg.Flags()&header.TCPFlagRST, "refused with a reset")
	assert.EqualValues(t, 1, r.p.Stats().BudgetRefused)

	// The first peer goes: its memory comes back and a Write waiting
	// for its ring to double goes on.
	fs[0].SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := fs[0].Write(bytes.Repeat([]byte("w"), 32<<10))
		done <- err
	}()
	require.Eventually(t, func() bool { return r.p.BudgetWaiters() == 1 }, 10*time.Second, time.Millisecond)
	c1.send(header.TCPFlagRST, 0, nil)
	require.NoError(t, f1.Close())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second): // against a hang only
		t.Fatal("the waiting Write was not woken")
	}
	assert.LessOrEqual(t, r.p.Stats().BufferBytes, uint64(budget))
	assert.Zero(t, r.p.BudgetWaiters())
}

// TestLentBuffersBounded sends a connection that reads nothing small
// segments, each in a link buffer of 65 000 bytes (a link of MTU
// 65000 lends its buffers): only payloads filling half a buffer are
// queued in it, so the receive queue pins about its 64 KiB of data,
// not a buffer per segment (4 MB before: every payload at least half
// its packet was lent).
func TestLentBuffersBounded(t *testing.T) {
	const rcvBuf = 64 << 10
	returned := 0
	r := newRawRig(t, Options{RecvBuffer: rcvBuf, DelayedACK: -1, ReturnBuffer: func(*[]byte) { returned++ }})
	ln, err := r.p.ListenFlows(context.Background(), netip.AddrPortFrom(rigAddr, rigPort), nil)
	require.NoError(t, err)
	defer ln.Close()
	c, f := r.connect(ln, netip.MustParseAddrPort("10.0.0.9:8000"), 65535)
	r.take()
	payload := bytes.Repeat([]byte("s"), 1000)
	kept := 0
	for range rcvBuf / len(payload) {
		fields := header.TCPFields{SrcPort: c.addr.Port(), DstPort: rigPort, SeqNum: c.seq, AckNum: c.ack, Flags: header.TCPFlagACK, WindowSize: 65535}
		buf := make([]byte, 0, 65000)
		seg := header.TCP(buf[:fields.EncodedLen()])
		seg.Encode(&fields)
		seg = append(seg, payload...)
		seg.SetChecksumFor(c.addr.Addr(), rigAddr)
		buf = buf[:len(seg)]
		if r.p.HandleSegmentBuf(c.addr.Addr(), rigAddr, seg, &buf) {
			kept++
		}
		c.seq += uint32(len(payload))
	}
	ack, _ := lastAck(t, r.take())
	require.Equal(t, c.seq, ack, "all taken")
	t.Logf("%d bytes held for %d bytes of data; %d buffers kept", r.p.Stats().BufferBytes, rcvBuf/1000*1000, kept)
	assert.Zero(t, kept, "small payloads are copied")
	assert.LessOrEqual(t, r.p.Stats().BufferBytes, uint64(2*rcvBuf))
	got := make([]byte, rcvBuf)
	n, err := io.ReadAtLeast(f, got, rcvBuf/1000*1000)
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat(payload, rcvBuf/1000), got[:n])
	assert.Equal(t, kept, returned)
}
