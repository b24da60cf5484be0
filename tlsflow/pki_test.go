package tlsflow

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testPKI is an in-memory PKI: a CA, an unrelated CA, and certificates
// issued by the CA (ECDSA P-256).
type testPKI struct {
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	caPool  *x509.CertPool
	caPEM   []byte
	otherCA *x509.CertPool // trusts nothing we issue

	server  tls.Certificate // example.test, 127.0.0.1, ::1
	expired tls.Certificate // example.test, expired yesterday
	client  tls.Certificate // client auth
	other   tls.Certificate // example.test, issued by the unrelated CA
}

var pkiOnce = sync.OnceValue(func() *testPKI { return newTestPKI() })

func getPKI(t testing.TB) *testPKI {
	t.Helper()
	return pkiOnce()
}

func mustKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

var serial int64

func issue(tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (tls.Certificate, *x509.Certificate, *ecdsa.PrivateKey) {
	key := mustKey()
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert, key
}

func newTestPKI() *testPKI {
	now := time.Now()
	caTmpl := func(name string) *x509.Certificate {
		return &x509.Certificate{
			Subject:               pkix.Name{CommonName: name},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
	}
	leaf := func(name string, notBefore, notAfter time.Time, usage x509.ExtKeyUsage) *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: name},
			DNSNames:    []string{name},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			NotBefore:   notBefore,
			NotAfter:    notAfter,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
	}
	p := &testPKI{}
	_, p.ca, p.caKey = issue(caTmpl("tlsflow test CA"), nil, nil)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(p.ca)
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw})
	_, other, otherKey := issue(caTmpl("unrelated CA"), nil, nil)
	p.otherCA = x509.NewCertPool()
	p.otherCA.AddCert(other)

	p.server, _, _ = issue(leaf("example.test", now.Add(-time.Hour), now.Add(24*time.Hour), x509.ExtKeyUsageServerAuth), p.ca, p.caKey)
	p.expired, _, _ = issue(leaf("example.test", now.Add(-48*time.Hour), now.Add(-24*time.Hour), x509.ExtKeyUsageServerAuth), p.ca, p.caKey)
	p.client, _, _ = issue(leaf("client.test", now.Add(-time.Hour), now.Add(24*time.Hour), x509.ExtKeyUsageClientAuth), p.ca, p.caKey)
	p.other, _, _ = issue(leaf("example.test", now.Add(-time.Hour), now.Add(24*time.Hour), x509.ExtKeyUsageServerAuth), other, otherKey)
	return p
}

// pemFiles holds the paths of the PKI written out for external peers.
type pemFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func writePEM(t testing.TB, path string, blocks ...*pem.Block) string {
	t.Helper()
	var data []byte
	for _, b := range blocks {
		data = append(data, pem.EncodeToMemory(b)...)
	}
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

func keyBlock(t testing.TB, c tls.Certificate) *pem.Block {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	require.NoError(t, err)
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}

func certBlock(c tls.Certificate) *pem.Block {
	return &pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}
}

// writeFiles writes the CA, server and client pairs as PEM to a temporary
// directory.
func (p *testPKI) writeFiles(t testing.TB) pemFiles {
	t.Helper()
	dir := t.TempDir()
	return pemFiles{
		ca:         writePEM(t, filepath.Join(dir, "ca.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw}),
		serverCert: writePEM(t, filepath.Join(dir, "server.pem"), certBlock(p.server)),
		serverKey:  writePEM(t, filepath.Join(dir, "server.key"), keyBlock(t, p.server)),
		clientCert: writePEM(t, filepath.Join(dir, "client.pem"), certBlock(p.client)),
		clientKey:  writePEM(t, filepath.Join(dir, "client.key"), keyBlock(t, p.client)),
	}
}

var (
	x509HostnameError      x509.HostnameError
	x509UnknownAuthority   x509.UnknownAuthorityError
	x509CertificateInvalid x509.CertificateInvalidError
)
