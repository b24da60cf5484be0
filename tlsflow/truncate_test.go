package tlsflow

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
)

// rawServer accepts one TCP connection on loopback, runs crypto/tls's
// server handshake on it and hands both the TLS connection and the raw
// socket under it to end, which decides how the stream ends. It returns
// the address to dial.
func rawServer(t *testing.T, version uint16, end func(tc *tls.Conn, raw *net.TCPConn)) string {
	t.Helper()
	p := getPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{p.server},
			MinVersion: version, MaxVersion: version})
		if tc.Handshake() != nil {
			return
		}
		end(tc, nc.(*net.TCPConn))
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func dialRaw(t *testing.T, addr string) *Conn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	c, err := Client(testCtx(t), raw, getPKI(t).clientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { c.NetConn().Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	return c
}

var tlsVersions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// TestReadTruncated: a peer that writes whole records and then closes
// TCP without close_notify (a bare FIN, or a FIN inside a record) gives
// ErrTruncated after the data, not io.EOF.
func TestReadTruncated(t *testing.T) {
	data := make([]byte, 1<<20)
	rand.Read(data)
	for _, v := range tlsVersions {
		t.Run(v.name+"/FIN after a record", func(t *testing.T) {
			addr := rawServer(t, v.v, func(tc *tls.Conn, raw *net.TCPConn) {
				tc.Write(data)
				raw.CloseWrite() // a bare FIN: no close_notify
				io.Copy(io.Discard, raw)
			})
			c := dialRaw(t, addr)
			got, err := io.ReadAll(c)
			require.ErrorIs(t, err, ErrTruncated)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			require.True(t, bytes.Equal(data, got), "the data before the FIN is delivered (%d of %d bytes)", len(got), len(data))
			// The error stays.
			_, err = c.Read(make([]byte, 1))
			require.ErrorIs(t, err, ErrTruncated)
			require.True(t, strings.HasPrefix(err.Error(), "tlsflow: "), err.Error())
		})
		t.Run(v.name+"/FIN inside a record", func(t *testing.T) {
			addr := rawServer(t, v.v, func(tc *tls.Conn, raw *net.TCPConn) {
				tc.Write([]byte("whole record"))
				// The header of an application data record promising 100
				// bytes, and 3 of them.
				raw.Write([]byte{23, 3, 3, 0, 100, 1, 2, 3})
				raw.CloseWrite()
				io.Copy(io.Discard, raw)
			})
			c := dialRaw(t, addr)
			got, err := io.ReadAll(c)
			require.ErrorIs(t, err, ErrTruncated)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			require.Equal(t, "whole record", string(got))
		})
		t.Run(v.name+"/close_notify", func(t *testing.T) {
			// close_notify followed at once by the FIN (tls.Conn.Close),
			// and close_notify alone (CloseWrite) with the socket open.
			for i := 0; i < 20; i++ {
				addr := rawServer(t, v.v, func(tc *tls.Conn, raw *net.TCPConn) {
					tc.Write(data[:100000])
					if i%2 == 0 {
						tc.Close()
						return
					}
					tc.CloseWrite()
					io.Copy(io.Discard, raw)
				})
				c := dialRaw(t, addr)
				got, err := io.ReadAll(c)
				require.NoError(t, err, "round %d: a clean end is io.EOF", i)
				require.Equal(t, 100000, len(got))
				c.Close()
			}
		})
	}
}

// TestReadTruncatedByOpenSSL: openssl s_client, killed after it sent a
// line, never sends close_notify; ended by the end of its standard
// input it does.
func TestReadTruncatedByOpenSSL(t *testing.T) {
	bin := testutil.RequirePeer(t, "openssl", "openssl")
	p := getPKI(t)
	files := p.writeFiles(t)
	for _, kill := range []bool{true, false} {
		name := "stdin EOF"
		if kill {
			name = "SIGKILL"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			ln := NewListener(inner, p.serverConfig())
			defer ln.Close()
			args := []string{"s_client", "-CAfile", files.ca, "-servername", "example.test",
				"-verify_return_error", "-connect", ln.Addr().String()}
			if kill {
				args = append(args, "-quiet") // -quiet ignores the end of input
			}
			cmd := exec.CommandContext(ctx, bin, args...)
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			var errb lockedBuffer
			cmd.Stderr = &errb
			require.NoError(t, cmd.Start())
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			nc, err := ln.Accept()
			require.NoError(t, err)
			c := nc.(*Conn)
			defer c.Close()
			c.SetDeadline(time.Now().Add(15 * time.Second))
			_, err = io.WriteString(stdin, "from openssl\n")
			require.NoError(t, err)
			buf := make([]byte, 13)
			_, err = io.ReadFull(c, buf)
			require.NoError(t, err, errb.String())
			require.Equal(t, "from openssl\n", string(buf))
			if kill {
				require.NoError(t, cmd.Process.Kill())
			} else {
				stdin.Close()
			}
			n, err := c.Read(buf)
			require.Zero(t, n)
			if kill {
				require.ErrorIs(t, err, ErrTruncated, "openssl killed: no close_notify")
			} else {
				require.Equal(t, io.EOF, err, "openssl at the end of its input sends close_notify")
			}
			assert.False(t, errors.Is(err, ErrTruncated) && !kill)
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
