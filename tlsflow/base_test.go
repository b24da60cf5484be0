package tlsflow

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBaseConfig: how Base's fields and Config's combine.
func TestBaseConfig(t *testing.T) {
	p := getPKI(t)
	cache := tls.NewLRUClientSessionCache(1)
	for _, tc := range []struct {
		name    string
		cfg     *Config
		client  bool
		wantErr string
		check   func(*testing.T, *tls.Config)
	}{
		{"base fields kept", &Config{Base: &tls.Config{
			NextProtos: []string{"h2"}, ServerName: "base.test", RootCAs: p.caPool,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, ClientSessionCache: cache,
		}}, true, "", func(t *testing.T, c *tls.Config) {
			assert.Equal(t, uint16(tls.VersionTLS12), c.MinVersion, "the default where Base is zero")
			assert.Equal(t, []string{"h2"}, c.NextProtos)
			assert.Equal(t, "base.test", c.ServerName)
			assert.Same(t, p.caPool, c.RootCAs)
			assert.Equal(t, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, c.CipherSuites)
			assert.Same(t, cache, c.ClientSessionCache)
		}},
		{"config fields win", &Config{
			Base:       &tls.Config{NextProtos: []string{"h2"}, ServerName: "base.test", MinVersion: tls.VersionTLS12},
			NextProtos: []string{"x"}, ServerName: "cfg.test", MinVersion: tls.VersionTLS13,
		}, true, "", func(t *testing.T, c *tls.Config) {
			assert.Equal(t, uint16(tls.VersionTLS13), c.MinVersion)
			assert.Equal(t, []string{"x"}, c.NextProtos)
			assert.Equal(t, "cfg.test", c.ServerName)
			assert.NotNil(t, c.ClientSessionCache, "the per-Config cache where Base has none")
		}},
		{"base TLS 1.3 kept", &Config{Base: &tls.Config{MinVersion: tls.VersionTLS13}}, true, "", func(t *testing.T, c *tls.Config) {
			assert.Equal(t, uint16(tls.VersionTLS13), c.MinVersion)
		}},
		{"base TLS 1.0 rejected", &Config{Base: &tls.Config{MinVersion: tls.VersionTLS10}}, true, "TLS 1.2 is the minimum", nil},
		{"base TLS 1.0 rejected on servers", &Config{Base: &tls.Config{MinVersion: tls.VersionTLS10, Certificates: []tls.Certificate{p.server}}}, false, "TLS 1.2 is the minimum", nil},
		{"max below min", &Config{Base: &tls.Config{MaxVersion: tls.VersionTLS12}, MinVersion: tls.VersionTLS13}, true, "below the minimum", nil},
		{"base insecure stays on", &Config{Base: &tls.Config{InsecureSkipVerify: true}}, true, "", func(t *testing.T, c *tls.Config) {
			assert.True(t, c.InsecureSkipVerify)
		}},
		{"server certificates from base", &Config{Base: &tls.Config{Certificates: []tls.Certificate{p.server}}}, false, "", func(t *testing.T, c *tls.Config) {
			assert.Len(t, c.Certificates, 1)
		}},
		{"server GetConfigForClient suffices", &Config{Base: &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }}}, false, "", func(t *testing.T, c *tls.Config) {
			assert.NotNil(t, c.GetConfigForClient)
		}},
		{"server client auth from base needs CAs", &Config{Base: &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert}}, false, "needs ClientCAs", nil},
		{"server client auth from base with CAs", &Config{
			Base:      &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert},
			ClientCAs: p.caPool,
		}, false, "", func(t *testing.T, c *tls.Config) {
			assert.Equal(t, tls.RequireAndVerifyClientCert, c.ClientAuth)
			assert.Same(t, p.caPool, c.ClientCAs)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before tls.Config
			if tc.cfg.Base != nil {
				before = *tc.cfg.Base.Clone()
			}
			got, err := tc.cfg.TLSConfig(tc.client)
			if tc.cfg.Base != nil {
				assert.Equal(t, before.MinVersion, tc.cfg.Base.MinVersion, "Base is not modified")
				assert.Equal(t, before.ServerName, tc.cfg.Base.ServerName, "Base is not modified")
				assert.Equal(t, before.ClientSessionCache, tc.cfg.Base.ClientSessionCache, "Base is not modified")
			}
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.NotSame(t, tc.cfg.Base, got)
			tc.check(t, got)
		})
	}
}

var errRefused = errors.New("refused by the base's check")

