package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
)

// hcProxyServer runs s.ServeHTTPConnect on a loopback listener and keeps
// each call's error.
type hcProxyServer struct {
	*hcServer
	errs chan error
}

func hcServeConnect(t testing.TB, s *Server) *hcProxyServer {
	p := &hcProxyServer{errs: make(chan error, 64)}
	p.hcServer = hcListen(t, func(c net.Conn) {
		err := s.ServeHTTPConnect(context.Background(), c)
		select {
		case p.errs <- err:
		default:
		}
	})
	return p
}

// hcNameDial is a DialFunc that reaches "target.test" at 127.0.0.1 and
// everything else as given.
func hcNameDial(ctx context.Context, target string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	if host == "target.test" {
		host = "127.0.0.1"
	}
	return hcDialTCP(ctx, net.JoinHostPort(host, port))
}

// lockedBuffer is a bytes.Buffer for a logger written from many
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// hcRunPeer runs a peer program to its end, bounded by a minute, with
// stdin as its standard input; it returns its standard output and error.
func hcRunPeer(t *testing.T, stdin []byte, path string, args ...string) (stdout []byte, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // an upper bound against hangs
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.Bytes(), errb.String(), err
}

// curl through our server: plain HTTP and HTTPS (certificate checked)
// targets by name, byte-exact; with --proxy-user the right password
// works and a wrong one gets 407; a disallowed destination gets 403; a
// request that is not CONNECT (curl proxying plain HTTP) gets 405.
func TestServeHTTPConnectCurl(t *testing.T) {
	curl := testutil.RequirePeer(t, "curl", "curl")
	body := hcRandom(t, 4<<20)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	plain := httptest.NewServer(handler)
	defer plain.Close()
	secure := httptest.NewUnstartedServer(handler)
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{getHCPKI(t).target}}
	secure.StartTLS()
	defer secure.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, getHCPKI(t).ca.CertPEM(), 0o644))
	securePort := secure.Listener.Addr().(*net.TCPAddr).Port
	secureURL := fmt.Sprintf("https://target.test:%d/", securePort)
	resolve := fmt.Sprintf("target.test:%d:127.0.0.1", securePort)

	var logs lockedBuffer
	s := &Server{
		Dial:   hcNameDial,
		Auth:   &Auth{"u", "p@ss:word"},
		Allow:  func(host string, port uint16) bool { return host != "127.0.0.2" },
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}
	srv := hcServeConnect(t, s)
	proxyURL := "http://" + srv.Addr()
	run := func(args ...string) ([]byte, string, string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		args = append([]string{"-sS", "-o", out, "-w", "%{http_connect} %{http_code}", "-x", proxyURL}, args...)
		codes, stderr, _ := hcRunPeer(t, nil, curl, args...)
		got, _ := os.ReadFile(out)
		return got, string(codes), stderr
	}

	got, codes, stderr := run("-p", "--proxy-user", "u:p@ss:word", plain.URL+"/")
	assert.Equal(t, "200 200", codes, stderr)
	assert.True(t, bytes.Equal(body, got), "plain: %d bytes, want %d", len(got), len(body))
	hcTunnelEnded(t, <-srv.errs)

	got, codes, stderr = run("-p", "--proxy-user", "u:p@ss:word", "--cacert", caFile, "--resolve", resolve, secureURL)
	assert.Equal(t, "200 200", codes, stderr)
	assert.True(t, bytes.Equal(body, got), "https: %d bytes, want %d", len(got), len(body))
	hcTunnelEnded(t, <-srv.errs)

	_, codes, _ = run("-p", "--proxy-user", "u:wrong", plain.URL+"/")
	assert.Equal(t, "407 000", codes)
	assert.ErrorIs(t, <-srv.errs, ErrAuth)

	_, codes, _ = run("-p", plain.URL+"/")
	assert.Equal(t, "407 000", codes)
	assert.ErrorIs(t, <-srv.errs, ErrAuth)

	_, codes, _ = run("-p", "--proxy-user", "u:p@ss:word", "http://127.0.0.2:1/")
	assert.Equal(t, "403 000", codes)
	assert.ErrorIs(t, <-srv.errs, ErrNotAllowed)

	_, codes, _ = run("--proxy-user", "u:p@ss:word", plain.URL+"/")
	assert.Equal(t, "000 405", codes)
	assert.ErrorIs(t, <-srv.errs, ErrProtocol)

	// One record per connection, with its destination.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	assert.Len(t, lines, 6, logs.String())
	assert.Contains(t, lines[1], "target=target.test:"+strconv.Itoa(securePort))
	assert.Contains(t, lines[1], "status=200")
	assert.Contains(t, lines[1], "down=")
	assert.Contains(t, lines[2], "status=407")
	assert.Contains(t, lines[4], "status=403")
}

