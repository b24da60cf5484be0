package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/devpki"
)

// writeTestPKI writes a CA and a server certificate for cli.test and
// 127.0.0.1 as PEM files in dir and returns their paths.
func writeTestPKI(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	auth, err := devpki.NewAuthority("cli test CA")
	require.NoError(t, err)
	c, err := auth.Issue("cli.test", "127.0.0.1")
	require.NoError(t, err)
	certPEM, keyPEM, err := devpki.PEM(c)
	require.NoError(t, err)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	return write("ca.pem", auth.CertPEM()), write("cert.pem", certPEM), write("key.pem", keyPEM)
}
