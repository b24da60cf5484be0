package stack

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

// bulkWithFaults sends size bytes each way at once over a faulty link
// and compares hashes.
func bulkWithFaults(t *testing.T, size int, faults channel.FaultOptions) {
	p := newPair(t, pairOpts{faults: faults, tcp: tcp.Options{RTOMin: 20 * time.Millisecond, MaxRetransmits: 30}})
	drive(t, p.clk, 2*time.Millisecond)
	p.watchdog(t, 120*time.Second)
	fa, fb := p.connect(t, 80, nil)
	da, db := randomBytes(size, faults.Seed), randomBytes(size, faults.Seed+1)
	type result struct {
		sum        [32]byte
		werr, rerr error
	}
	ch := make(chan result, 1)
	start := time.Now()
	go func() {
		s, w, r := transfer(t, fb, fa, db)
		ch <- result{s, w, r}
	}()
	sum, werr, rerr := transfer(t, fa, fb, da)
	r := <-ch
	elapsed := time.Since(start)
	require.NoError(t, werr)
	require.NoError(t, rerr)
	require.NoError(t, r.werr)
	require.NoError(t, r.rerr)
	assert.Equal(t, sha256.Sum256(da), sum, "a to b")
	assert.Equal(t, sha256.Sum256(db), r.sum, "b to a")
	ls := p.la.Endpoint.(*channel.Endpoint).Stats()
	st := p.a.Stats().TCP
	t.Logf("%d bytes each way in %v; link a: lost %d dup %d reordered %d; tcp a: retrans %d timeouts %d fast %d",
		size, elapsed, ls.Lost, ls.Duplicated, ls.Reordered, st.Retransmits, st.Timeouts, st.FastRetransmits)
}

func TestFaults(t *testing.T) {
	for _, c := range []struct {
		loss float64
		size int
	}{
		{0.01, 2 << 20},
		{0.05, 2 << 20},
		{0.20, 256 << 10}, // RTOs dominate: kept small for -race
	} {
		t.Run(fmt.Sprintf("loss%v", c.loss), func(t *testing.T) {
			bulkWithFaults(t, c.size, channel.FaultOptions{
				Seed: 7, Loss: c.loss, Duplicate: 0.01, Reorder: 0.02, ReorderDelay: 3 * time.Millisecond,
			})
		})
	}
}

// TestFaultsLarge is the 64 MiB run; it is slow under the race
// detector, so -short skips it. At 20% loss (of data and ACKs alike) it
// takes tens of seconds: most of the time goes to the retransmission
// timeouts that SACK, RACK and tail loss probes cannot avoid.
func TestFaultsLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if raceEnabled {
		t.Skip("too slow with -race")
	}
	for _, c := range []struct {
		loss float64
		size int
	}{
		{0.01, 64 << 20},
		{0.05, 64 << 20},
		{0.20, 64 << 20},
	} {
		t.Run(fmt.Sprintf("loss%v", c.loss), func(t *testing.T) {
			bulkWithFaults(t, c.size, channel.FaultOptions{
				Seed: 11, Loss: c.loss, Duplicate: 0.01, Reorder: 0.02, ReorderDelay: 3 * time.Millisecond,
			})
		})
	}
}
