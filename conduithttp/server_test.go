package conduithttp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/conduithttp"
	"github.com/conduit-go/conduit/internal/devpki"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tlsflow"
	"github.com/conduit-go/conduit/vchan"
)

// echoHandler answers with what it saw of the request.
var echoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	alpn := "-"
	if r.TLS != nil {
		alpn = r.TLS.NegotiatedProtocol + " " + r.TLS.ServerName
	}
	fmt.Fprintf(w, "%s %s host=%s tls=%s", r.Proto, r.URL.Path, r.Host, alpn)
})

// pki is a CA, a Conduit that serves its certificate for svc.test,
// localhost and 127.0.0.1 with NextProtos, and the CA's pool.
func pki(t *testing.T) (*conduit.Conduit, *devpki.Authority, string) {
	t.Helper()
	ca, err := devpki.NewAuthority("conduithttp test CA")
	require.NoError(t, err)
	cert, err := ca.Issue("svc.test", "localhost", "127.0.0.1")
	require.NoError(t, err)
	certPEM, keyPEM, err := devpki.PEM(cert)
	require.NoError(t, err)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, writeFiles(map[string][]byte{caFile: ca.CertPEM(), filepath.Join(dir, "cert.pem"): certPEM, filepath.Join(dir, "key.pem"): keyPEM}))
	c := conduit.New(&conduit.Config{
		TLS:   conduit.TLSConfig{Server: &tlsflow.Config{Certificates: []tls.Certificate{cert}, NextProtos: conduithttp.NextProtos}},
		Vchan: &vchan.Config{Dir: t.TempDir()},
	})
	t.Cleanup(func() { c.Close() })
	return c, ca, caFile
}

// serve serves h on a conduit listener for uri until the test ends and
// returns the listener's URI.
func serve(t *testing.T, c *conduit.Conduit, uri string, h http.Handler) string {
	t.Helper()
	ln, err := c.Listen(context.Background(), uri)
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	done := make(chan error, 1)
	go func() { done <- conduithttp.ServeListener(srv, ln) }()
	t.Cleanup(func() {
		srv.Close()
		assert.ErrorIs(t, <-done, http.ErrServerClosed)
	})
	return ln.URI()
}

func get(t *testing.T, client *conduithttp.Client, u string) string {
	t.Helper()
	resp, err := client.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	return string(body)
}

// TestServeTLS: HTTP/2 by ALPN over conduit's TLS listeners, to our
// Transport and to curl (nghttp2), and HTTP/1.1 for a client that does
// not offer h2, each request seeing its TLS state.
func TestServeTLS(t *testing.T) {
	c, ca, caFile := pki(t)
	tcpURI := serve(t, c, "tls://127.0.0.1:0?sni=svc.test", echoHandler)
	sock := filepath.Join(t.TempDir(), "tls.sock")
	serve(t, c, "tls+unix://"+sock+"?sni=localhost", echoHandler)
	hostport := strings.TrimPrefix(strings.TrimSuffix(tcpURI, "?sni=svc.test"), "tls://")

	client := conduithttp.NewClient(c, &conduithttp.TransportOptions{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}})
	defer client.CloseIdleConnections()
	port := strings.Split(hostport, ":")[1]
	assert.Equal(t, "HTTP/2.0 /a host=localhost:"+port+" tls=h2 localhost", get(t, client, "https://localhost:"+port+"/a"))
	assert.Equal(t, "HTTP/2.0 /a2 host="+hostport+" tls=h2 ", get(t, client, "https://"+hostport+"/a2"), "no SNI for an IP address")
	assert.Equal(t, "HTTP/2.0 /b host=localhost tls=h2 localhost", get(t, client, "https+unix://"+url.PathEscape(sock)+"/b"))

	h1 := conduithttp.NewClient(c, &conduithttp.TransportOptions{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, DisableHTTP2: true})
	defer h1.CloseIdleConnections()
	assert.Equal(t, "HTTP/1.1 /c host=localhost:"+port+" tls=http/1.1 localhost", get(t, h1, "https://localhost:"+port+"/c"))

	// The name is verified: a request for another name fails.
	req, err := conduithttp.NewRequest(http.MethodGet, "https+unix://"+url.PathEscape(sock)+"/d", nil)
	require.NoError(t, err)
	req.Host = "other.test"
	_, err = client.Do(req)
	assert.ErrorContains(t, err, "other.test")

	// A real peer: curl over TCP and over the Unix socket.
	curl := testutil.RequirePeer(t, "curl", "curl")
	for _, args := range [][]string{
		{"--http2", "https://svc.test:" + strings.Split(hostport, ":")[1] + "/e", "--resolve", "svc.test:" + strings.Split(hostport, ":")[1] + ":127.0.0.1"},
		{"--http2", "--unix-socket", sock, "https://localhost/f"},
		{"--http1.1", "--unix-socket", sock, "https://localhost/g"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--cacert", caFile}, args...)...).CombinedOutput()
		cancel()
		require.NoError(t, err, "%s", out)
		switch path := args[len(args)-1]; {
		case strings.HasSuffix(args[1], "/e"):
			assert.Equal(t, "HTTP/2.0 /e host=svc.test:"+strings.Split(hostport, ":")[1]+" tls=h2 svc.test", string(out))
		case strings.HasSuffix(path, "/f"):
			assert.Equal(t, "HTTP/2.0 /f host=localhost tls=h2 localhost", string(out))
		default:
			assert.Equal(t, "HTTP/1.1 /g host=localhost tls=http/1.1 localhost", string(out))
		}
	}
}

// TestServeVchan: HTTP over vchan, both sides ours.
func TestServeVchan(t *testing.T) {
	c, _, _ := pki(t)
	uri := serve(t, c, "vchan://0/web", echoHandler)
	domain := strings.TrimSuffix(strings.TrimPrefix(uri, "vchan://"), "/web")
	client := conduithttp.NewClient(c, nil)
	defer client.CloseIdleConnections()
	assert.Equal(t, "HTTP/1.1 /health host=localhost tls=-", get(t, client, "http+vchan://"+domain+"/web/health"))
	assert.Equal(t, "HTTP/1.1 / host=localhost tls=-", get(t, client, "http+vchan://"+domain+"/web"))
}

// TestServeShutsDown: Serve ends when its context does, after the
// request in flight.
func TestServeShutsDown(t *testing.T) {
	c := conduit.New(nil)
	defer c.Close()
	sock := filepath.Join(t.TempDir(), "s.sock")
	inHandler, release := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- conduithttp.Serve(ctx, c, "unix://"+sock, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(inHandler)
			<-release
			io.WriteString(w, "done")
		})}, time.Minute)
	}()
	client := conduithttp.NewClient(c, nil)
	defer client.CloseIdleConnections()
	got := make(chan string, 1)
	go func() {
		for { // until the listener is there
			resp, err := client.Get("http+unix://" + url.PathEscape(sock) + "/")
			if err != nil {
				if errors.Is(err, conduit.ErrRefused) || strings.Contains(err.Error(), "no such file") {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				got <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got <- string(b)
			return
		}
	}()
	<-inHandler
	cancel()
	close(release)
	assert.Equal(t, "done", <-got)
	assert.NoError(t, <-served)
}

func writeFiles(files map[string][]byte) error {
	for name, b := range files {
		if err := osWriteFile(name, b); err != nil {
			return err
		}
	}
	return nil
}
