package conduit

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/devpki"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
	"github.com/conduit-go/conduit/tlsflow"
)

// echPublicName is the public name of the test ECH configs; the test
// certificate is valid for it too, as a rejecting server's must be.
const echPublicName = "public.conduit.test"

// echServer is a TLS listener of our own (crypto/tls through tlsflow:
// Debian bookworm's openssl 3.0 and gnutls 3.7 have no ECH) serving ECH
// with key, or without ECH when key is nil, and the ALPN protocols h2
// and http/1.1. It returns the client settings that trust it and the
// listener's TCP endpoint.
func echServer(t *testing.T, key *tls.EncryptedClientHelloKey) (*tlsflow.Config, endpoint.TCP) {
	t.Helper()
	ca, err := devpki.NewAuthority("conduit ECH test CA")
	require.NoError(t, err)
	cert, err := ca.Issue(testServerName, echPublicName, "127.0.0.1")
	require.NoError(t, err)
	srv := &tlsflow.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	if key != nil {
		srv.ECHKeys = []tls.EncryptedClientHelloKey{*key}
	}
	c := New(&Config{TLS: TLSConfig{Server: srv}})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := c.Listen(ctx, "tls://127.0.0.1:0?sni="+testServerName)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		errc <- ServeListener(ctx, ln, HandlerFunc(func(_ context.Context, f Flow) {
			// Answer with what the server saw: ECH accepted and the
			// inner server name.
			st := f.(*tlsflow.Conn).ConnectionState()
			msg := "ech=false "
			if st.ECHAccepted {
				msg = "ech=true "
			}
			f.Write([]byte(msg + st.ServerName + "\n"))
			f.CloseWrite()
		}), 5*time.Second)
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-errc)
	})
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	require.NoError(t, err)
	return &tlsflow.Config{RootCAs: ca.Pool}, endpoint.TCP{Addr: ap}
}

// handshakes records the TLS handshakes of a dial.
type handshakes struct {
	mu   sync.Mutex
	errs []error
}

func (h *handshakes) ctx(ctx context.Context) context.Context {
	return WithTrace(ctx, &Trace{TLSHandshakeDone: func(_ endpoint.Endpoint, _ tls.ConnectionState, err error) {
		h.mu.Lock()
		h.errs = append(h.errs, err)
		h.mu.Unlock()
	}})
}

func (h *handshakes) all() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.errs...)
}

// readLine reads what the echServer handler says.
func readLine(t *testing.T, f net.Conn) string {
	t.Helper()
	require.NoError(t, f.SetReadDeadline(time.Now().Add(10*time.Second)))
	var b []byte
	buf := make([]byte, 64)
	for {
		n, err := f.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil || len(b) > 0 && b[len(b)-1] == '\n' {
			return string(b)
		}
	}
}

// TestDialEndpointsSVCECH: a TLS endpoint with what an HTTPS record said
// (ech, alpn) is dialed with ECH and offers the record's protocols.
func TestDialEndpointsSVCECH(t *testing.T) {
	key, list, err := tlsflow.GenerateECHKey(echPublicName, 1)
	require.NoError(t, err)
	client, inner := echServer(t, &key)
	svc := &endpoint.SVCParams{Priority: 1, Target: ".", ALPN: []string{"h2", "http/1.1"}, ECH: list}
	ep := endpoint.TLS{ServerName: testServerName, Inner: inner, SVC: svc}

	c := New(&Config{TLS: TLSConfig{Client: client}})
	defer c.Close()
	f, err := c.DialEndpoints(testCtx(t), []endpoint.Endpoint{ep})
	require.NoError(t, err)
	defer f.Close()
	st := f.(*tlsflow.Conn).ConnectionState()
	assert.True(t, st.ECHAccepted)
	assert.Equal(t, "h2", st.NegotiatedProtocol, "the record's ALPN is offered")
	assert.Equal(t, "ech=true "+testServerName+"\n", readLine(t, f))

	// The user's NextProtos win over the record's, and so do Base's.
	for name, cfg := range map[string]*tlsflow.Config{
		"NextProtos":      {RootCAs: client.RootCAs, NextProtos: []string{"http/1.1"}},
		"Base.NextProtos": {RootCAs: client.RootCAs, Base: &tls.Config{NextProtos: []string{"http/1.1"}}},
	} {
		t.Run(name, func(t *testing.T) {
			c := New(&Config{TLS: TLSConfig{Client: cfg}})
			defer c.Close()
			f, err := c.DialEndpoints(testCtx(t), []endpoint.Endpoint{ep})
			require.NoError(t, err)
			defer f.Close()
			st := f.(*tlsflow.Conn).ConnectionState()
			assert.Equal(t, "http/1.1", st.NegotiatedProtocol)
			assert.True(t, st.ECHAccepted, "the record's ECH is still used")
			assert.Equal(t, "ech=true "+testServerName+"\n", readLine(t, f))
		})
	}

	// Without SVC params: no ECH, no ALPN.
	f, err = c.DialEndpoints(testCtx(t), []endpoint.Endpoint{endpoint.TLS{ServerName: testServerName, Inner: inner}})
	require.NoError(t, err)
	defer f.Close()
	st = f.(*tlsflow.Conn).ConnectionState()
	assert.False(t, st.ECHAccepted)
	assert.Empty(t, st.NegotiatedProtocol)
	assert.Equal(t, "ech=false "+testServerName+"\n", readLine(t, f))
}

