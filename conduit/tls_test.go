package conduit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tlsflow"
	"github.com/conduit-go/conduit/vchan"
)

// testServerName is the name of the test certificate (which also holds
// 127.0.0.1 and ::1).
const testServerName = "conduit.test"

// testPKI makes a CA and a server certificate in memory and returns the
// TLS configuration of a Conduit that serves it and trusts only that CA.
func testPKI(t testing.TB) TLSConfig {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "conduit test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: testServerName},
		DNSNames:    []string{testServerName},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:   now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return TLSConfig{
		Client: &tlsflow.Config{RootCAs: pool},
		Server: &tlsflow.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
	}
}

// newTestConduit returns a Conduit that serves and trusts the test PKI.
func newTestConduit(t testing.TB) *Conduit {
	c := New(&Config{TLS: testPKI(t), Vchan: &vchan.Config{Dir: t.TempDir()}})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTLSErrorsReachTheCaller(t *testing.T) {
	srv := newTestConduit(t)
	target := serve(t, srv, "tls://127.0.0.1:0?sni="+testServerName, echo)

	// A Conduit with the system roots does not trust the test CA.
	c := New(nil)
	defer c.Close()
	_, err := c.Dial(testCtx(t), target)
	require.ErrorIs(t, err, tlsflow.ErrUntrusted)
	require.Contains(t, err.Error(), target)

	// The right CA but another name.
	other := New(&Config{TLS: TLSConfig{Client: srv.cfg.TLS.Client}})
	defer other.Close()
	_, err = other.Dial(testCtx(t), target+"x") // sni=conduit.testx
	require.ErrorIs(t, err, tlsflow.ErrWrongName)

	// Per-name settings: ByServerName supplies the CA for this name only.
	byName := New(&Config{TLS: TLSConfig{ByServerName: map[string]*tlsflow.Config{testServerName: srv.cfg.TLS.Client}}})
	defer byName.Close()
	f, err := byName.Dial(testCtx(t), target)
	require.NoError(t, err)
	defer f.Close()
	roundTrip(t, f, 1000)
	st := f.(*tlsflow.Conn).ConnectionState()
	require.Equal(t, testServerName, st.ServerName)
}
