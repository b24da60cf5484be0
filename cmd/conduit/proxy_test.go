package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
)

// The tests of this file run the built binary as a proxy client (through
// danted and tinyproxy) and as a proxy server (for curl and ncat).

var proxyListening = regexp.MustCompile(`^listening on (socks5|connect)://(127\.0\.0\.1:\d+)`)

// startProxyListener runs "conduit listen URI args…" and returns its
// address and the running peer.
func startProxyListener(t *testing.T, uri string, args ...string) (*peer, string) {
	t.Helper()
	p := startPeer(t, nil, io.Discard, binary(t), append(append([]string{"listen"}, args...), uri)...)
	m := p.waitLine(t, proxyListening)
	require.NotNil(t, m, "the proxy listener did not start: %s", p.stderr.String())
	return p, m[2]
}

// startHTTPServer serves body on loopback and returns its address.
func startHTTPServer(t *testing.T, body []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// TestE2EProxyListenerWithCurl: curl through our SOCKS5 listener (names
// resolved by the proxy, and locally) and our CONNECT listener, with the
// credentials of the URI; a wrong password is refused; each connection
// is logged with its destination.
func TestE2EProxyListenerWithCurl(t *testing.T) {
	curl := testutil.RequirePeer(t, "curl", "curl")
	body := make([]byte, 1<<20)
	rand.Read(body)
	web := startHTTPServer(t, body)
	_, webPort, _ := net.SplitHostPort(web)
	for _, tc := range []struct {
		uri  string
		args func(addr, user string) []string
	}{
		{"socks5://alice:s3cret@127.0.0.1:0", func(addr, user string) []string {
			return []string{"--socks5-hostname", addr, "--proxy-user", user, "http://localhost:" + webPort + "/"}
		}},
		{"socks5://alice:s3cret@127.0.0.1:0", func(addr, user string) []string {
			return []string{"--socks5", addr, "--proxy-user", user, "http://" + web + "/"}
		}},
		{"connect://alice:s3cret@127.0.0.1:0", func(addr, user string) []string {
			return []string{"-p", "-x", "http://" + addr, "--proxy-user", user, "http://" + web + "/"}
		}},
	} {
		t.Run(strings.Join(tc.args("ADDR", "U"), " "), func(t *testing.T) {
			p, addr := startProxyListener(t, tc.uri)
			out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "30"}, tc.args(addr, "alice:s3cret")...)...).Output()
			require.NoError(t, err)
			require.True(t, bytes.Equal(body, out), "curl got %d bytes, want %d", len(out), len(body))
			require.NotNil(t, p.waitLine(t, regexp.MustCompile(`(destination|target)=\S*`+webPort)), "a log line names the destination")

			err = exec.Command(curl, append([]string{"-sS", "--max-time", "30"}, tc.args(addr, "alice:wrong")...)...).Run()
			require.Error(t, err, "a wrong password is refused")
		})
	}
}

// TestE2EProxyListenerWithNcat: ncat as the client of both listeners,
// byte-exact to an echo server, its half-close passed on (ncat ends its
// input, the echo server sees the end and closes, ncat exits).
func TestE2EProxyListenerWithNcat(t *testing.T) {
	ncat := testutil.RequirePeer(t, "ncat", "ncat")
	echo := testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	host, port, _ := net.SplitHostPort(echo)
	data := make([]byte, 4<<20)
	rand.Read(data)
	for _, tc := range []struct{ uri, typ string }{
		{"socks5://127.0.0.1:0", "socks5"},
		{"connect://127.0.0.1:0", "http"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			_, addr := startProxyListener(t, tc.uri)
			cmd := exec.Command(ncat, "--proxy", addr, "--proxy-type", tc.typ, host, port)
			cmd.Stdin = bytes.NewReader(data)
			out, err := cmd.Output()
			require.NoError(t, err)
			requireSameHash(t, data, out)
		})
	}
}

