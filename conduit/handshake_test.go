package conduit

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/devpki"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tlsflow"
)

// partialClientHello is the start of a TLS record holding a ClientHello:
// a client that sends these 3 bytes and stops stalls a server handshake.
var partialClientHello = []byte{0x16, 0x03, 0x01}

// stallTLS connects to the host:port of a tls:// URI and sends a partial
// ClientHello; the connection is closed when the test ends.
func stallTLS(t *testing.T, uri string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", hostPort(t, uri))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Write(partialClientHello)
	require.NoError(t, err)
	return c
}

func hostPort(t testing.TB, uri string) string {
	t.Helper()
	_, rest, ok := strings.Cut(uri, "://")
	require.True(t, ok, uri)
	hp, _, _ := strings.Cut(rest, "?")
	return hp
}

// requireClosedByServer reads c until the server closes it; the deadline
// only guards against a hang.
func requireClosedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err := io.Copy(io.Discard, c)
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the server never closed the connection")
}

// TestPartialClientHellosDoNotLockOut: with WithMaxConns(10), ten clients
// that send 3 bytes of a ClientHello and stall do not take the slots: a
// real crypto/tls client that connects after them is served.
func TestPartialClientHellosDoNotLockOut(t *testing.T) {
	srv := newTestConduit(t)
	target := serve(t, srv, "tls://127.0.0.1:0?sni="+testServerName, echo, WithMaxConns(10))
	for range 10 {
		stallTLS(t, target)
	}
	// The stalled clients are ahead of this one in the kernel's queue.
	f, err := srv.Dial(testCtx(t), target)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.SetDeadline(time.Now().Add(30*time.Second))) // hang guard
	roundTrip(t, f, 64<<10)
}

// TestPartialClientHellosDoNotLockOutOpenSSL: the same with openssl
// s_client as the real client.
func TestPartialClientHellosDoNotLockOutOpenSSL(t *testing.T) {
	openssl := testutil.RequirePeer(t, "openssl", "openssl")
	ca, err := devpki.NewAuthority("conduit test CA")
	require.NoError(t, err)
	cert, err := ca.Issue(testServerName, "127.0.0.1")
	require.NoError(t, err)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.CertPEM(), 0o600))
	srv := New(&Config{TLS: TLSConfig{Server: &tlsflow.Config{Certificates: []tls.Certificate{cert}}}})
	defer srv.Close()
	target := serve(t, srv, "tls://127.0.0.1:0?sni="+testServerName, echo, WithMaxConns(10))
	for range 10 {
		stallTLS(t, target)
	}
	ctx := testCtx(t)
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", hostPort(t, target),
		"-servername", testServerName, "-CAfile", caFile, "-verify_return_error", "-quiet")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start())
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("openssl stderr:\n%s", stderr.String())
		}
	}()
	_, err = io.WriteString(stdin, "through openssl\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "openssl got no echo (the context's deadline ends a hang)")
	assert.Equal(t, "through openssl\n", line)
}

// TestHandshakeTimeout: a client that stalls its handshake is closed at
// the listener's handshake timeout, and the failure is logged at debug.
func TestHandshakeTimeout(t *testing.T) {
	var logs lockedBuffer
	srv := New(&Config{TLS: testPKI(t), Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	defer srv.Close()
	target := serve(t, srv, "tls://127.0.0.1:0?sni="+testServerName, echo, WithHandshakeTimeout(200*time.Millisecond))
	var stalled []net.Conn
	for range 5 {
		stalled = append(stalled, stallTLS(t, target))
	}
	for _, c := range stalled {
		requireClosedByServer(t, c)
	}
	require.Eventually(t, func() bool { return strings.Count(logs.String(), "tls handshake failed") == 5 },
		10*time.Second, 10*time.Millisecond, logs.String())
	assert.Contains(t, logs.String(), "handshake timed out")
}

// TestServerHandshakeTimeout: a Server serving a lazily handshaking
// listener (tlsflow.NewListener) runs each handshake before the handler,
// under HandshakeTimeout: a stalled client is closed without reaching the
// handler, and a real one is served.
func TestServerHandshakeTimeout(t *testing.T) {
	pki := testPKI(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := tlsflow.NewListener(inner, pki.Server)
	handled := make(chan bool, 4)
	srv := &Server{
		Handler: HandlerFunc(func(ctx context.Context, f Flow) {
			handled <- f.(*tlsflow.Conn).ConnectionState().HandshakeComplete
			echo(ctx, f)
		}),
		HandshakeTimeout: 200 * time.Millisecond,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	defer func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-errc, ErrServerClosed)
	}()
	uri := "tls://" + inner.Addr().String()
	requireClosedByServer(t, stallTLS(t, uri))

	c := New(&Config{TLS: pki})
	defer c.Close()
	f, err := c.Dial(testCtx(t), uri+"?sni="+testServerName)
	require.NoError(t, err)
	defer f.Close()
	roundTrip(t, f, 1000)
	require.True(t, <-handled, "the handler got a handshaken flow")
	select {
	case <-handled:
		t.Fatal("the stalled client reached the handler")
	default:
	}
}
