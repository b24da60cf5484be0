package tlsflow

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// transport makes a connected pair of inner connections.
type transport struct {
	name string
	pair func(t *testing.T) (client, server net.Conn)
	// synchronous transports (net.Pipe) have no buffer: when the client
	// rejects the server mid-flight, both sides write and crypto/tls
	// deadlocks until the handshake context ends.
	synchronous bool
}

func listenPair(t *testing.T, network, addr string) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	require.NoError(t, err)
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	cc, err := net.DialTimeout(network, ln.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	r := <-ch
	require.NoError(t, r.err)
	return cc, r.c
}

var transports = []transport{
	{"tcp", func(t *testing.T) (net.Conn, net.Conn) { return listenPair(t, "tcp", "127.0.0.1:0") }, false},
	{"unix", func(t *testing.T) (net.Conn, net.Conn) {
		return listenPair(t, "unix", filepath.Join(t.TempDir(), "s"))
	}, false},
	{"pipe", func(t *testing.T) (net.Conn, net.Conn) { return net.Pipe() }, true},
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// session is one client/server pair run concurrently: the server side
// handshakes and runs serve in a goroutine that the test waits for.
type session struct {
	client    *Conn
	clientErr error
	server    chan error // serve's result (or the server handshake error)
	serverHS  chan error // the server handshake result
}

// run handshakes a pair over tr. serve runs on the server Conn after a
// successful handshake. The inner connections are closed when the test
// ends and the server goroutine is waited for.
func run(t *testing.T, tr transport, ccfg, scfg *Config, serve func(*Conn) error) *session {
	t.Helper()
	return runCtx(t, testCtx(t), tr, ccfg, scfg, serve)
}

// rejectCtx bounds handshakes expected to fail: briefly on synchronous
// transports, where only the context ends them.
func rejectCtx(t *testing.T, tr transport) context.Context {
	ctx := testCtx(t)
	if tr.synchronous {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
		t.Cleanup(cancel)
	}
	return ctx
}

// checkRejected checks the errors of a handshake the client rejected.
func checkRejected(t *testing.T, tr transport, s *session, want error) {
	t.Helper()
	require.Error(t, s.clientErr)
	assert.ErrorIs(t, s.clientErr, want)
	assert.ErrorIs(t, s.clientErr, ErrHandshake)
	var he *HandshakeError
	require.ErrorAs(t, s.clientErr, &he)
	assert.Equal(t, want, he.Kind)
	serr := s.wait(t)
	if tr.synchronous {
		// A synchronous pipe delivers the alert only if the server is
		// reading; while it is still writing its flight it never takes
		// it, and the context ends both sides. Which happens depends on
		// how far each side got when the client checked the
		// certificate, so the server's error is only known to be a
		// failed handshake.
		assert.ErrorIs(t, serr, ErrHandshake)
		return
	}
	assert.ErrorIs(t, serr, ErrPeerAlert)
	var alert tls.AlertError
	assert.ErrorAs(t, serr, &alert)
}

func runCtx(t *testing.T, ctx context.Context, tr transport, ccfg, scfg *Config, serve func(*Conn) error) *session {
	t.Helper()
	craw, sraw := tr.pair(t)
	s := &session{server: make(chan error, 1), serverHS: make(chan error, 1)}
	go func() {
		sc, err := Server(ctx, sraw, scfg)
		s.serverHS <- err
		if err == nil && serve != nil {
			err = serve(sc)
		}
		s.server <- err
	}()
	t.Cleanup(func() {
		craw.Close()
		sraw.Close()
		<-s.server
	})
	s.client, s.clientErr = Client(ctx, craw, ccfg)
	return s
}

// wait returns the server's result.
func (s *session) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.server:
		s.server <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("server did not finish")
		return nil
	}
}

// exchange writes msg (concurrently, so a synchronous pipe cannot
// deadlock against post-handshake messages) and reads until EOF.
func exchange(c *Conn, write func(*Conn) error) ([]byte, error) {
	werr := make(chan error, 1)
	go func() { werr <- write(c) }()
	got, err := io.ReadAll(c)
	return got, errors.Join(err, <-werr)
}

// echoUntilEOF reads everything until the peer's close_notify and then
// writes it back reversed-in-case and closes its write side.
func echoUntilEOF(c *Conn) error {
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if _, err := c.Write(bytes.ToUpper(got)); err != nil {
		return err
	}
	return c.CloseWrite()
}

