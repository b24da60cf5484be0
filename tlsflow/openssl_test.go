package tlsflow

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// startPeer starts an openssl command; it is killed and reaped when the test
// ends. Its stdout is returned as a line reader.
func startPeer(t *testing.T, ctx context.Context, args ...string) (io.WriteCloser, *bufio.Reader, *strings.Builder) {
	t.Helper()
	bin := testutil.RequirePeer(t, "openssl", "openssl")
	cmd := exec.CommandContext(ctx, bin, args...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("openssl %s\nstderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	})
	return stdin, bufio.NewReader(stdout), stderr
}

// dialTLS connects our client to addr, retrying a bounded number of times
// while the peer starts listening.
func dialTLS(t *testing.T, ctx context.Context, addr string, cfg *Config) *Conn {
	t.Helper()
	var d net.Dialer
	var lastErr error
	for attempt := 0; attempt < 100; attempt++ {
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			lastErr = err
			select {
			case <-ctx.Done():
				t.Fatalf("peer never listened on %s: %v", addr, lastErr)
			case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
			}
			continue
		}
		c, err := Client(ctx, raw, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { c.NetConn().Close() })
		return c
	}
	t.Fatalf("peer never listened on %s: %v", addr, lastErr)
	return nil
}

var opensslVersions = []struct {
	name string
	flag string
	want uint16
}{
	{"TLS1.2", "-tls1_2", tls.VersionTLS12},
	{"TLS1.3", "-tls1_3", tls.VersionTLS13},
}

// TestOpenSSLServer runs our client against openssl s_server -rev, which
// answers each line reversed.
func TestOpenSSLServer(t *testing.T) {
	p := getPKI(t)
	files := p.writeFiles(t)
	for _, v := range opensslVersions {
		for _, mtls := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/mtls=%v", v.name, mtls), func(t *testing.T) {
				ctx := testCtx(t)
				port := freePort(t)
				args := []string{"s_server", "-accept", "127.0.0.1:" + strconv.Itoa(port),
					"-cert", files.serverCert, "-key", files.serverKey, v.flag, "-rev", "-quiet"}
				cfg := p.clientConfig()
				if mtls {
					args = append(args, "-Verify", "1", "-CAfile", files.ca, "-verify_return_error")
					cfg.Certificates = []tls.Certificate{p.client}
				}
				startPeer(t, ctx, args...)
				c := dialTLS(t, ctx, "127.0.0.1:"+strconv.Itoa(port), cfg)
				assert.Equal(t, v.want, c.ConnectionState().Version)
				_, err := c.Write([]byte("hello tlsflow\n"))
				require.NoError(t, err)
				line, err := bufio.NewReader(c).ReadString('\n')
				require.NoError(t, err)
				assert.Equal(t, "wolfslt olleh", strings.TrimSpace(line))
			})
		}
	}
}

// TestOpenSSLClient runs openssl s_client against our server.
func TestOpenSSLClient(t *testing.T) {
	p := getPKI(t)
	files := p.writeFiles(t)
	for _, v := range opensslVersions {
		for _, mtls := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/mtls=%v", v.name, mtls), func(t *testing.T) {
				ctx := testCtx(t)
				cfg := p.serverConfig()
				args := []string{"s_client", "-CAfile", files.ca, "-servername", "example.test",
					"-verify_return_error", v.flag, "-quiet"}
				if mtls {
					cfg.ClientAuth = tls.RequireAndVerifyClientCert
					cfg.ClientCAs = p.caPool
					args = append(args, "-cert", files.clientCert, "-key", files.clientKey)
				}
				inner, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				ln := NewListener(inner, cfg)
				defer ln.Close()
				args = append(args, "-connect", ln.Addr().String())

				stdin, stdout, _ := startPeer(t, ctx, args...)
				nc, err := ln.Accept()
				require.NoError(t, err)
				c := nc.(*Conn)
				defer c.Close()
				require.NoError(t, c.Handshake(ctx))
				cs := c.ConnectionState()
				assert.Equal(t, v.want, cs.Version)
				assert.Equal(t, "example.test", cs.ServerName)
				if assert.Equal(t, mtls, len(cs.PeerCertificates) > 0) && mtls {
					assert.Equal(t, "client.test", cs.PeerCertificates[0].Subject.CommonName)
				}

				_, err = io.WriteString(stdin, "ping\n")
				require.NoError(t, err)
				line, err := bufio.NewReader(c).ReadString('\n')
				require.NoError(t, err)
				assert.Equal(t, "ping\n", line)
				_, err = c.Write([]byte("pong\n"))
				require.NoError(t, err)
				got, err := stdout.ReadString('\n')
				require.NoError(t, err)
				assert.Equal(t, "pong\n", got)
			})
		}
	}
}