// TestBaseVerifyConnection: the base's VerifyConnection runs on every
// handshake and its error fails it; with pins, both must pass.
func TestBaseVerifyConnection(t *testing.T) {
	p := getPKI(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			var calls atomic.Int32
			var refuse atomic.Bool
			base := &tls.Config{VerifyConnection: func(cs tls.ConnectionState) error {
				calls.Add(1)
				if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != "example.test" {
					return errors.New("no example.test certificate")
				}
				if refuse.Load() {
					return errRefused
				}
				return nil
			}}
			cc := &Config{Base: base, ServerName: "example.test", RootCAs: p.caPool}
			s := run(t, tr, cc, p.serverConfig(), echoUntilEOF)
			require.NoError(t, s.clientErr)
			_, err := exchange(s.client, writeAndCloseWrite([]byte("x")))
			require.NoError(t, err)
			assert.Equal(t, int32(1), calls.Load())

			refuse.Store(true)
			s = runCtx(t, rejectCtx(t, tr), tr, cc.Clone(), p.serverConfig(), nil)
			require.ErrorIs(t, s.clientErr, errRefused)
			require.ErrorIs(t, s.clientErr, ErrHandshake)
			assert.Equal(t, int32(2), calls.Load())
			s.wait(t)

			// Pins are checked first: a mismatch is reported as such and
			// the base's check does not run.
			refuse.Store(false)
			pinned := &Config{Base: base, ServerName: "example.test", RootCAs: p.caPool, PinnedSPKI: [][32]byte{SPKIHash(p.other.Leaf)}}
			s = runCtx(t, rejectCtx(t, tr), tr, pinned, p.serverConfig(), nil)
			require.ErrorIs(t, s.clientErr, ErrPinMismatch)
			assert.Equal(t, int32(2), calls.Load())
			s.wait(t)
			pinned = &Config{Base: base, ServerName: "example.test", RootCAs: p.caPool, PinnedSPKI: [][32]byte{SPKIHash(p.server.Leaf)}}
			s = run(t, tr, pinned, p.serverConfig(), echoUntilEOF)
			require.NoError(t, s.clientErr)
			assert.Equal(t, int32(3), calls.Load())
			_, err = exchange(s.client, writeAndCloseWrite(nil))
			require.NoError(t, err)
		})
	}
}

// TestBaseInsecureWithPin: a Base that skips verification (go-spiffe's
// way, with its own VerifyPeerCertificate) still has the pins checked.
func TestBaseInsecureWithPin(t *testing.T) {
	p := getPKI(t)
	var verified atomic.Int32
	base := &tls.Config{InsecureSkipVerify: true, VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error {
		verified.Add(1)
		return nil
	}}
	sc := &Config{Certificates: []tls.Certificate{p.other}}
	cc := &Config{Base: base, ServerName: "example.test", PinnedSPKI: [][32]byte{SPKIHash(p.other.Leaf)}}
	s := run(t, transports[0], cc, sc, echoUntilEOF)
	require.NoError(t, s.clientErr)
	_, err := exchange(s.client, writeAndCloseWrite(nil))
	require.NoError(t, err)
	assert.Equal(t, int32(1), verified.Load())

	cc = &Config{Base: base, ServerName: "example.test", PinnedSPKI: [][32]byte{SPKIHash(p.server.Leaf)}}
	s = runCtx(t, rejectCtx(t, transports[0]), transports[0], cc, sc, nil)
	require.ErrorIs(t, s.clientErr, ErrPinMismatch)
	s.wait(t)
}

// TestBaseGetConfigForClient: a server's per-client configuration is
// used, and one below TLS 1.2 fails the handshake.
func TestBaseGetConfigForClient(t *testing.T) {
	p := getPKI(t)
	var minVersion atomic.Uint32
	sc := &Config{Base: &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: uint16(minVersion.Load()), NextProtos: []string{"picked"}}, nil
	}}}
	cc := p.clientConfig()
	cc.NextProtos = []string{"picked"}
	s := run(t, transports[0], cc, sc, echoUntilEOF)
	require.NoError(t, s.clientErr)
	assert.Equal(t, "picked", s.client.ConnectionState().NegotiatedProtocol)
	_, err := exchange(s.client, writeAndCloseWrite(nil))
	require.NoError(t, err)

	minVersion.Store(tls.VersionTLS10)
	s = runCtx(t, rejectCtx(t, transports[0]), transports[0], cc.Clone(), sc, nil)
	require.Error(t, s.clientErr)
	serr := s.wait(t)
	require.ErrorContains(t, serr, "tlsflow: GetConfigForClient: MinVersion TLS 1.0 is not accepted")
}

