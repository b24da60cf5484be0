package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
)

// background runs a long-lived subcommand (listen, relay) in this
// process, returns the URI of its "listening on" line, and stops it with
// its context when the test ends, checking it exits 0.
func background(t *testing.T, stdout io.Writer, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, args, strings.NewReader(""), stdout, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	require.True(t, sc.Scan(), "no output from %v", args)
	line := sc.Text()
	require.True(t, strings.HasPrefix(line, "listening on "), "first line %q", line)
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, pr); close(drained) }()
	t.Cleanup(func() {
		cancel()
		require.Equal(t, 0, <-code)
		<-drained
	})
	return strings.TrimPrefix(line, "listening on ")
}

func runWithInput(t *testing.T, stdin []byte, args ...string) (int, []byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, bytes.NewReader(stdin), &out, &errb)
	return code, out.Bytes(), errb.String()
}

func payload(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestListenEchoAndDial(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "echo.sock")
	for _, uri := range []string{"tcp://127.0.0.1:0", "unix://" + sock} {
		t.Run(uri, func(t *testing.T) {
			target := background(t, io.Discard, "listen", "--echo", uri)
			assert.NotContains(t, target, ":0", "port 0 is replaced by the bound port")
			data := payload(1 << 20)
			code, out, errOut := runWithInput(t, data, "dial", "--progress", "off", target)
			require.Equal(t, 0, code, errOut)
			require.True(t, bytes.Equal(data, out), "echo differs: %d bytes back", len(out))
		})
	}
}

func TestListenPrintsWhatItReceives(t *testing.T) {
	var got safeBuffer
	target := background(t, &got, "listen", "tcp://127.0.0.1:0")
	code, out, errOut := runWithInput(t, []byte("hello listener\n"), "dial", target)
	require.Equal(t, 0, code, errOut)
	require.Empty(t, out)
	require.Eventually(t, func() bool { return got.String() == "hello listener\n" }, 10*time.Second, 10*time.Millisecond)
}

func TestRelayPassesBothWaysAndHalfCloses(t *testing.T) {
	echo := background(t, io.Discard, "listen", "--echo", "unix://"+filepath.Join(t.TempDir(), "svc.sock"))
	front := background(t, io.Discard, "relay", "tcp://127.0.0.1:0", echo)
	data := payload(512 << 10)
	code, out, errOut := runWithInput(t, data, "dial", front)
	require.Equal(t, 0, code, errOut)
	require.True(t, bytes.Equal(data, out), "relayed echo differs")
}

func TestDialAgainstSocat(t *testing.T) {
	addr := testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	data := payload(1 << 20)
	code, out, errOut := runWithInput(t, data, "dial", "tcp://"+addr)
	require.Equal(t, 0, code, errOut)
	require.True(t, bytes.Equal(data, out))
}

func TestTLSWithFlags(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTestPKI(t, dir)
	target := background(t, io.Discard, "listen", "--echo", "--cert", cert, "--key", key, "tls://127.0.0.1:0?sni=cli.test")
	code, out, errOut := runWithInput(t, []byte("over tls"), "dial", "--ca", ca, target)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "over tls", string(out))

	code, _, errOut = runWithInput(t, []byte("x"), "dial", target) // system roots
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "conduit: dial "+target)
	require.Contains(t, errOut, "not trusted")
}

func TestErrorsAndExitStatus(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "tcp://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"dial", closed}, 1, "conduit: dial " + closed},
		{[]string{"dial", closed}, 1, "refused"},
		{[]string{"dial", "tcp://127.0.0.1"}, 2, "port"},
		{[]string{"dial", "--keepalive", "1s,2s", "tcp://127.0.0.1:1"}, 2, "AFTER,INTERVAL,PROBES"},
		{[]string{"dial", "--stack", "bogus", "tcp://127.0.0.1:1"}, 2, "--stack"},
		{[]string{"dial", "--cert", "x.pem", "tcp://127.0.0.1:1"}, 2, "--cert and --key"},
		{[]string{"dial", "--nosuchflag", "tcp://127.0.0.1:1"}, 2, "unknown flag --nosuchflag"},
		{[]string{"listen", "--echo", "--discard", "tcp://127.0.0.1:0"}, 2, "--echo, --discard and --exec exclude each other"},
		{[]string{"listen", "tls://127.0.0.1:0"}, 2, "needs a certificate: pass --cert FILE and --key FILE"},
		{[]string{"relay", "tcp://127.0.0.1:0"}, 2, "missing DIAL_URI"},
		{[]string{"bench"}, 2, "missing URI"},
		{[]string{"completion", "tcsh"}, 2, "tcsh"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := runWithInput(t, nil, tc.args...)
			require.Equal(t, tc.code, code, errOut)
			require.Contains(t, errOut, tc.msg)
			first, _, _ := strings.Cut(errOut, "\n")
			if tc.code == 1 {
				require.True(t, strings.HasPrefix(first, "conduit: "), "error line %q", first)
			}
		})
	}
}

func TestHelpOfEverySubcommand(t *testing.T) {
	for _, cmd := range []string{"resolve", "dial", "listen", "relay", "bench", "demo"} {
		t.Run(cmd, func(t *testing.T) {
			code, _, errOut := runWithInput(t, nil, cmd, "--help")
			require.Equal(t, 0, code)
			require.Contains(t, errOut, "usage: conduit "+cmd)
		})
	}
}

func TestCompletion(t *testing.T) {
	code, out, _ := runWithInput(t, nil, "completion", "bash")
	require.Equal(t, 0, code)
	require.Contains(t, string(out), "complete -o nospace -F _conduit conduit")
	code, out, _ = runWithInput(t, nil, "completion", "zsh")
	require.Equal(t, 0, code)
	require.Contains(t, string(out), "#compdef conduit")
	if bash, err := exec.LookPath("bash"); err == nil {
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(bashCompletion(commands))
		msg, err := cmd.CombinedOutput()
		require.NoError(t, err, "bash -n: %s", msg)
	}
}

func TestBenchJSON(t *testing.T) {
	target := background(t, io.Discard, "listen", "--echo", "tcp://127.0.0.1:0")
	code, out, errOut := runWithInput(t, nil, "bench", "--json", "--duration", "200ms", target)
	require.Equal(t, 0, code, errOut)
	var res benchResult
	require.NoError(t, json.Unmarshal(out, &res))
	require.Equal(t, target, res.URI)
	require.Positive(t, res.BytesEchoed)
	require.Positive(t, res.RoundTrips)
	require.LessOrEqual(t, res.LatencyP50us, res.LatencyP99us)
	require.LessOrEqual(t, res.LatencyP99us, res.LatencyMaxus)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the command once for the tests that run it as a process.
// CONDUIT_TEST_BINARY names another build to run instead (to check that
// a test fails on an older one).
func binary(t *testing.T) string {
	if p := os.Getenv("CONDUIT_TEST_BINARY"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "conduit-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "conduit")
		if msg, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, msg)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// TestVchanBetweenProcesses listens on vchan in a child process (the
// built binary) and dials it from this one through a shared store.
func TestVchanBetweenProcesses(t *testing.T) {
	store := t.TempDir()
	p := testutil.StartProcess(t, binary(t), "listen", "--echo", "--vchan-dir", store, "vchan://0/echo")
	m := p.WaitLine(t, regexpListening, 30*time.Second)
	require.Regexp(t, `^vchan://[1-9]\d*/echo$`, m[1])
	data := payload(4 << 20)
	code, out, errOut := runWithInput(t, data, "dial", "--vchan-dir", store, m[1])
	require.Equal(t, 0, code, errOut)
	require.True(t, bytes.Equal(data, out), "echo over vchan differs")

	// The same over TLS.
	dir := t.TempDir()
	ca, cert, key := writeTestPKI(t, dir)
	p = testutil.StartProcess(t, binary(t), "listen", "--echo", "--vchan-dir", store, "--cert", cert, "--key", key, "tls+vchan://0/secure?sni=cli.test")
	m = p.WaitLine(t, regexpListening, 30*time.Second)
	code, out, errOut = runWithInput(t, data[:100000], "dial", "--vchan-dir", store, "--ca", ca, m[1])
	require.Equal(t, 0, code, errOut)
	require.True(t, bytes.Equal(data[:100000], out), "echo over tls+vchan differs")
}

// TestSignalStopsListenGracefully runs the real binary and sends it
// SIGTERM.
func TestSignalStopsListenGracefully(t *testing.T) {
	p := testutil.StartProcess(t, binary(t), "listen", "--echo", "tcp://127.0.0.1:0")
	m := p.WaitLine(t, regexpListening, 30*time.Second)
	require.NotEmpty(t, m[1])
	c, err := net.Dial("tcp4", strings.TrimPrefix(m[1], "tcp://"))
	require.NoError(t, err)
	fmt.Fprint(c, "ping")
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	c.Close()
	require.NoError(t, p.Signal(syscall.SIGTERM))
	select {
	case <-p.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("listen did not stop on SIGTERM")
	}
	require.Equal(t, 0, p.ExitCode(), p.Stderr())
}

var regexpListening = regexp.MustCompile(`^listening on (\S+)$`)

// safeBuffer is a bytes.Buffer safe for concurrent use.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSRVThroughDnsmasq publishes a listener in a real DNS server and
// resolves and dials it by SRV with --nameserver.
func TestSRVThroughDnsmasq(t *testing.T) {
	target := background(t, io.Discard, "listen", "--echo", "tcp://127.0.0.1:0")
	port := target[strings.LastIndexByte(target, ':')+1:]
	ns := testutil.Dnsmasq(t, "echo.test",
		"--host-record=echo.test,127.0.0.1",
		"--srv-host=_echo._tcp.echo.test,echo.test,"+port+",10,5")
	code, out, errOut := runWithInput(t, nil, "resolve", "--nameserver", ns.String(), "srv://_echo._tcp.echo.test")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "tcp://echo.test=127.0.0.1:"+port+"\n", string(out))

	data := payload(256 << 10)
	code, out, errOut = runWithInput(t, data, "dial", "--nameserver", ns.String(), "srv://_echo._tcp.echo.test")
	require.Equal(t, 0, code, errOut)
	require.True(t, bytes.Equal(data, out))

	code, _, errOut = runWithInput(t, nil, "dial", "--nameserver", ns.String(), "tcp://nosuch.test:80")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "nosuch.test")
	require.Contains(t, errOut, "no such host")
}