// TestDialECHUserConfigWins: the user's own ECH config list is used
// rather than the record's.
func TestDialECHUserConfigWins(t *testing.T) {
	key, list, err := tlsflow.GenerateECHKey(echPublicName, 1)
	require.NoError(t, err)
	client, inner := echServer(t, &key)
	garbage := &endpoint.SVCParams{ECH: []byte{0, 3, 1, 2}} // would fail the dial if used
	ep := endpoint.TLS{ServerName: testServerName, Inner: inner, SVC: garbage}

	for name, cfg := range map[string]*tlsflow.Config{
		"ECHConfigList":                       {RootCAs: client.RootCAs, ECHConfigList: list},
		"Base.EncryptedClientHelloConfigList": {RootCAs: client.RootCAs, Base: &tls.Config{EncryptedClientHelloConfigList: list}},
	} {
		t.Run(name, func(t *testing.T) {
			c := New(&Config{TLS: TLSConfig{Client: cfg}})
			defer c.Close()
			f, err := c.DialEndpoints(testCtx(t), []endpoint.Endpoint{ep})
			require.NoError(t, err)
			defer f.Close()
			assert.True(t, f.(*tlsflow.Conn).ConnectionState().ECHAccepted)
			assert.Equal(t, "ech=true "+testServerName+"\n", readLine(t, f))
		})
	}

	// The malformed list, when it is the one used, fails the dial: ECH
	// is never dropped silently.
	c := New(&Config{TLS: TLSConfig{Client: client}})
	defer c.Close()
	_, err = c.DialEndpoints(testCtx(t), []endpoint.Endpoint{ep})
	var ce *tlsflow.ECHConfigError
	require.ErrorAs(t, err, &ce)
}

// TestDialECHRetry: a record with a stale ECH config (the server's key
// changed) is rejected with retry configs; the transport retries once
// with them, on a new connection, and is accepted. A server without ECH
// offers none: the dial fails with ErrECHRejected after one handshake.
func TestDialECHRetry(t *testing.T) {
	key, _, err := tlsflow.GenerateECHKey(echPublicName, 1)
	require.NoError(t, err)
	_, stale, err := tlsflow.GenerateECHKey(echPublicName, 1)
	require.NoError(t, err)
	client, inner := echServer(t, &key)
	ep := endpoint.TLS{ServerName: testServerName, Inner: inner, SVC: &endpoint.SVCParams{ECH: stale}}

	c := New(&Config{TLS: TLSConfig{Client: client}})
	defer c.Close()
	var hs handshakes
	f, err := c.DialEndpoints(hs.ctx(testCtx(t)), []endpoint.Endpoint{ep})
	require.NoError(t, err)
	defer f.Close()
	assert.True(t, f.(*tlsflow.Conn).ConnectionState().ECHAccepted)
	assert.Equal(t, "ech=true "+testServerName+"\n", readLine(t, f))
	errs := hs.all()
	require.Len(t, errs, 2, "one rejected handshake, one retry")
	assert.ErrorIs(t, errs[0], tlsflow.ErrECHRejected)
	assert.NoError(t, errs[1])

	// No ECH at the server: no retry configs, no retry, and no fallback
	// to a ClientHello that names the server.
	plainClient, plainInner := echServer(t, nil)
	c2 := New(&Config{TLS: TLSConfig{Client: plainClient}})
	defer c2.Close()
	hs = handshakes{}
	_, err = c2.DialEndpoints(hs.ctx(testCtx(t)), []endpoint.Endpoint{endpoint.TLS{ServerName: testServerName, Inner: plainInner, SVC: &endpoint.SVCParams{ECH: stale}}})
	require.ErrorIs(t, err, tlsflow.ErrECHRejected)
	retry, ok := tlsflow.ECHRetryConfigs(err)
	assert.True(t, ok)
	assert.Empty(t, retry)
	assert.Len(t, hs.all(), 1)
}

