package tlsflow

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nagleConn is an inner flow with Nagle's algorithm: it counts the
// writes it was asked to push.
type nagleConn struct {
	net.Conn
	plain, pushed atomic.Int32
}

func (c *nagleConn) Write(b []byte) (int, error) { c.plain.Add(1); return c.Conn.Write(b) }
func (c *nagleConn) WriteNodelay(b []byte) (int, error) {
	c.pushed.Add(1)
	return c.Conn.Write(b)
}

// TestRecordsArePushed: a TLS record is a whole message, so it is written
// with the inner flow's WriteNodelay, never held back by Nagle's algorithm.
func TestRecordsArePushed(t *testing.T) {
	pki := getPKI(t)
	a, b := net.Pipe()
	cli := &nagleConn{Conn: a}
	srvDone := make(chan error, 1)
	go func() {
		s, err := Server(context.Background(), b, pki.serverConfig())
		if err == nil {
			_, err = io.Copy(s, s)
			s.Close()
		}
		srvDone <- err
	}()
	c, err := Client(context.Background(), cli, pki.clientConfig())
	require.NoError(t, err)
	pushedAfterHandshake := cli.pushed.Load()
	for range 3 {
		_, err = c.Write([]byte("ping"))
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
	}
	c.Close()
	<-srvDone
	assert.Zero(t, cli.plain.Load(), "no record went through the Nagle-delayed Write")
	assert.GreaterOrEqual(t, cli.pushed.Load()-pushedAfterHandshake, int32(3))
}
