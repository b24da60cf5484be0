package tlsflow

import (
	"bytes"
	"crypto/ecdh"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGenerateECHKey(t *testing.T) {
	key, list, err := GenerateECHKey("public.test", 7)
	require.NoError(t, err)
	assert.True(t, key.SendAsRetry)
	configs, err := ParseECHConfigList(list)
	require.NoError(t, err)
	require.Len(t, configs, 1)
	c := configs[0]
	assert.Equal(t, uint8(7), c.ConfigID)
	assert.Equal(t, KEMX25519, c.KEM)
	assert.Equal(t, []ECHCipherSuite{{KDF: KDFHKDFSHA256, AEAD: AEADAES128GCM}}, c.CipherSuites)
	assert.Equal(t, "public.test", c.PublicName)
	assert.Empty(t, c.Extensions)

	// The private key is the public key's, in HPKE's serialisation.
	priv, err := ecdh.X25519().NewPrivateKey(key.PrivateKey)
	require.NoError(t, err)
	assert.Equal(t, priv.PublicKey().Bytes(), c.PublicKey)
	// The key's Config is the list's only element, byte for byte.
	assert.Equal(t, list[2:], key.Config)
	assert.Equal(t, len(list)-2, int(binary.BigEndian.Uint16(list)))
	again, err := c.MarshalBinary()
	require.NoError(t, err)
	assert.Equal(t, key.Config, again)

	// Two keys make one list, in order.
	key2, _, err := GenerateECHKey("public.test", 8)
	require.NoError(t, err)
	both, err := ECHConfigList(key, key2)
	require.NoError(t, err)
	configs, err = ParseECHConfigList(both)
	require.NoError(t, err)
	require.Len(t, configs, 2)
	assert.Equal(t, uint8(8), configs[1].ConfigID)

	for _, name := range []string{"", "127.0.0.1", "::1", "a..b", "under_score.test", "example.123", "x.0x1f", strings.Repeat("a", 256)} {
		_, _, err := GenerateECHKey(name, 1)
		var ce *ECHConfigError
		assert.ErrorAs(t, err, &ce, "%q", name)
	}
	_, err = ECHConfigList()
	assert.Error(t, err)
	_, err = ECHConfigList(tls.EncryptedClientHelloKey{Config: []byte{0xfe, 0x0d, 0, 1}})
	assert.Error(t, err)
}

// echConfigBytes is a hand-encoded ECHConfig (draft-ietf-tls-esni-22
// section 4), independent of MarshalBinary.
func echConfigBytes(version uint16, name string, exts ...byte) []byte {
	var c []byte
	c = append(c, 3)          // config_id
	c = append(c, 0x00, 0x20) // kem_id X25519
	c = append(c, 0x00, 0x04, 1, 2, 3, 4)
	c = append(c, 0x00, 0x08, 0, 1, 0, 1, 0, 1, 0, 3) // two suites
	c = append(c, 0)                                  // maximum_name_length
	c = append(c, byte(len(name)))
	c = append(c, name...)
	c = binary.BigEndian.AppendUint16(c, uint16(len(exts)))
	c = append(c, exts...)
	out := binary.BigEndian.AppendUint16(nil, version)
	out = binary.BigEndian.AppendUint16(out, uint16(len(c)))
	return append(out, c...)
}

func listOf(configs ...[]byte) []byte {
	var body []byte
	for _, c := range configs {
		body = append(body, c...)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

func TestParseECHConfigList(t *testing.T) {
	good := echConfigBytes(ECHVersion, "pub.test", 0x00, 0x07, 0x00, 0x01, 0xaa)
	want := ECHConfig{
		ConfigID: 3, KEM: KEMX25519, PublicKey: []byte{1, 2, 3, 4},
		CipherSuites: []ECHCipherSuite{{1, 1}, {1, 3}}, PublicName: "pub.test",
		Extensions: []ECHExtension{{Type: 7, Data: []byte{0xaa}}},
	}
	// A config whose length covers one byte more than its contents.
	trailing := append(echConfigBytes(ECHVersion, "pub.test"), 9)
	binary.BigEndian.PutUint16(trailing[2:], uint16(len(trailing)-4))
	for _, tc := range []struct {
		name    string
		in      []byte
		want    []ECHConfig
		wantErr string
	}{
		{"one", listOf(good), []ECHConfig{want}, ""},
		{"unknown version skipped", listOf(echConfigBytes(0xfe0c, "old.test"), good), []ECHConfig{want}, ""},
		{"bad public name skipped", listOf(echConfigBytes(ECHVersion, "10.0.0.1"), good), []ECHConfig{want}, ""},
		{"only unknown", listOf(echConfigBytes(0xfe0c, "old.test")), nil, ""},
		{"empty", nil, nil, "list length"},
		{"empty list", []byte{0, 0}, nil, "empty list"},
		{"list length too long", append([]byte{0, 200}, good...), nil, "list length"},
		{"trailing after list", append(listOf(good), 0), nil, "trailing bytes after the list"},
		{"config truncated", listOf(good[:len(good)-1]), nil, "truncated"},
		{"trailing in config", listOf(trailing), nil, "trailing bytes in the config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseECHConfigList(tc.in)
			if tc.wantErr != "" {
				var ce *ECHConfigError
				require.ErrorAs(t, err, &ce)
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Contains(t, err.Error(), "tlsflow: ")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			for i := range got {
				b, err := got[i].MarshalBinary()
				require.NoError(t, err)
				assert.Equal(t, good, b, "encoding is the inverse of decoding")
			}
		})
	}
}

func FuzzParseECHConfigList(f *testing.F) {
	_, list, err := GenerateECHKey("public.test", 1)
	require.NoError(f, err)
	f.Add(list)
	f.Add(listOf(echConfigBytes(0xfe0c, "old.test"), echConfigBytes(ECHVersion, "pub.test", 0x80, 0x01, 0x00, 0x00)))
	f.Add([]byte{0, 4, 0xfe, 0x0d, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		configs, err := ParseECHConfigList(b)
		if err != nil {
			return
		}
		for _, c := range configs {
			enc, err := c.MarshalBinary()
			if err != nil {
				t.Fatalf("a parsed config does not encode: %v (%+v)", err, c)
			}
			back, err := ParseECHConfigList(listOf(enc))
			if err != nil || len(back) != 1 {
				t.Fatalf("re-parse: %v, %d configs", err, len(back))
			}
			if !equalECH(c, back[0]) {
				t.Fatalf("round trip changed %+v into %+v", c, back[0])
			}
		}
	})
}

func equalECH(a, b ECHConfig) bool {
	if a.ConfigID != b.ConfigID || a.KEM != b.KEM || !bytes.Equal(a.PublicKey, b.PublicKey) ||
		a.MaxNameLength != b.MaxNameLength || a.PublicName != b.PublicName ||
		len(a.CipherSuites) != len(b.CipherSuites) || len(a.Extensions) != len(b.Extensions) {
		return false
	}
	for i := range a.CipherSuites {
		if a.CipherSuites[i] != b.CipherSuites[i] {
			return false
		}
	}
	for i := range a.Extensions {
		if a.Extensions[i].Type != b.Extensions[i].Type || !bytes.Equal(a.Extensions[i].Data, b.Extensions[i].Data) {
			return false
		}
	}
	return true
}

// echPKI is a server certificate valid for the inner name example.test
// and the public name public.test.
var echCert = sync.OnceValue(func() tls.Certificate {
	p := pkiOnce()
	now := time.Now()
	c, _, _ := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "example.test"},
		DNSNames:    []string{"example.test", "public.test"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.ca, p.caKey)
	return c
})

// wireTap records what a connection writes.
type wireTap struct {
	net.Conn
	mu      sync.Mutex
	written []byte
}

func (w *wireTap) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.written = append(w.written, b...)
	w.mu.Unlock()
	return w.Conn.Write(b)
}

func (w *wireTap) sent() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.written)
}

