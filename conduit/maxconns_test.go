package conduit

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// limitServer serves echo on uri with the options, counting accepted
// flows and logging at debug level into logs.
func limitServer(t *testing.T, c *Conduit, uri string, logs *lockedBuffer, opts ...ListenOption) (*Listener, *atomic.Int32) {
	t.Helper()
	var accepted atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	tr := &Trace{Accept: func(net.Addr, net.Addr) { accepted.Add(1) }}
	opts = append(opts, WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	ln, err := c.Listen(WithTrace(ctx, tr), uri, opts...)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- ServeListener(ctx, ln, echo, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-errc)
	})
	return ln, &accepted
}

// echoByte writes one byte and reads it back (a hang guard bounds it).
func echoByte(t *testing.T, f net.Conn, b byte) {
	t.Helper()
	require.NoError(t, f.SetDeadline(time.Now().Add(30*time.Second)))
	_, err := f.Write([]byte{b})
	require.NoError(t, err)
	got := make([]byte, 1)
	_, err = io.ReadFull(f, got)
	require.NoError(t, err)
	require.Equal(t, b, got[0])
	require.NoError(t, f.SetDeadline(time.Time{}))
}

// TestMaxConnsStopsAccepting: at the limit a TCP listener accepts
// nothing: the next client's connect completes in the kernel's queue,
// the limit is logged, and the client is served once a flow closes.
func TestMaxConnsStopsAccepting(t *testing.T) {
	c := New(nil)
	defer c.Close()
	var logs lockedBuffer
	ln, accepted := limitServer(t, c, "tcp://127.0.0.1:0", &logs, WithMaxConns(2))
	var held []Flow
	for i := range 2 {
		f, err := c.Dial(testCtx(t), ln.URI())
		require.NoError(t, err)
		defer f.Close()
		echoByte(t, f, byte('a'+i))
		held = append(held, f)
	}
	waiting, err := c.Dial(testCtx(t), ln.URI())
	require.NoError(t, err, "the kernel completes the connection")
	defer waiting.Close()
	_, err = waiting.Write([]byte("w"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "at its connection limit") },
		10*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, 2, accepted.Load(), "nothing accepted beyond the limit")
	assert.Equal(t, 2, len(ln.slots))

	require.NoError(t, held[0].Close())
	require.NoError(t, waiting.SetReadDeadline(time.Now().Add(30*time.Second)))
	got := make([]byte, 1)
	_, err = io.ReadFull(waiting, got)
	require.NoError(t, err, "served once a slot is free")
	assert.Equal(t, "w", string(got))
	assert.EqualValues(t, 3, accepted.Load())
}

// TestMaxConnsTLSAtLimit: at the limit a TLS client still handshakes
// (handshakes are outside the limit), but it is not left waiting: it is
// closed at the handshake timeout, with a log line; once a slot is free
// the next client is served.
func TestMaxConnsTLSAtLimit(t *testing.T) {
	c := newTestConduit(t)
	var logs lockedBuffer
	ln, accepted := limitServer(t, c, "tls://127.0.0.1:0?sni="+testServerName, &logs,
		WithMaxConns(1), WithHandshakeTimeout(300*time.Millisecond))
	first, err := c.Dial(testCtx(t), ln.URI())
	require.NoError(t, err)
	defer first.Close()
	echoByte(t, first, 'a')

	second, err := c.Dial(testCtx(t), ln.URI())
	require.NoError(t, err, "the handshake runs outside the limit")
	defer second.Close()
	require.NoError(t, second.SetReadDeadline(time.Now().Add(30*time.Second))) // hang guard
	_, err = second.Write([]byte("b"))
	require.NoError(t, err)
	n, err := second.Read(make([]byte, 1))
	require.Zero(t, n, "never served")
	require.Error(t, err)
	require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "closed by the server, not by the hang guard")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "not accepted within") },
		10*time.Second, 5*time.Millisecond, logs.String())
	assert.EqualValues(t, 1, accepted.Load())

	require.NoError(t, first.Close())
	third, err := c.Dial(testCtx(t), ln.URI())
	require.NoError(t, err)
	defer third.Close()
	echoByte(t, third, 'c')
}