// TestE2EDialThroughDantedAndTinyproxy: conduit dial with a two-proxy
// chain, byte-exact; resolve prints the hops.
func TestE2EDialThroughDantedAndTinyproxy(t *testing.T) {
	echo := testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	_, port, _ := net.SplitHostPort(echo)
	p, _ := strconv.Atoi(port)
	danted := testutil.Danted(t)
	tiny := testutil.Tinyproxy(t, testutil.TinyproxyConfig{ConnectPorts: []uint16{uint16(p)}})
	data := make([]byte, 2<<20)
	rand.Read(data)
	// tinyproxy ends a tunnel soon after a client's half-close, before
	// the rest of the answer (docs/proxies.md), so standard input stays
	// open until the whole echo is back; then it ends, and so does the
	// command.
	cmd := exec.Command(binary(t), "dial", "--proxy", "socks5://"+danted.String(), "--proxy", "http://"+tiny.String(), "tcp://"+echo)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderrBuf := &safeBuffer{}
	cmd.Stderr = stderrBuf
	require.NoError(t, cmd.Start())
	writeErr := make(chan error, 1)
	go func() { _, err := stdin.Write(data); writeErr <- err }()
	got := make([]byte, len(data))
	_, err = io.ReadFull(stdout, got)
	require.NoError(t, err, stderrBuf.String())
	require.NoError(t, <-writeErr)
	requireSameHash(t, data, got)
	stdin.Close()
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	assert.Empty(t, stderrBuf.String())

	// danted alone passes the half-close on: the plain form works.
	code, out, stderr := runBinary(t, data, "dial", "--proxy", "socks5://"+danted.String(), "tcp://"+echo)
	require.Equal(t, 0, code, stderr)
	requireSameHash(t, data, out)

	code, out, stderr = runBinary(t, nil, "resolve", "--proxy", "socks5://"+danted.String(), "--proxy", "http://"+tiny.String(), "tls://"+echo+"?sni=web.test")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, fmt.Sprintf("tls://web.test@http://%s@socks5://%s@tcp://%s\n", echo, tiny, danted), string(out))
}

// TestE2EProxyFromEnvironment: the command uses ALL_PROXY as curl does,
// loopback destinations included, and --noproxy overrides NO_PROXY.
func TestE2EProxyFromEnvironment(t *testing.T) {
	echo := testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	proxyLog, addr := startProxyListener(t, "socks5://127.0.0.1:0")
	run := func(env []string, args ...string) (int, []byte, string) {
		cmd := exec.Command(binary(t), args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader("through?\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return code, out.Bytes(), errb.String()
	}
	code, out, stderr := run([]string{"ALL_PROXY=socks5h://" + addr}, "dial", "tcp://"+echo)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "through?\n", string(out))
	require.NotNil(t, proxyLog.waitLine(t, regexp.MustCompile(`(destination|target)=`+regexp.QuoteMeta(echo))))

	// A proxy that refuses connections: used, the dial fails; bypassed
	// by --noproxy or NO_PROXY, it succeeds.
	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}()
	code, _, stderr = run([]string{"ALL_PROXY=socks5://" + dead}, "dial", "tcp://"+echo)
	require.Equal(t, 1, code)
	assert.Contains(t, stderr, "proxy socks5 "+dead)
	code, out, stderr = run([]string{"ALL_PROXY=socks5://" + dead}, "dial", "--noproxy", "*", "tcp://"+echo)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "through?\n", string(out))
	code, _, stderr = run([]string{"ALL_PROXY=socks5://" + dead, "NO_PROXY=127.0.0.0/8"}, "dial", "tcp://"+echo)
	require.Equal(t, 0, code, stderr)
}

// TestProxyListenerUsage: the proxy flags' mistakes are usage errors; a
// proxy reachable from elsewhere (here on vchan) without authentication
// or --allow refuses to start.
func TestProxyListenerUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"dial", "--proxy", "gopher://x", "tcp://127.0.0.1:1"}, 2, "the scheme is socks5, socks5h, http or https"},
		{[]string{"listen", "--allow", "10.0.0.0/8", "tcp://127.0.0.1:0"}, 2, "--allow and --proxy-auth go with a proxy listener"},
		{[]string{"listen", "--allow", "a b", "socks5://127.0.0.1:0"}, 2, "want a host name"},
		{[]string{"listen", "--echo", "socks5://127.0.0.1:0"}, 2, "no --echo"},
		{[]string{"listen", "--proxy-auth", "u:p", "socks5://v:q@127.0.0.1:0"}, 2, "give the credentials once"},
		{[]string{"listen", "--vchan-dir", t.TempDir(), "socks5+vchan://0/socks"}, 1, "needs authentication or a destination allow-list"},
	} {
		code, _, stderr := runCmd(t, tc.args...)
		assert.Equal(t, tc.code, code, "%v: %s", tc.args, stderr)
		assert.Contains(t, stderr, tc.msg, tc.args)
		assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %q", stderr)
	}
}
