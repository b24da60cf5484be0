package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
)

// The tests of this file run the built binary against real peers no one
// here wrote: socat for TCP and Unix sockets, socat's OpenSSL for TLS and
// dnsmasq for DNS.

// runBinary runs the built command and returns its exit status and
// output.
func runBinary(t *testing.T, stdin []byte, args ...string) (int, []byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "running %v: %v", args, err)
		code = ee.ExitCode()
	}
	return code, out.Bytes(), errb.String()
}

func requireSameHash(t *testing.T, want, got []byte) {
	t.Helper()
	require.Equal(t, len(want), len(got), "byte count")
	require.Equal(t, sha256.Sum256(want), sha256.Sum256(got), "payload differs")
}

func TestE2EDialSocatEcho(t *testing.T) {
	tcp := testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	sock := filepath.Join(t.TempDir(), "echo.sock")
	testutil.Socat(t, "UNIX-LISTEN:"+sock+",fork", "EXEC:cat")
	data := payload(8 << 20)
	for _, uri := range []string{"tcp://" + tcp, "unix://" + sock} {
		t.Run(uri, func(t *testing.T) {
			code, out, errOut := runBinary(t, data, "dial", uri)
			require.Equal(t, 0, code, errOut)
			requireSameHash(t, data, out)
		})
	}
}

func TestE2EListenWithSocatClient(t *testing.T) {
	socat := testutil.RequirePeer(t, "socat", "socat")
	p := testutil.StartProcess(t, binary(t), "listen", "--echo", "tcp://127.0.0.1:0")
	m := p.WaitLine(t, regexpListening, 30*time.Second)
	data := payload(4 << 20)
	cmd := exec.Command(socat, "-t", "30", "-", "TCP4:"+strings.TrimPrefix(m[1], "tcp://"))
	cmd.Stdin = bytes.NewReader(data)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	require.NoError(t, err, errb.String())
	requireSameHash(t, data, out)
}

func TestE2ETLSAgainstOpenSSL(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTestPKI(t, dir)
	both := filepath.Join(dir, "both.pem")
	c, err := os.ReadFile(cert)
	require.NoError(t, err)
	k, err := os.ReadFile(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(both, append(c, k...), 0o600))
	// socat's OPENSSL-LISTEN: OpenSSL's TLS as the server.
	addr := testutil.Socat(t, "OPENSSL-LISTEN:0,bind=127.0.0.1,reuseaddr,fork,verify=0,cert="+both, "EXEC:cat")
	data := payload(2 << 20)
	uri := "tls://" + addr + "?sni=cli.test"
	code, out, errOut := runBinary(t, data, "dial", "--ca", ca, uri)
	require.Equal(t, 0, code, errOut)
	requireSameHash(t, data, out)

	// Without the CA the certificate is not trusted: exit 1, one line.
	code, _, errOut = runBinary(t, data[:10], "dial", uri)
	require.Equal(t, 1, code)
	require.Regexp(t, `^conduit: dial `+regexpQuote(uri)+` .*tls handshake with cli.test: certificate not trusted`, errOut)

	// Our TLS listener with OpenSSL's s_client as the client.
	openssl := testutil.RequirePeer(t, "openssl", "openssl")
	p := testutil.StartProcess(t, binary(t), "listen", "--echo", "--cert", cert, "--key", key, "tls://127.0.0.1:0?sni=cli.test")
	m := p.WaitLine(t, regexpListening, 30*time.Second)
	hostport := strings.TrimPrefix(strings.Split(m[1], "?")[0], "tls://")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", hostport, "-servername", "cli.test",
		"-CAfile", ca, "-verify_return_error", "-quiet")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var errb safeBuffer
	cmd.Stderr = &errb
	require.NoError(t, cmd.Start())
	defer func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }()
	_, err = io.WriteString(stdin, "ping over openssl\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "s_client: %s", errb.String())
	require.Equal(t, "ping over openssl\n", line, "the echo through our TLS listener")
}

func TestE2EResolveAndDialSRVThroughDnsmasq(t *testing.T) {
	p := testutil.StartProcess(t, binary(t), "listen", "--echo", "tcp://127.0.0.1:0")
	target := p.WaitLine(t, regexpListening, 30*time.Second)[1]
	port := target[strings.LastIndexByte(target, ':')+1:]
	ns := testutil.Dnsmasq(t, "e2e.test",
		"--host-record=e2e.test,127.0.0.1",
		"--srv-host=_echo._tcp.e2e.test,e2e.test,"+port+",10,5")
	code, out, errOut := runBinary(t, nil, "resolve", "--json", "--nameserver", ns.String(), "srv://_echo._tcp.e2e.test")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, string(out), `"address": "127.0.0.1:`+port+`"`)
	data := payload(1 << 20)
	code, out, errOut = runBinary(t, data, "dial", "--nameserver", ns.String(), "srv://_echo._tcp.e2e.test")
	require.Equal(t, 0, code, errOut)
	requireSameHash(t, data, out)
}

func TestE2EErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		re   string
	}{
		{[]string{"dial", "tcp://127.0.0.1:1"}, 1, `^conduit: dial tcp://127\.0\.0\.1:1: .*connection refused\n$`},
		{[]string{"dial", "ftp:/x"}, 2, `^conduit: dial ftp:/x: .*\(see conduit dial --help\)\n$`},
		{[]string{"dial", "bogus://h:1"}, 2, `unknown scheme "bogus"`},
		{[]string{"dial", "unix://" + filepath.Join(t.TempDir(), "none.sock")}, 1, `none\.sock.*no such file`},
		{[]string{"listen", "tcp://127.0.0.1:99999"}, 2, `99999`},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := runBinary(t, nil, tc.args...)
			require.Equal(t, tc.code, code, errOut)
			require.Regexp(t, tc.re, errOut)
		})
	}
}

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }
