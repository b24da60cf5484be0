package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"path/filepath"
	"time"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/tlsflow"
)

// demoServerName is the name the demo's TLS certificate is issued for.
const demoServerName = "demo.test"

// demoTLS makes a throw-away CA and a server certificate for
// demo.test in memory, configures cfg to serve it and to trust only that
// CA, and returns the TLS rows (the Unix socket in dir).
func demoTLS(cfg *conduit.Config, dir string) ([]demoRow, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "conduit demo CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: demoServerName},
		DNSNames:     []string{demoServerName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cfg.TLS.Server = &tlsflow.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	cfg.TLS.Client = &tlsflow.Config{RootCAs: pool}
	return []demoRow{
		{name: "tls", listenURI: "tls://127.0.0.1:0?sni=" + demoServerName, note: "TLS over kernel TCP, CA made in memory"},
		{name: "tls+unix", listenURI: "tls+unix://" + filepath.Join(dir, "tls.sock") + "?sni=" + demoServerName, note: "TLS over a Unix socket"},
		{name: "tls+vchan", listenURI: "tls+vchan://0/secure?sni=" + demoServerName, note: "TLS over vchan"},
	}, nil
}
