package conduit

import (
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/devpki"
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
	ca, err := devpki.NewAuthority("conduit test CA")
	require.NoError(t, err)
	cert, err := ca.Issue(testServerName, "127.0.0.1", "::1")
	require.NoError(t, err)
	return TLSConfig{
		Client: &tlsflow.Config{RootCAs: ca.Pool},
		Server: &tlsflow.Config{Certificates: []tls.Certificate{cert}},
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
