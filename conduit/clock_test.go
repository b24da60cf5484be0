package conduit

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/stack"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

// TestStackOnManualClock builds the userspace stack outside tcpflow on a
// manual clock and dials through a Conduit an address that never
// answers: the SYN is sent again after 1, 2, 4 … 64 s and the dial fails
// after tcp.DefaultSYNRetries retransmissions, all on the clock the test
// advances (in real time, the last would be two minutes away).
func TestStackOnManualClock(t *testing.T) {
	testutil.CheckLeaks(t)
	clk := &armingClock{Manual: clock.NewManual(time.Unix(1_800_000_000, 0)), armed: make(chan time.Duration, 64)}
	a, b := channel.NewPair(1500, channel.FaultOptions{Clock: clk.Manual})
	defer b.Close()
	defer a.Close()
	syns := make(chan struct{}, 16)
	b.SetReceiver(func([]byte) { syns <- struct{}{} }) // no stack behind b: nothing answers
	s, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.255.1.1/24"), Link: a, Clock: clk})
	require.NoError(t, err)
	defer s.Close()
	c := New(&Config{Stack: s, Clock: clk})
	defer c.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		f, err := c.Dial(ctx, "tcp://10.255.1.2:80")
		if f != nil {
			f.Close()
		}
		done <- err
	}()
	hang := time.After(30 * time.Second) // a hang guard: the test waits for no timer in real time
	select {
	case <-syns:
	case <-hang:
		t.Fatal("no SYN")
	}
	for d := time.Duration(0); d != tcp.DefaultRTOInitial; { // the SYN's retransmission timer
		select {
		case d = <-clk.armed:
		case <-hang:
			t.Fatal("no retransmission timer")
		}
	}
	start := clk.Now()
	// 1+2+…+64 s of retransmissions, then the wait for the last SYN's
	// answer (128 s): the timers fire inside Advance.
	for range 256 {
		clk.Advance(time.Second)
	}
	select {
	case err = <-done:
	case <-hang:
		t.Fatalf("the dial did not fail on the manual clock (%v of it elapsed, %+v, %d pending)", clk.Now().Sub(start), a.Stats(), clk.Pending())
	}
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.Canceled)
	assert.Equal(t, uint64(1+tcp.DefaultSYNRetries), a.Stats().TxPackets, "the SYN and its retransmissions")
}

// armingClock is a manual clock that announces the duration of each
// timer made with AfterFunc (not of those reset later).
type armingClock struct {
	*clock.Manual
	armed chan time.Duration
}

func (c *armingClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := c.Manual.AfterFunc(d, f)
	select {
	case c.armed <- d:
	default: // nobody is waiting for that many
	}
	return t
}