// TestBaseGetClientCertificate: the base's GetClientCertificate answers
// a server that requires a client certificate.
func TestBaseGetClientCertificate(t *testing.T) {
	p := getPKI(t)
	var asked atomic.Int32
	cc := p.clientConfig()
	cc.Base = &tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked.Add(1)
		return &p.client, nil
	}}
	sc := p.serverConfig()
	sc.ClientAuth, sc.ClientCAs = tls.RequireAndVerifyClientCert, p.caPool
	peer := make(chan string, 1)
	s := run(t, transports[0], cc, sc, func(c *Conn) error {
		peer <- c.ConnectionState().PeerCertificates[0].Subject.CommonName
		return echoUntilEOF(c)
	})
	require.NoError(t, s.clientErr)
	_, err := exchange(s.client, writeAndCloseWrite(nil))
	require.NoError(t, err)
	assert.Equal(t, "client.test", <-peer)
	assert.Equal(t, int32(1), asked.Load())
}

// TestOpenSSLServerGetClientCertificate: openssl s_server requires and
// verifies a client certificate; ours comes from GetClientCertificate,
// set through Base and through Config (a Reloader).
func TestOpenSSLServerGetClientCertificate(t *testing.T) {
	p := getPKI(t)
	files := p.writeFiles(t)
	r, err := LoadKeyPair(files.clientCert, files.clientKey)
	require.NoError(t, err)
	for _, v := range opensslVersions {
		for _, how := range []string{"base", "config"} {
			t.Run(v.name+"/"+how, func(t *testing.T) {
				ctx := testCtx(t)
				port := freePort(t)
				startPeer(t, ctx, "s_server", "-accept", "127.0.0.1:"+strconv.Itoa(port),
					"-cert", files.serverCert, "-key", files.serverKey, v.flag, "-rev", "-quiet",
					"-Verify", "1", "-CAfile", files.ca, "-verify_return_error")
				var asked atomic.Int32
				get := func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
					asked.Add(1)
					return r.GetClientCertificate(cri)
				}
				cfg := p.clientConfig()
				if how == "base" {
					cfg.Base = &tls.Config{GetClientCertificate: get}
				} else {
					cfg.GetClientCertificate = get
				}
				c := dialTLS(t, ctx, "127.0.0.1:"+strconv.Itoa(port), cfg)
				_, err := c.Write([]byte("client cert\n"))
				require.NoError(t, err)
				buf := make([]byte, len("trec tneilc\n"))
				_, err = readFull(c, buf)
				require.NoError(t, err, "openssl accepted our certificate")
				assert.Equal(t, "trec tneilc\n", string(buf))
				assert.Equal(t, int32(1), asked.Load())
			})
		}
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestReloaderClientCertificate: replacing the client's files makes the
// next handshake present the new certificate, as the server records.
func TestReloaderClientCertificate(t *testing.T) {
	p := getPKI(t)
	now := time.Now()
	second, _, _ := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "renewed.test"},
		DNSNames:    []string{"renewed.test"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, p.ca, p.caKey)

	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	stampTime := now.Add(-time.Hour).Truncate(time.Second)
	write := func(c tls.Certificate) {
		stampTime = stampTime.Add(time.Second)
		writePEM(t, certFile, certBlock(c))
		writePEM(t, keyFile, keyBlock(t, c))
		require.NoError(t, os.Chtimes(certFile, stampTime, stampTime))
		require.NoError(t, os.Chtimes(keyFile, stampTime, stampTime))
	}
	write(p.client)
	r, err := LoadKeyPair(certFile, keyFile)
	require.NoError(t, err)
	clock := now
	r.now = func() time.Time { return clock }
	r.nextCheck.Store(clock.Add(reloadInterval).UnixNano())

	cc := p.clientConfig()
	cc.GetClientCertificate = r.GetClientCertificate
	presented := func() string {
		t.Helper()
		// A new server each time: its session tickets are not
		// accepted, so every handshake is a full one.
		sc := p.serverConfig()
		sc.ClientAuth, sc.ClientCAs = tls.RequireAndVerifyClientCert, p.caPool
		peer := make(chan string, 1)
		s := run(t, transports[0], cc, sc, func(c *Conn) error {
			peer <- c.ConnectionState().PeerCertificates[0].Subject.CommonName
			return echoUntilEOF(c)
		})
		require.NoError(t, s.clientErr)
		_, err := exchange(s.client, writeAndCloseWrite(nil))
		require.NoError(t, err)
		return <-peer
	}
	assert.Equal(t, "client.test", presented())

	write(second)
	assert.Equal(t, "client.test", presented(), "the files are not looked at within the interval")
	clock = clock.Add(reloadInterval)
	assert.Equal(t, "renewed.test", presented(), "the next handshake after the interval presents the new pair")
	assert.NoError(t, r.Err())
}
