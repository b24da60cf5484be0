package tlsflow

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTLSConfig(t *testing.T) {
	p := getPKI(t)
	certs := []tls.Certificate{p.server}
	for _, tc := range []struct {
		name    string
		cfg     *Config
		client  bool
		wantErr string
		check   func(*testing.T, *tls.Config)
	}{
		{"nil client", nil, true, "", func(t *testing.T, c *tls.Config) {
			assert.Equal(t, uint16(tls.VersionTLS12), c.MinVersion)
			assert.NotNil(t, c.ClientSessionCache)
			assert.False(t, c.InsecureSkipVerify)
		}},
		{"TLS 1.3 only", &Config{MinVersion: tls.VersionTLS13}, true, "", func(t *testing.T, c *tls.Config) {
			assert.Equal(t, uint16(tls.VersionTLS13), c.MinVersion)
		}},
		{"TLS 1.1 rejected", &Config{MinVersion: tls.VersionTLS11}, true, "TLS 1.2 is the minimum", nil},
		{"unknown version", &Config{MinVersion: 0x0305}, false, "unknown MinVersion", nil},
		{"server without certificate", &Config{}, false, "needs Certificates or GetCertificate", nil},
		{"client auth without CAs", &Config{Certificates: certs, ClientAuth: tls.RequireAndVerifyClientCert}, false, "needs ClientCAs", nil},
		{"server", &Config{Certificates: certs, NextProtos: []string{"h2"}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.caPool}, false, "", func(t *testing.T, c *tls.Config) {
			assert.Equal(t, []string{"h2"}, c.NextProtos)
			assert.Equal(t, tls.VerifyClientCertIfGiven, c.ClientAuth)
			assert.Nil(t, c.ClientSessionCache)
		}},
		{"pins", &Config{PinnedSPKI: [][32]byte{{1}}}, true, "", func(t *testing.T, c *tls.Config) {
			assert.NotNil(t, c.VerifyConnection)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.TLSConfig(tc.client)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			tc.check(t, got)
		})
	}
}

func TestConfigErrorClosesConn(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	_, err := Server(context.Background(), a, &Config{})
	require.Error(t, err)
	_, err = a.Write([]byte("x"))
	assert.ErrorIs(t, err, io.ErrClosedPipe)
}

func TestCloneSharesSessionCache(t *testing.T) {
	c := &Config{NextProtos: []string{"a"}}
	n := c.Clone()
	n.NextProtos[0] = "b"
	assert.Equal(t, "a", c.NextProtos[0])
	assert.Same(t, c.sessionCache(), n.sessionCache())
	assert.Nil(t, n.SessionCache)
	assert.Nil(t, (*Config)(nil).Clone())
}

// TestServerNameFromIP: an empty ServerName verifies the peer's IP.
func TestServerNameFromIP(t *testing.T) {
	p := getPKI(t)
	s := run(t, transports[0], &Config{RootCAs: p.caPool}, p.serverConfig(), echoUntilEOF)
	require.NoError(t, s.clientErr)
	_, err := exchange(s.client, writeAndCloseWrite(nil))
	require.NoError(t, err)

	// No IP to verify over a pipe.
	a, b := net.Pipe()
	defer b.Close()
	_, err = Client(testCtx(t), a, &Config{RootCAs: p.caPool})
	require.ErrorContains(t, err, "ServerName is empty")
}

// TestInsecureWithPin: InsecureSkipVerify plus a pin trusts exactly the
// pinned key.
func TestInsecureWithPin(t *testing.T) {
	p := getPKI(t)
	cc := &Config{ServerName: "example.test", InsecureSkipVerify: true, PinnedSPKI: [][32]byte{SPKIHash(p.other.Leaf)}}
	sc := &Config{Certificates: []tls.Certificate{p.other}}
	s := run(t, transports[0], cc, sc, echoUntilEOF)
	require.NoError(t, s.clientErr)
	_, err := exchange(s.client, writeAndCloseWrite(nil))
	require.NoError(t, err)
}

type addrConn struct {
	net.Conn
	dst, src netip.AddrPort
}

func (c addrConn) Dst() netip.AddrPort { return c.dst }
func (c addrConn) Src() netip.AddrPort { return c.src }

func TestDstSrc(t *testing.T) {
	p := getPKI(t)
	s := run(t, transports[0], p.clientConfig(), p.serverConfig(), echoUntilEOF)
	require.NoError(t, s.clientErr)
	c := s.client
	assert.Equal(t, c.RemoteAddr().(*net.TCPAddr).AddrPort(), c.Dst())
	assert.Equal(t, c.LocalAddr().(*net.TCPAddr).AddrPort(), c.Src())
	_, err := exchange(c, writeAndCloseWrite(nil))
	require.NoError(t, err)

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	pc := newConn(tls.Client(a, &tls.Config{}), a, true, "")
	assert.Equal(t, netip.AddrPort{}, pc.Dst())
	assert.Equal(t, netip.AddrPort{}, pc.Src())
	want := netip.MustParseAddrPort("[fd00::1]:7")
	ac := addrConn{Conn: a, dst: want, src: netip.MustParseAddrPort("10.0.0.1:9")}
	wc := newConn(tls.Client(ac, &tls.Config{}), ac, true, "")
	assert.Equal(t, want, wc.Dst())
	assert.Equal(t, ac.src, wc.Src())
	assert.Same(t, a, wc.NetConn().(addrConn).Conn)
}