// TestTLSBaseConfig: a listener whose certificate comes from Base (as
// with go-spiffe), and a dial whose Base checks the connection.
func TestTLSBaseConfig(t *testing.T) {
	ca, err := devpki.NewAuthority("conduit base test CA")
	require.NoError(t, err)
	cert, err := ca.Issue(testServerName, "127.0.0.1")
	require.NoError(t, err)
	srv := New(&Config{TLS: TLSConfig{Server: &tlsflow.Config{Base: &tls.Config{Certificates: []tls.Certificate{cert}}}}})
	defer srv.Close()
	target := serve(t, srv, "tls://127.0.0.1:0?sni="+testServerName, echo)

	var checked sync.WaitGroup
	checked.Add(1)
	c := New(&Config{TLS: TLSConfig{Client: &tlsflow.Config{RootCAs: ca.Pool, Base: &tls.Config{
		VerifyConnection: func(cs tls.ConnectionState) error {
			defer checked.Done()
			if cs.ServerName != testServerName {
				return errors.New("unexpected server name " + cs.ServerName)
			}
			return nil
		},
	}}}})
	defer c.Close()
	f, err := c.Dial(testCtx(t), target)
	require.NoError(t, err)
	defer f.Close()
	checked.Wait()
	roundTrip(t, f, 1000)

	// A Base without any certificate is still refused, by tlsflow.
	bad := New(&Config{TLS: TLSConfig{Server: &tlsflow.Config{Base: &tls.Config{}}}})
	defer bad.Close()
	_, err = bad.Listen(testCtx(t), "tls://127.0.0.1:0")
	require.ErrorContains(t, err, "needs Certificates or GetCertificate")
}

// TestDialECHRetryFails: when the retry after a rejection cannot even
// connect, the error is the retry's and still matches the rejection.
func TestDialECHRetryFails(t *testing.T) {
	key, _, err := tlsflow.GenerateECHKey(echPublicName, 1)
	require.NoError(t, err)
	_, stale, err := tlsflow.GenerateECHKey(echPublicName, 1)
	require.NoError(t, err)
	client, inner := echServer(t, &key)
	ep := endpoint.TLS{ServerName: testServerName, Inner: inner, SVC: &endpoint.SVCParams{ECH: stale}}

	var dials int
	var d net.Dialer
	opts := DialOptions{Dial: func(ctx context.Context, ep endpoint.Endpoint) (net.Conn, error) {
		dials++
		if dials > 1 {
			return nil, endpoint.ErrRefused // the retry finds the server gone
		}
		return d.DialContext(ctx, "tcp", ep.(endpoint.TCP).Addr.String())
	}}
	tr := &TLSTransport{Config: TLSConfig{Client: client}}
	_, err = tr.Dial(testCtx(t), ep, opts)
	require.ErrorIs(t, err, endpoint.ErrRefused)
	require.ErrorIs(t, err, tlsflow.ErrECHRejected)
	assert.Equal(t, 2, dials)
	assert.NotContains(t, err.Error(), "\n")
}

// TestDialHTTPSRecordECH: end to end through a DNS server no one here
// wrote. knotd publishes an HTTPS record for www.ech.test with our
// listener's port, ALPN and ECH config list; conduit.Dial of
// https://www.ech.test resolves it and ends with ECH accepted and the
// record's protocol negotiated.
func TestDialHTTPSRecordECH(t *testing.T) {
	const host = "www.ech.test"
	key, list, err := tlsflow.GenerateECHKey(echPublicName, 3)
	require.NoError(t, err)
	ca, err := devpki.NewAuthority("conduit ECH DNS test CA")
	require.NoError(t, err)
	cert, err := ca.Issue(host, echPublicName)
	require.NoError(t, err)
	srv := New(&Config{TLS: TLSConfig{Server: &tlsflow.Config{
		Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"},
		ECHKeys: []tls.EncryptedClientHelloKey{key},
	}}})
	defer srv.Close()
	target := serve(t, srv, "tls://127.0.0.1:0?sni="+host, echo)
	ap, err := netip.ParseAddrPort(strings.TrimPrefix(strings.SplitN(target, "?", 2)[0], "tls://"))
	require.NoError(t, err)

	ns := testutil.Knot(t, "ech.test", 30,
		"www A 127.0.0.1",
		fmt.Sprintf("www HTTPS 1 . alpn=h2 port=%d ech=%s", ap.Port(), base64.StdEncoding.EncodeToString(list)))
	res, err := resolver.New(&resolver.Config{DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{ns}}})
	require.NoError(t, err)
	defer res.Close()
	c := New(&Config{Resolver: res, TLS: TLSConfig{Client: &tlsflow.Config{RootCAs: ca.Pool}}})
	defer c.Close()

	f, err := c.Dial(testCtx(t), "https://"+host)
	require.NoError(t, err)
	defer f.Close()
	st := f.(*tlsflow.Conn).ConnectionState()
	assert.True(t, st.ECHAccepted, "the HTTPS record's ech config was used")
	assert.Equal(t, "h2", st.NegotiatedProtocol, "the HTTPS record's alpn was offered")
	assert.Equal(t, host, st.ServerName)
	roundTrip(t, f, 1000)
}
