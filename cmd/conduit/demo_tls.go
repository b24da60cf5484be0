package main

import (
	"crypto/tls"
	"path/filepath"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/internal/devpki"
	"github.com/conduit-go/conduit/tlsflow"
)

// demoServerName is the name the demo's TLS certificate is issued for.
const demoServerName = "demo.test"

// demoTLS makes a throw-away CA and a server certificate for demo.test
// in memory, configures cfg to serve it and to trust only that CA, and
// returns the TLS rows (the Unix socket in dir).
func demoTLS(cfg *conduit.Config, dir string) ([]demoRow, error) {
	ca, err := devpki.NewAuthority("conduit demo CA")
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(demoServerName, "127.0.0.1", "::1")
	if err != nil {
		return nil, err
	}
	cfg.TLS.Server = &tlsflow.Config{Certificates: []tls.Certificate{cert}}
	cfg.TLS.Client = &tlsflow.Config{RootCAs: ca.Pool}
	return []demoRow{
		{name: "tls", listenURI: "tls://127.0.0.1:0?sni=" + demoServerName, note: "TLS over kernel TCP, CA made in memory"},
		{name: "tls+unix", listenURI: "tls+unix://" + filepath.Join(dir, "tls.sock") + "?sni=" + demoServerName, note: "TLS over a Unix socket"},
		{name: "tls+vchan", listenURI: "tls+vchan://0/secure?sni=" + demoServerName, note: "TLS over vchan"},
	}, nil
}
