// Command serve serves a line-oriented "greeter" on three URIs at once
// (TCP over IPv4, a Unix socket and TLS with a certificate made in
// memory) with one handler, then dials each and shuts down gracefully.
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/tlsflow"
)

// greet answers each line with a greeting until the client half-closes.
var greet = conduit.HandlerFunc(func(ctx context.Context, f conduit.Flow) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fmt.Fprintf(f, "hello, %s\n", strings.TrimSpace(sc.Text()))
	}
	f.CloseWrite()
})

func run(ctx context.Context, dir string, w io.Writer) error {
	tlsCfg, err := selfSigned("greeter.test")
	if err != nil {
		return err
	}
	c := conduit.New(&conduit.Config{TLS: tlsCfg})
	defer c.Close()

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	uris := []string{"tcp://127.0.0.1:0", "unix://" + filepath.Join(dir, "greeter.sock"), "tls://127.0.0.1:0?sni=greeter.test"}
	served := make(chan error, len(uris))
	var bound []string
	for _, uri := range uris {
		// Listen first so the bound URI (with the real port) is known,
		// then serve until ctx ends.
		ln, err := c.Listen(ctx, uri, conduit.WithMaxConns(100))
		if err != nil {
			return err
		}
		bound = append(bound, ln.URI())
		go func() { served <- conduit.ServeListener(ctx, ln, greet, 5*time.Second) }()
	}
	for _, uri := range bound {
		f, err := c.Dial(ctx, uri)
		if err != nil {
			return err
		}
		io.WriteString(f, "world\n")
		f.CloseWrite()
		reply, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
		scheme, _, _ := strings.Cut(uri, "://")
		fmt.Fprintf(w, "%-5s %s", scheme, reply)
	}
	stop() // graceful shutdown: stop accepting, wait for handlers
	for range uris {
		if err := <-served; err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "all servers stopped")
	return nil
}

// selfSigned makes a certificate for name and 127.0.0.1 signed by itself
// and the TLS settings that serve and trust it.
func selfSigned(name string) (conduit.TLSConfig, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return conduit.TLSConfig{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return conduit.TLSConfig{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return conduit.TLSConfig{}, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return conduit.TLSConfig{
		Server: &tlsflow.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		Client: &tlsflow.Config{RootCAs: pool},
	}, nil
}

func main() {
	dir, err := os.MkdirTemp("", "conduit-serve-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := run(context.Background(), dir, os.Stdout); err != nil {
		log.Fatal(err)
	}
}