func writeAndCloseWrite(msg []byte) func(*Conn) error {
	return func(c *Conn) error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		return c.CloseWrite()
	}
}

func (p *testPKI) clientConfig() *Config {
	return &Config{ServerName: "example.test", RootCAs: p.caPool}
}

func (p *testPKI) serverConfig() *Config {
	return &Config{Certificates: []tls.Certificate{p.server}}
}

func TestFlows(t *testing.T) {
	p := getPKI(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Run("round trip and CloseWrite", func(t *testing.T) {
				s := run(t, tr, p.clientConfig(), p.serverConfig(), echoUntilEOF)
				require.NoError(t, s.clientErr)
				got, err := exchange(s.client, writeAndCloseWrite([]byte("hello")))
				require.NoError(t, err)
				assert.Equal(t, "HELLO", string(got), "peer read io.EOF after CloseWrite and could still write back")
				require.NoError(t, s.wait(t))
				cs := s.client.ConnectionState()
				assert.Equal(t, uint16(tls.VersionTLS13), cs.Version)
				assert.True(t, cs.HandshakeComplete)
				_, err = s.client.Write([]byte("x"))
				assert.Error(t, err, "writing after CloseWrite")
			})
			t.Run("Writev", func(t *testing.T) {
				bufs := net.Buffers{[]byte("a"), nil, bytes.Repeat([]byte("b"), 100), big, []byte("c"), big[:20000], bytes.Repeat([]byte("d"), 3*maxPlaintext)}
				var want []byte
				for _, b := range bufs {
					want = append(want, b...)
				}
				s := run(t, tr, p.clientConfig(), p.serverConfig(), echoUntilEOF)
				require.NoError(t, s.clientErr)
				got, err := exchange(s.client, func(c *Conn) error {
					n, err := c.Writev(bufs)
					if err != nil {
						return err
					}
					if n != int64(len(want)) {
						return errors.New("short Writev")
					}
					return c.CloseWrite()
				})
				require.NoError(t, err)
				assert.Equal(t, bytes.ToUpper(want), got)
				for _, b := range bufs {
					if len(b) > 0 && b[0] == 'b' {
						assert.Equal(t, byte('b'), b[0], "Writev must not modify its buffers")
					}
				}
			})
			t.Run("ALPN", func(t *testing.T) {
				cc := p.clientConfig()
				cc.NextProtos = []string{"h2", "http/1.1"}
				sc := p.serverConfig()
				sc.NextProtos = []string{"http/1.1"}
				s := run(t, tr, cc, sc, echoUntilEOF)
				require.NoError(t, s.clientErr)
				assert.Equal(t, "http/1.1", s.client.ConnectionState().NegotiatedProtocol)
				_, err := exchange(s.client, writeAndCloseWrite(nil))
				require.NoError(t, err)
			})
			t.Run("mTLS", func(t *testing.T) {
				cc := p.clientConfig()
				cc.Certificates = []tls.Certificate{p.client}
				sc := p.serverConfig()
				sc.ClientAuth = tls.RequireAndVerifyClientCert
				sc.ClientCAs = p.caPool
				s := run(t, tr, cc, sc, func(c *Conn) error {
					if len(c.ConnectionState().PeerCertificates) == 0 {
						return errors.New("no client certificate")
					}
					return echoUntilEOF(c)
				})
				require.NoError(t, s.clientErr)
				got, err := exchange(s.client, writeAndCloseWrite([]byte("mtls")))
				require.NoError(t, err)
				assert.Equal(t, "MTLS", string(got))
				require.NoError(t, s.wait(t))
			})
			t.Run("mTLS without client certificate", func(t *testing.T) {
				sc := p.serverConfig()
				sc.ClientAuth = tls.RequireAndVerifyClientCert
				sc.ClientCAs = p.caPool
				s := run(t, tr, p.clientConfig(), sc, nil)
				// TLS 1.3: the client learns of the rejection on its first read.
				require.NoError(t, s.clientErr)
				_, err := s.client.Read(make([]byte, 1))
				var alert tls.AlertError
				require.ErrorAs(t, err, &alert)
				assert.Equal(t, tls.AlertError(116), alert, "certificate_required")
				var ae *AlertError
				require.ErrorAs(t, err, &ae)
				serr := s.wait(t)
				require.ErrorIs(t, serr, ErrHandshake)
			})
			t.Run("pinning", func(t *testing.T) {
				good := SPKIHash(p.server.Leaf)
				for _, tc := range []struct {
					name string
					pins [][32]byte
					want error
				}{
					{"match", [][32]byte{{1}, good}, nil},
					{"mismatch", [][32]byte{{1}, {2}}, ErrPinMismatch},
				} {
					t.Run(tc.name, func(t *testing.T) {
						cc := p.clientConfig()
						cc.PinnedSPKI = tc.pins
						if tc.want != nil {
							s := runCtx(t, rejectCtx(t, tr), tr, cc, p.serverConfig(), nil)
							checkRejected(t, tr, s, tc.want)
							return
						}
						s := run(t, tr, cc, p.serverConfig(), echoUntilEOF)
						require.NoError(t, s.clientErr)
						_, err := exchange(s.client, writeAndCloseWrite(nil))
						require.NoError(t, err)
					})
				}
			})
			t.Run("resumption", func(t *testing.T) {
				cc, sc := p.clientConfig(), p.serverConfig()
				for i := range 2 {
					s := run(t, tr, cc, sc, echoUntilEOF)
					require.NoError(t, s.clientErr)
					assert.Equal(t, i == 1, s.client.ConnectionState().DidResume, "handshake %d", i)
					// Reading lets the client receive the session ticket.
					_, err := exchange(s.client, writeAndCloseWrite([]byte("r")))
					require.NoError(t, err)
					require.NoError(t, s.wait(t))
				}
			})
			t.Run("rejected", func(t *testing.T) {
				for _, tc := range []struct {
					name   string
					client func(*Config)
					server func(*Config)
					want   error
					wantX  any
				}{
					{"wrong name", func(c *Config) { c.ServerName = "wrong.test" }, nil, ErrWrongName, &x509HostnameError},
					{"unknown CA", func(c *Config) { c.RootCAs = p.otherCA }, nil, ErrUntrusted, &x509UnknownAuthority},
					{"unknown CA issuer", nil, func(c *Config) { c.Certificates = []tls.Certificate{p.other} }, ErrUntrusted, &x509UnknownAuthority},
					{"expired", nil, func(c *Config) { c.Certificates = []tls.Certificate{p.expired} }, ErrExpired, &x509CertificateInvalid},
				} {
					t.Run(tc.name, func(t *testing.T) {
						cc, sc := p.clientConfig(), p.serverConfig()
						if tc.client != nil {
							tc.client(cc)
						}
						if tc.server != nil {
							tc.server(sc)
						}
						s := runCtx(t, rejectCtx(t, tr), tr, cc, sc, nil)
						checkRejected(t, tr, s, tc.want)
						assert.ErrorAs(t, s.clientErr, tc.wantX)
						assert.Contains(t, s.clientErr.Error(), "tls handshake with "+cc.ServerName+": "+tc.want.Error()+": ")
					})
				}
			})
			t.Run("handshake timeout against silent server", func(t *testing.T) {
				craw, sraw := tr.pair(t)
				defer sraw.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				c, err := Client(ctx, craw, p.clientConfig())
				assert.Nil(t, c)
				require.ErrorIs(t, err, ErrHandshakeTimeout)
				require.ErrorIs(t, err, context.DeadlineExceeded)
				var ne net.Error
				require.ErrorAs(t, err, &ne)
				assert.True(t, ne.Timeout())
				// The inner connection was closed: the silent side reads EOF
				// (after whatever ClientHello made it through).
				_ = sraw.SetReadDeadline(time.Now().Add(5 * time.Second)) // fails on a closed pipe
				_, err = io.Copy(io.Discard, sraw)
				require.NoError(t, err)
				_, err = craw.Write([]byte("x"))
				assert.Error(t, err)
			})
		})
	}
}

func TestHandshakeCancel(t *testing.T) {
	craw, sraw := net.Pipe()
	defer sraw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Client(ctx, craw, getPKI(t).clientConfig())
	require.ErrorIs(t, err, ErrHandshakeTimeout)
	require.ErrorIs(t, err, context.Canceled)
	_, err = craw.Write([]byte("x"))
	assert.ErrorIs(t, err, io.ErrClosedPipe)
}
