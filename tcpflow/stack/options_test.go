package stack

import (
	"context"
	"crypto/sha256"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

// TestCorruptingLinkChecksums: a link that flips bits offers no
// checksum offload, so the stacks check TCP checksums and a transfer
// over it still arrives intact.
func TestCorruptingLinkChecksums(t *testing.T) {
	p := newPair(t, pairOpts{faults: channel.FaultOptions{Seed: 3, Corrupt: 0.02}})
	require.False(t, p.la.Endpoint.(*channel.Endpoint).ChecksumOffload())
	drive(t, p.clk, time.Millisecond)
	fa, fb := p.connect(t, 80, nil)
	data := randomBytes(1<<20, 3)
	sum, werr, rerr := transfer(t, fa, fb, data)
	require.NoError(t, werr)
	require.NoError(t, rerr)
	assert.Equal(t, sha256.Sum256(data), sum)
	st := p.b.Stats()
	assert.NotZero(t, st.IPInvalid+st.TCP.InvalidSegments, "corrupted packets were caught")
}

func TestChecksumOffloadChoice(t *testing.T) {
	for _, c := range []struct {
		o    channel.FaultOptions
		want bool
	}{
		{channel.FaultOptions{}, true},
		{channel.FaultOptions{Corrupt: 0.1}, false},
		{channel.FaultOptions{NoChecksumOffload: true}, false},
	} {
		a, b := channel.NewPair(1500, c.o)
		assert.Equal(t, c.want, a.ChecksumOffload(), "%+v", c.o)
		a.Close()
		b.Close()
	}
}

// TestTCPOptionsKept: a stack option left at zero keeps the value given
// in Options.TCP.
func TestTCPOptionsKept(t *testing.T) {
	p := newPair(t, pairOpts{tcp: tcp.Options{MaxConnections: 1}})
	_, _ = p.connect(t, 80, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.a.CreateConnection(ctx, netip.AddrPortFrom(addrB, 81), tcpflow.DialOptions{})
	require.Error(t, err, "TCP.MaxConnections 1 must hold")
	assert.Contains(t, err.Error(), "too many connections")
}