// hcTunnelEnded checks a relay's end: nil, or a reset by a peer that
// closed its socket with bytes in flight (curl closes as soon as it has
// its response, while the TLS server may still send).
func hcTunnelEnded(t *testing.T, err error) {
	t.Helper()
	if err != nil && !endpoint.HasCause(err, endpoint.ErrReset) {
		t.Errorf("the tunnel ended with %v", err)
	}
}

// ncat through our server to an echo server: byte-exact, and ncat's
// half-close at the end of its input is passed on to the echo server,
// whose own half-close comes back (else ncat would not exit); with
// --proxy-auth, the right password works and a wrong one is refused.
func TestServeHTTPConnectNcat(t *testing.T) {
	ncat := testutil.RequirePeer(t, "ncat", "ncat")
	echo := hcEcho(t)
	for _, auth := range []*Auth{nil, {"user", "pw"}} {
		t.Run(fmt.Sprintf("auth=%v", auth != nil), func(t *testing.T) {
			srv := hcServeConnect(t, &Server{Dial: hcDialTCP, Auth: auth})
			args := []string{"--proxy", srv.Addr(), "--proxy-type", "http"}
			if auth != nil {
				args = append(args, "--proxy-auth", auth.Username+":"+auth.Password)
			}
			data := hcRandom(t, 4<<20)
			out, stderr, err := hcRunPeer(t, data, ncat, append(args, "127.0.0.1", strconv.Itoa(echo.Port()))...)
			require.NoError(t, err, stderr)
			assert.True(t, bytes.Equal(data, out), "%d bytes back, want %d: %s", len(out), len(data), stderr)
			// With --proxy-auth, ncat first asks without credentials and
			// answers the 407's challenge on a new connection.
			err = <-srv.errs
			if auth != nil {
				assert.ErrorIs(t, err, ErrAuth)
				err = <-srv.errs
			}
			assert.NoError(t, err)
			if auth == nil {
				return
			}
			args[len(args)-1] = auth.Username + ":wrong"
			_, _, err = hcRunPeer(t, []byte("x"), ncat, append(args, "127.0.0.1", strconv.Itoa(echo.Port()))...)
			assert.Error(t, err)
			assert.ErrorIs(t, <-srv.errs, ErrAuth)
		})
	}
}

// hcRaw sends req on a new connection to addr and returns the
// connection with a reader of the response.
func hcRaw(t *testing.T, addr, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second)) // an upper bound against hangs
	_, err = c.Write([]byte(req))
	require.NoError(t, err)
	return c, bufio.NewReader(c)
}

// hcResponseHead reads a response head.
func hcResponseHead(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		require.NoError(t, err, head.String())
		if line == "\r\n" {
			return head.String()
		}
	}
}

