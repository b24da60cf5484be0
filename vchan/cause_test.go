package vchan

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	cause "github.com/conduit-go/conduit/endpoint"
)

// assertCause checks that err matches want among the shared causes of
// package endpoint and no other of refused, timeout and reset.
func assertCause(t *testing.T, err, want error) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, want)
	for _, other := range []error{cause.ErrRefused, cause.ErrTimeout, cause.ErrReset} {
		if other != want {
			assert.NotErrorIs(t, err, other)
		}
	}
}

// TestSharedCauses: vchan's errors match the shared causes that other
// transports' errors match for the same events, without any mapping by
// the caller.
func TestSharedCauses(t *testing.T) {
	dir := testStore(t)
	cfg := &Config{Dir: dir}
	ctx := context.Background()

	t.Run("refused", func(t *testing.T) {
		_, err := DialName(ctx, cfg, "nobody", "web")
		assertCause(t, err, cause.ErrRefused)
		assert.ErrorIs(t, err, ErrRefused)
		l, err := Listen(ctx, cfg, "web")
		require.NoError(t, err)
		defer l.Close()
		_, err = Dial(ctx, cfg, l.Domid(), "other")
		assertCause(t, err, cause.ErrRefused)
	})

	t.Run("timeout", func(t *testing.T) {
		l, err := Listen(ctx, cfg, "idle") // never accepts
		require.NoError(t, err)
		defer l.Close()
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err = Dial(dctx, cfg, l.Domid(), "idle")
		assertCause(t, err, cause.ErrTimeout)
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout())

		// A cancelled dial is no timeout.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err = Dial(cctx, cfg, l.Domid(), "idle")
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, cause.ErrTimeout)

		// A connection's passed deadline is one.
		srv, cli := shmPair(t, cfg)
		_ = srv
		require.NoError(t, cli.SetReadDeadline(time.Now().Add(-time.Second)))
		_, err = cli.Read(make([]byte, 1))
		assertCause(t, err, cause.ErrTimeout)
	})

	t.Run("reset", func(t *testing.T) {
		// A write to a vchan its peer closed, as a TCP write to a
		// connection its peer closed fails with EPIPE.
		srv, cli := shmPair(t, cfg)
		require.NoError(t, srv.Close())
		_, err := cli.Write([]byte("x"))
		assertCause(t, err, cause.ErrReset)
		assert.ErrorIs(t, err, ErrPeerClosed)
		assert.ErrorIs(t, err, net.ErrClosed, "as before")
		assert.True(t, errors.Is(ErrPeerDied, cause.ErrReset), "a peer that died is a reset too")
	})

	t.Run("closed", func(t *testing.T) {
		_, cli := shmPair(t, cfg)
		require.NoError(t, cli.Close())
		_, err := cli.Read(make([]byte, 1))
		assert.ErrorIs(t, err, net.ErrClosed)
		assert.NotErrorIs(t, err, cause.ErrReset, "closed here is not the peer's doing")
	})
}
