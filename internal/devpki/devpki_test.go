package devpki

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	ca, err := NewAuthority("test CA")
	require.NoError(t, err)
	c, err := ca.Issue("svc.test", "127.0.0.1")
	require.NoError(t, err)
	for _, name := range []string{"svc.test", "127.0.0.1"} {
		_, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool})
		require.NoError(t, err, name)
	}
	_, err = c.Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: ca.Pool})
	require.Error(t, err)
	certPEM, keyPEM, err := PEM(c)
	require.NoError(t, err)
	_, err = tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca.CertPEM()))
	_, err = ca.Issue()
	require.Error(t, err)
}