func TestServeHTTPConnectRefusals(t *testing.T) {
	echo := hcEcho(t)
	srv := hcServeConnect(t, &Server{
		Dial:  hcDialTCP,
		Auth:  &Auth{"u", "p"},
		Allow: func(host string, port uint16) bool { return port == uint16(echo.Port()) },
	})
	good := "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("u:p")) + "\r\n"
	for _, tc := range []struct {
		name, req, status string
		is                error
	}{
		{"GET", "GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + good + "\r\n", "HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\n", ErrProtocol},
		{"lowercase connect", "connect 127.0.0.1:1 HTTP/1.1\r\n\r\n", "HTTP/1.1 405 ", ErrProtocol},
		{"origin-form", "CONNECT / HTTP/1.1\r\n" + good + "\r\n", "HTTP/1.1 400 ", ErrProtocol},
		{"no port", "CONNECT 127.0.0.1 HTTP/1.1\r\n" + good + "\r\n", "HTTP/1.1 400 ", ErrProtocol},
		{"port 0", "CONNECT 127.0.0.1:0 HTTP/1.1\r\n" + good + "\r\n", "HTTP/1.1 400 ", ErrProtocol},
		{"unbracketed v6", "CONNECT ::1:80 HTTP/1.1\r\n" + good + "\r\n", "HTTP/1.1 400 ", ErrProtocol},
		{"userinfo", "CONNECT u@127.0.0.1:80 HTTP/1.1\r\n" + good + "\r\n", "HTTP/1.1 400 ", ErrProtocol},
		{"HTTP/2", "CONNECT 127.0.0.1:80 HTTP/2.0\r\n\r\n", "HTTP/1.1 400 ", ErrProtocol},
		{"header garbage", "CONNECT 127.0.0.1:80 HTTP/1.1\r\nno colon\r\n\r\n", "HTTP/1.1 400 ", ErrProtocol},
		{"two authorizations", "CONNECT 127.0.0.1:80 HTTP/1.1\r\n" + good + good + "\r\n", "HTTP/1.1 400 ", ErrProtocol},
		{"socks5 greeting", "\x05\x01\x00", "HTTP/1.1 400 ", ErrProtocol},
		{"tls client hello", "\x16\x03\x01\x02\x00\x01", "HTTP/1.1 400 ", ErrProtocol},
		{"no auth", "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"conduit\"\r\n", ErrAuth},
		{"wrong password", "CONNECT 127.0.0.1:1 HTTP/1.1\r\nProxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("u:q")) + "\r\n\r\n", "HTTP/1.1 407 ", ErrAuth},
		{"wrong scheme", "CONNECT 127.0.0.1:1 HTTP/1.1\r\nProxy-Authorization: Bearer dTpw\r\n\r\n", "HTTP/1.1 407 ", ErrAuth},
		{"not allowed", "CONNECT 127.0.0.1:1 HTTP/1.1\r\n" + good + "\r\n", "HTTP/1.1 403 Forbidden\r\n", ErrNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, br := hcRaw(t, srv.Addr(), tc.req)
			head := hcResponseHead(t, br)
			assert.True(t, strings.HasPrefix(head, tc.status), "%q", head)
			err := <-srv.errs
			assert.ErrorIs(t, err, tc.is)
			assert.True(t, strings.HasPrefix(err.Error(), "proxy: http connect: "), err.Error())
			assert.Equal(t, 1, strings.Count(err.Error(), "proxy:"), err.Error())
			// The server closed the connection after its answer.
			_, err = br.ReadByte()
			assert.ErrorIs(t, err, io.EOF)
		})
	}
}

// The bytes a client sends after its request head, in the same write,
// reach the destination.
func TestServeHTTPConnectBytesAfterRequest(t *testing.T) {
	echo := hcEcho(t)
	srv := hcServeConnect(t, &Server{Dial: hcDialTCP})
	c, br := hcRaw(t, srv.Addr(), "CONNECT "+echo.Addr()+" HTTP/1.1\r\nHost: "+echo.Addr()+"\r\n\r\nsent with the request")
	assert.Equal(t, connectEstablished, hcResponseHead(t, br))
	got := make([]byte, len("sent with the request"))
	_, err := io.ReadFull(br, got)
	require.NoError(t, err)
	assert.Equal(t, "sent with the request", string(got))
	c.(halfCloser).CloseWrite()
	rest, err := io.ReadAll(br)
	assert.NoError(t, err)
	assert.Empty(t, rest)
	assert.NoError(t, <-srv.errs)
}

// A client that stalls in the middle of its request is dropped at the
// handshake timeout.
func TestServeHTTPConnectStallingClient(t *testing.T) {
	srv := hcServeConnect(t, &Server{Dial: hcDialTCP, HandshakeTimeout: 50 * time.Millisecond})
	_, br := hcRaw(t, srv.Addr(), "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.")
	err := <-srv.errs
	require.Error(t, err)
	assert.True(t, endpoint.HasCause(err, endpoint.ErrTimeout), "%v", err)
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the server did not close the connection")
}

// Our client against our server: the statuses of a failed dial come back
// as the shared causes.
func TestServeHTTPConnectDialFailures(t *testing.T) {
	closed := int(testutil.FreePort(t))
	block := make(chan struct{})
	defer close(block)
	srv := hcServeConnect(t, &Server{
		HandshakeTimeout: 100 * time.Millisecond,
		Dial: func(ctx context.Context, target string) (net.Conn, error) {
			if strings.HasPrefix(target, "stall.test:") {
				select { // a destination that never answers: the dial's deadline ends it
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-block:
					return nil, errors.New("test over")
				}
			}
			return hcDialTCP(ctx, target)
		},
	})
	_, err := hcDialProxy(t, srv.Addr(), "127.0.0.1:"+strconv.Itoa(closed), nil)
	var he *HTTPError
	require.ErrorAs(t, err, &he)
	assert.Equal(t, 502, he.StatusCode)
	assert.ErrorIs(t, err, endpoint.ErrRefused)
	assert.True(t, endpoint.HasCause(<-srv.errs, endpoint.ErrRefused))

	_, err = hcDialProxy(t, srv.Addr(), "stall.test:443", nil)
	require.ErrorAs(t, err, &he)
	assert.Equal(t, 504, he.StatusCode)
	assert.True(t, endpoint.HasCause(err, endpoint.ErrTimeout))
	assert.True(t, endpoint.HasCause(<-srv.errs, endpoint.ErrTimeout))
}

// Our client against our server with bulk both ways and half-closes,
// over IPv6 loopback too when the machine has it.
func TestServeHTTPConnectOurClient(t *testing.T) {
	echo := hcEcho(t)
	srv := hcServeConnect(t, &Server{Dial: hcDialTCP, Auth: &Auth{"a", "b"}})
	c, err := hcDialProxy(t, srv.Addr(), echo.Addr(), &Auth{"a", "b"})
	require.NoError(t, err)
	defer c.Close()
	hcExchange(t, c, hcRandom(t, 8<<20), true)
	c.Close()
	assert.NoError(t, <-srv.errs)

	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	echo6 := hcServe(t, ln6, func(c net.Conn) { io.Copy(c, c) })
	c, err = hcDialProxy(t, srv.Addr(), echo6.Addr(), &Auth{"a", "b"})
	require.NoError(t, err)
	defer c.Close()
	hcExchange(t, c, []byte("over ::1"), false)
}

// Server shutdown: the context ending ends an established relay.
func TestServeHTTPConnectContextEndsRelay(t *testing.T) {
	echo := hcEcho(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &Server{Dial: hcDialTCP}
	errs := make(chan error, 1)
	srv := hcListen(t, func(c net.Conn) { errs <- s.ServeHTTPConnect(ctx, c) })
	c, err := hcDialProxy(t, srv.Addr(), echo.Addr(), nil)
	require.NoError(t, err)
	defer c.Close()
	hcExchange(t, c, []byte("before"), false)
	cancel()
	assert.ErrorIs(t, <-errs, context.Canceled)
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) // an upper bound against hangs
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
}

func TestCheckBasic(t *testing.T) {
	want := &Auth{"user", "pa:ss"}
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"Basic " + enc("user:pa:ss"), true},
		{"basic " + enc("user:pa:ss"), true},
		{"BASIC  " + enc("user:pa:ss"), true},
		{"Basic " + enc("user:pa:sss"), false},
		{"Basic " + enc("user:pa"), false},
		{"Basic " + enc("use:pa:ss"), false},
		{"Basic " + enc("userpa:ss"), false},
		{"Basic " + enc("user"), false},
		{"Basic !!!", false},
		{"Digest " + enc("user:pa:ss"), false},
		{"Basic", false},
		{"", false},
	} {
		assert.Equal(t, tc.ok, checkBasic([]byte(tc.value), want), "%q", tc.value)
	}
}
