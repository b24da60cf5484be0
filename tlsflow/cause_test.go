package tlsflow

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
)

// TestHandshakeErrorCauses: a handshake that runs out of time matches
// endpoint.ErrTimeout (conduit's ErrTimeout) by itself, as a timed out
// dial of any transport does; one whose connection was reset matches
// endpoint.ErrReset through the connection's error.
func TestHandshakeErrorCauses(t *testing.T) {
	// pair returns both ends of a loopback TCP connection.
	pair := func(t *testing.T) (cli, srv net.Conn) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		cli, err = net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { cli.Close() })
		srv, err = l.Accept()
		require.NoError(t, err)
		t.Cleanup(func() { srv.Close() })
		return cli, srv
	}

	t.Run("timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		cli, _ := pair(t)
		_, err := Client(ctx, cli, &Config{ServerName: "silent.test"}) // the server never answers
		require.ErrorIs(t, err, ErrHandshakeTimeout)
		assert.ErrorIs(t, err, endpoint.ErrTimeout)
		assert.NotErrorIs(t, err, endpoint.ErrReset)
		assert.NotErrorIs(t, err, endpoint.ErrRefused)
	})

	t.Run("reset", func(t *testing.T) {
		c, srv := pair(t)
		require.NoError(t, srv.(*net.TCPConn).SetLinger(0))
		require.NoError(t, srv.Close())                                          // a RST
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // only against a hang
		defer cancel()
		_, err := Client(ctx, c, &Config{ServerName: "reset.test"})
		require.ErrorIs(t, err, ErrHandshake)
		assert.True(t, endpoint.HasCause(err, endpoint.ErrReset), "%v", err)
		assert.NotErrorIs(t, err, endpoint.ErrTimeout)
	})
}