// tapped wraps the client side of tr in a wireTap.
func tapped(tr transport) (transport, *wireTap) {
	tap := &wireTap{}
	return transport{name: tr.name, synchronous: tr.synchronous, pair: func(t *testing.T) (net.Conn, net.Conn) {
		c, s := tr.pair(t)
		tap.Conn = c
		return tap, s
	}}, tap
}

// TestECH: a client with the server's config list encrypts its
// ClientHello: the server sees the inner name, the wire only the public
// name, and both sides report ECHAccepted.
func TestECH(t *testing.T) {
	p := getPKI(t)
	key, list, err := GenerateECHKey("public.test", 1)
	require.NoError(t, err)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			tr, tap := tapped(tr)
			sc := &Config{Certificates: []tls.Certificate{echCert()}, ECHKeys: []tls.EncryptedClientHelloKey{key}, NextProtos: []string{"h2"}}
			cc := &Config{ServerName: "example.test", RootCAs: p.caPool, ECHConfigList: list, NextProtos: []string{"h2"}}
			type seen struct {
				accepted bool
				name     string
			}
			got := make(chan seen, 1)
			s := run(t, tr, cc, sc, func(c *Conn) error {
				cs := c.ConnectionState()
				got <- seen{cs.ECHAccepted, cs.ServerName}
				return echoUntilEOF(c)
			})
			require.NoError(t, s.clientErr)
			cs := s.client.ConnectionState()
			assert.True(t, cs.ECHAccepted)
			assert.Equal(t, uint16(tls.VersionTLS13), cs.Version)
			assert.Equal(t, "h2", cs.NegotiatedProtocol)
			out, err := exchange(s.client, writeAndCloseWrite([]byte("secret")))
			require.NoError(t, err)
			assert.Equal(t, "SECRET", string(out))
			assert.Equal(t, seen{true, "example.test"}, <-got)
			wire := tap.sent()
			assert.True(t, bytes.Contains(wire, []byte("public.test")), "the outer ClientHello names the public name")
			assert.False(t, bytes.Contains(wire, []byte("example.test")), "the inner name never crosses the wire in clear")
		})
	}

	// A server whose Base prefers a group the client sent no key share
	// for asks for another ClientHello (HelloRetryRequest): the second
	// one is encrypted too.
	t.Run("HelloRetryRequest", func(t *testing.T) {
		sc := &Config{Base: &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}},
			Certificates: []tls.Certificate{echCert()}, ECHKeys: []tls.EncryptedClientHelloKey{key}}
		cc := &Config{ServerName: "example.test", RootCAs: p.caPool, ECHConfigList: list}
		s := run(t, transports[0], cc, sc, echoUntilEOF)
		require.NoError(t, s.clientErr)
		cs := s.client.ConnectionState()
		assert.True(t, cs.ECHAccepted)
		assert.Equal(t, tls.CurveP256, cs.CurveID)
		_, err := exchange(s.client, writeAndCloseWrite(nil))
		require.NoError(t, err)
	})

	// Without a config list the same server serves clients as before,
	// TLS 1.2 ones included.
	sc := &Config{Certificates: []tls.Certificate{echCert()}, ECHKeys: []tls.EncryptedClientHelloKey{key}}
	cc := p.clientConfig()
	cc.Base = &tls.Config{MaxVersion: tls.VersionTLS12}
	s := run(t, transports[0], cc, sc, echoUntilEOF)
	require.NoError(t, s.clientErr)
	assert.False(t, s.client.ConnectionState().ECHAccepted)
	assert.Equal(t, uint16(tls.VersionTLS12), s.client.ConnectionState().Version)
	_, err = exchange(s.client, writeAndCloseWrite(nil))
	require.NoError(t, err)
}

