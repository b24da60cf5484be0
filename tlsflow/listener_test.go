package tlsflow

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// partialHello is the first bytes of a TLS record carrying a ClientHello:
// a client that sends them and stops stalls the server's handshake.
var partialHello = []byte{0x16, 0x03, 0x01}

// stallHandshake connects to addr, sends the start of a ClientHello and
// returns the connection, closed when the test ends.
func stallHandshake(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Write(partialHello)
	require.NoError(t, err)
	return c
}

// waitClosed reads from c until the server closes it, with a deadline
// as a guard against hangs only, and returns what the read returned.
func waitClosed(t *testing.T, c net.Conn) error {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err := io.Copy(io.Discard, c)
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the server never closed the connection")
	return err
}

// realClient handshakes with addr in the background and sends msg; the
// returned channel yields the error of the exchange (nil: the server
// echoed msg in upper case).
func realClient(t *testing.T, addr string, msg string) <-chan error {
	p := getPKI(t)
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			done <- err
			return
		}
		c, err := Client(ctx, raw, p.clientConfig())
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		got, err := exchange(c, writeAndCloseWrite([]byte(msg)))
		if err == nil && string(got) != string([]byte(msg)) && string(got) != upper(msg) {
			err = errors.New("echo mismatch: " + string(got))
		}
		done <- err
	}()
	return done
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func newHandshakeListener(t *testing.T, opts ListenerOptions) *HandshakeListener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln, err := NewHandshakeListener(inner, getPKI(t).serverConfig(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestHandshakeListenerStalledClientsDoNotBlockAccept: clients that stall
// their handshake are never returned by Accept and hold up no one; Close
// closes them.
func TestHandshakeListenerStalledClientsDoNotBlockAccept(t *testing.T) {
	ln := newHandshakeListener(t, ListenerOptions{HandshakeTimeout: -1})
	addr := ln.Addr().String()
	var stalled []net.Conn
	for range 10 {
		stalled = append(stalled, stallHandshake(t, addr))
	}
	done := realClient(t, addr, "served")
	nc, err := ln.Accept()
	require.NoError(t, err)
	c := nc.(*Conn)
	assert.True(t, c.ConnectionState().HandshakeComplete, "Accept returns handshaken connections")
	require.NoError(t, echoUntilEOF(c))
	require.NoError(t, c.Close())
	require.NoError(t, <-done)

	require.NoError(t, ln.Close())
	for _, s := range stalled {
		waitClosed(t, s)
	}
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
}

// TestHandshakeListenerTimeout: a stalled handshake is closed at the
// handshake timeout and reported.
func TestHandshakeListenerTimeout(t *testing.T) {
	reported := make(chan error, 1)
	ln := newHandshakeListener(t, ListenerOptions{
		HandshakeTimeout: 100 * time.Millisecond,
		HandshakeError:   func(_ net.Addr, err error) { reported <- err },
	})
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
			err = errors.New("a stalled client was accepted")
		}
		accepted <- err
	}()
	s := stallHandshake(t, ln.Addr().String())
	waitClosed(t, s)
	err := <-reported
	require.ErrorIs(t, err, ErrHandshakeTimeout)
	var he *HandshakeError
	require.ErrorAs(t, err, &he)
	require.NoError(t, ln.Close())
	require.ErrorIs(t, <-accepted, net.ErrClosed)
}

// TestHandshakeListenerMaxHandshakes: at MaxHandshakes unfinished
// handshakes the listener stops accepting; the next client is taken once
// a stalled one has been closed.
func TestHandshakeListenerMaxHandshakes(t *testing.T) {
	var closedStalled atomic.Int32
	ln := newHandshakeListener(t, ListenerOptions{
		HandshakeTimeout: 200 * time.Millisecond,
		MaxHandshakes:    2,
		HandshakeError:   func(net.Addr, error) { closedStalled.Add(1) },
	})
	addr := ln.Addr().String()
	// Start the accept loop, and let it take the two stalled clients
	// before the real one connects (the kernel's queue is in order).
	acceptc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acceptc)
			return
		}
		acceptc <- c
	}()
	stallHandshake(t, addr)
	stallHandshake(t, addr)
	done := realClient(t, addr, "third")
	c, ok := <-acceptc
	require.True(t, ok)
	defer c.Close()
	assert.GreaterOrEqual(t, closedStalled.Load(), int32(1),
		"the third client waited for a place: a stalled handshake had to end first")
	require.NoError(t, echoUntilEOF(c.(*Conn)))
	require.NoError(t, <-done)
}

// TestHandshakeListenerNotAcceptedInTime: a handshaken connection that no
// Accept call takes before its handshake timeout is closed, not left
// waiting.
func TestHandshakeListenerNotAcceptedInTime(t *testing.T) {
	reported := make(chan error, 4)
	ln := newHandshakeListener(t, ListenerOptions{
		HandshakeTimeout: 300 * time.Millisecond,
		HandshakeError:   func(_ net.Addr, err error) { reported <- err },
	})
	addr := ln.Addr().String()
	first := realClient(t, addr, "first")
	c, err := ln.Accept()
	require.NoError(t, err)
	require.NoError(t, echoUntilEOF(c.(*Conn)))
	c.Close()
	require.NoError(t, <-first)

	// Nobody calls Accept now: the second client handshakes, waits, and
	// is closed.
	second := realClient(t, addr, "second")
	err = <-second
	require.Error(t, err, "the second client was closed, not served")
	err = <-reported
	require.ErrorIs(t, err, ErrHandshakeTimeout)
	assert.Contains(t, err.Error(), "not accepted")
}

// scriptListener is an inner listener that returns the scripted errors,
// then connections from a channel.
type scriptListener struct {
	mu     sync.Mutex
	errs   []error
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *scriptListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *scriptListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *scriptListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// TestHandshakeListenerPassesAcceptErrors: errors of the inner listener
// reach Accept one per call, as they are, and the listener goes on.
func TestHandshakeListenerPassesAcceptErrors(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	inner := &scriptListener{errs: []error{emfile, emfile}, conns: make(chan net.Conn), closed: make(chan struct{})}
	ln, err := NewHandshakeListener(inner, getPKI(t).serverConfig(), ListenerOptions{})
	require.NoError(t, err)
	defer ln.Close()
	for range 2 {
		_, err := ln.Accept()
		require.ErrorIs(t, err, syscall.EMFILE)
	}
	a, b := net.Pipe()
	defer a.Close()
	clientDone := make(chan error, 1)
	go func() {
		c, err := Client(testCtx(t), a, getPKI(t).clientConfig())
		if err == nil {
			_, err = exchange(c, writeAndCloseWrite([]byte("pipe")))
		}
		clientDone <- err
	}()
	inner.conns <- b
	c, err := ln.Accept()
	require.NoError(t, err)
	require.NoError(t, echoUntilEOF(c.(*Conn)))
	c.Close()
	require.NoError(t, <-clientDone)
}

func TestHandshakeListenerBadConfig(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer inner.Close()
	_, err = NewHandshakeListener(inner, &Config{}, ListenerOptions{})
	require.ErrorContains(t, err, "needs Certificates")
}