// TestListenerLazyHandshake: a silent client does not block Accept; the
// next client's handshake runs on its Conn's first Read.
func TestListenerLazyHandshake(t *testing.T) {
	p := getPKI(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := NewListener(inner, p.serverConfig())
	defer ln.Close()
	ctx := testCtx(t)

	silent, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer silent.Close()
	first, err := ln.Accept()
	require.NoError(t, err)
	defer first.Close()

	clientDone := make(chan error, 1)
	go func() {
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			clientDone <- err
			return
		}
		c, err := Client(ctx, raw, p.clientConfig())
		if err != nil {
			clientDone <- err
			return
		}
		defer c.Close()
		_, err = exchange(c, writeAndCloseWrite([]byte("lazy")))
		clientDone <- err
	}()
	second, err := ln.Accept()
	require.NoError(t, err)
	defer second.Close()
	require.NoError(t, echoUntilEOF(second.(*Conn)))
	require.NoError(t, <-clientDone)
	assert.True(t, second.(*Conn).ConnectionState().HandshakeComplete)
	assert.False(t, first.(*Conn).ConnectionState().HandshakeComplete)

	// The silent client's handshake is bounded by the caller's context.
	hctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = first.(*Conn).Handshake(hctx)
	require.ErrorIs(t, err, ErrHandshakeTimeout)
	_, err = first.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrHandshakeTimeout, "the failure sticks")

	bad := NewListener(inner, &Config{})
	_, err = bad.Accept()
	require.ErrorContains(t, err, "needs Certificates")
}

func TestReloader(t *testing.T) {
	p := getPKI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	write := func(c tls.Certificate, mod time.Time) {
		writePEM(t, certFile, certBlock(c))
		writePEM(t, keyFile, keyBlock(t, c))
		require.NoError(t, os.Chtimes(certFile, mod, mod))
		require.NoError(t, os.Chtimes(keyFile, mod, mod))
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	write(p.server, base)
	r, err := LoadKeyPair(certFile, keyFile)
	require.NoError(t, err)
	now := time.Now()
	r.now = func() time.Time { return now }
	r.nextCheck.Store(0)

	leaf := func() []byte {
		c, err := r.GetCertificate(nil)
		require.NoError(t, err)
		return c.Certificate[0]
	}
	assert.Equal(t, p.server.Certificate[0], leaf())

	write(p.other, base.Add(time.Second))
	assert.Equal(t, p.server.Certificate[0], leaf(), "not looked at within a second")
	now = now.Add(time.Second)
	assert.Equal(t, p.other.Certificate[0], leaf(), "reloaded after the files changed")

	// A half-written update keeps the previous pair.
	writePEM(t, certFile, certBlock(p.server))
	require.NoError(t, os.Chtimes(certFile, base.Add(2*time.Second), base.Add(2*time.Second)))
	now = now.Add(time.Second)
	assert.Equal(t, p.other.Certificate[0], leaf())
	assert.Error(t, r.Err())
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(keyBlock(t, p.server)), 0o600))
	now = now.Add(time.Second)
	assert.Equal(t, p.server.Certificate[0], leaf())
	assert.NoError(t, r.Err())

	// It serves handshakes.
	s := run(t, transports[0], p.clientConfig(), &Config{GetCertificate: r.GetCertificate}, echoUntilEOF)
	require.NoError(t, s.clientErr)
	_, err = exchange(s.client, writeAndCloseWrite(nil))
	require.NoError(t, err)

	_, err = LoadKeyPair(filepath.Join(dir, "missing"), keyFile)
	assert.Error(t, err)
}

func TestNewCertPoolFromFile(t *testing.T) {
	p := getPKI(t)
	dir := t.TempDir()
	good := p.writeFiles(t).ca
	pool, err := NewCertPoolFromFile(good)
	require.NoError(t, err)
	assert.True(t, pool.Equal(p.caPool))

	for name, data := range map[string][]byte{
		"empty":   nil,
		"key":     pem.EncodeToMemory(keyBlock(t, p.server)),
		"garbage": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("nope")}),
	} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, data, 0o600))
		_, err := NewCertPoolFromFile(path)
		assert.Error(t, err, name)
	}
	_, err = NewCertPoolFromFile(filepath.Join(dir, "missing"))
	assert.Error(t, err)
}