// TestECHRejected: a config list the server has no key for is rejected
// with ErrECHRejected, carrying the server's configs to retry with; a
// server without ECH gives no retry configs; a retry with the offered
// configs is accepted.
func TestECHRejected(t *testing.T) {
	p := getPKI(t)
	key, list, err := GenerateECHKey("public.test", 1)
	require.NoError(t, err)
	_, stale, err := GenerateECHKey("public.test", 1) // same id, another key
	require.NoError(t, err)
	tr := transports[0]

	sc := &Config{Certificates: []tls.Certificate{echCert()}, ECHKeys: []tls.EncryptedClientHelloKey{key}}
	cc := &Config{ServerName: "example.test", RootCAs: p.caPool, ECHConfigList: stale}
	s := run(t, tr, cc, sc, nil)
	require.ErrorIs(t, s.clientErr, ErrECHRejected)
	require.ErrorIs(t, s.clientErr, ErrHandshake)
	var he *HandshakeError
	require.ErrorAs(t, s.clientErr, &he)
	assert.Equal(t, ErrECHRejected, he.Kind)
	var rej *tls.ECHRejectionError
	require.ErrorAs(t, s.clientErr, &rej)
	retry, ok := ECHRetryConfigs(s.clientErr)
	require.True(t, ok)
	assert.Equal(t, list, retry, "the server offers its own config")
	s.wait(t)

	// The retry the error invites succeeds.
	cc = cc.Clone()
	cc.ECHConfigList = retry
	s = run(t, tr, cc, sc, echoUntilEOF)
	require.NoError(t, s.clientErr)
	assert.True(t, s.client.ConnectionState().ECHAccepted)
	_, err = exchange(s.client, writeAndCloseWrite(nil))
	require.NoError(t, err)

	// A server without ECH: rejected, nothing to retry with.
	plain := &Config{Certificates: []tls.Certificate{echCert()}}
	s = run(t, tr, &Config{ServerName: "example.test", RootCAs: p.caPool, ECHConfigList: list}, plain, nil)
	require.ErrorIs(t, s.clientErr, ErrECHRejected)
	retry, ok = ECHRetryConfigs(s.clientErr)
	assert.True(t, ok)
	assert.Empty(t, retry)
	s.wait(t)

	// A rejecting server whose certificate is not valid for the public
	// name is not trusted with retry configs: the failure is the name's.
	s = run(t, tr, &Config{ServerName: "example.test", RootCAs: p.caPool, ECHConfigList: stale}, &Config{
		Certificates: []tls.Certificate{p.server}, ECHKeys: []tls.EncryptedClientHelloKey{key},
	}, nil)
	require.ErrorIs(t, s.clientErr, ErrWrongName)
	_, ok = ECHRetryConfigs(s.clientErr)
	assert.False(t, ok)
	s.wait(t)

	_, ok = ECHRetryConfigs(ErrTruncated)
	assert.False(t, ok)
}

// TestECHConfig: the checks of ECH settings.
func TestECHConfig(t *testing.T) {
	p := getPKI(t)
	key, list, err := GenerateECHKey("public.test", 1)
	require.NoError(t, err)

	tc, err := (&Config{ECHConfigList: list}).TLSConfig(true)
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS13), tc.MinVersion, "ECH raises the minimum to TLS 1.3")
	assert.Equal(t, list, tc.EncryptedClientHelloConfigList)
	tc, err = (&Config{Base: &tls.Config{EncryptedClientHelloConfigList: list}}).TLSConfig(true)
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS13), tc.MinVersion, "also with Base's list")

	_, err = (&Config{ECHConfigList: list, Base: &tls.Config{MaxVersion: tls.VersionTLS12}}).TLSConfig(true)
	assert.ErrorContains(t, err, "below the minimum")
	_, err = (&Config{ECHConfigList: []byte{0, 3, 1, 2}}).TLSConfig(true)
	var ce *ECHConfigError
	assert.ErrorAs(t, err, &ce)
	unsupported := echConfigBytes(ECHVersion, "pub.test")
	unsupported[6] = 0x99 // kem_id 0x0099
	_, err = (&Config{ECHConfigList: listOf(unsupported)}).TLSConfig(true)
	assert.ErrorContains(t, err, "no config this client supports")
	mandatory := echConfigBytes(ECHVersion, "pub.test", 0x80, 0x01, 0x00, 0x00)
	_, err = (&Config{ECHConfigList: listOf(mandatory)}).TLSConfig(true)
	assert.ErrorContains(t, err, "no config this client supports")

	stc, err := (&Config{Certificates: []tls.Certificate{p.server}, ECHKeys: []tls.EncryptedClientHelloKey{key}}).TLSConfig(false)
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS12), stc.MinVersion, "a server keeps serving clients without ECH")
	assert.Len(t, stc.EncryptedClientHelloKeys, 1)
	bad := key
	bad.Config = key.Config[:len(key.Config)-1]
	_, err = (&Config{Certificates: []tls.Certificate{p.server}, ECHKeys: []tls.EncryptedClientHelloKey{bad}}).TLSConfig(false)
	assert.ErrorAs(t, err, &ce)

	c := &Config{ECHConfigList: list, ECHKeys: []tls.EncryptedClientHelloKey{key}}
	n := c.Clone()
	n.ECHConfigList[0] ^= 0xff
	assert.Equal(t, list[0], c.ECHConfigList[0], "Clone copies the list")
	assert.Len(t, n.ECHKeys, 1)
}
