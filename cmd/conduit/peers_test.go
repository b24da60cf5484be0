package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/devpki"
	"github.com/conduit-go/conduit/internal/testutil"
)

// The tests of this file run the built binary against peers that
// misbehave the way real ones do: ncat half-closing at once, a listener
// killed mid-transfer, a TLS server that ends without close_notify, an
// echo peer that does not echo.

// peer is a program started by a test with its standard streams given.
type peer struct {
	cmd    *exec.Cmd
	stderr *safeBuffer
	lines  chan string
	done   chan struct{}
	err    error
}

// startPeer starts path with args; lines of its standard error are
// offered to waitLine. It is killed and reaped when the test ends.
func startPeer(t *testing.T, stdin io.Reader, stdout io.Writer, path string, args ...string) *peer {
	t.Helper()
	p := &peer{cmd: exec.Command(path, args...), stderr: &safeBuffer{}, lines: make(chan string, 64), done: make(chan struct{})}
	p.cmd.Stdin, p.cmd.Stdout = stdin, stdout
	pr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.stderr.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, pr)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s %s: stderr:\n%s", path, strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// waitLine waits for a line of standard error matching re; it returns
// nil if the program exits first.
func (p *peer) waitLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line := <-p.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-p.done:
			return nil
		case <-timeout:
			t.Fatalf("no line matching %s; stderr:\n%s", re, p.stderr.String())
		}
	}
}

// wait waits for the program's exit and returns its status.
func (p *peer) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%v did not exit; stderr:\n%s", p.cmd.Args, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

var ncatListening = regexp.MustCompile(`^Ncat: Listening on `)

// ncatListen starts "ncat -v -l 127.0.0.1 PORT args..." on a port that
// was free a moment ago (ncat does not tell the port it got for 0),
// retrying on another port if that one was taken meanwhile.
func ncatListen(t *testing.T, stdin io.Reader, stdout io.Writer, args ...string) (*peer, string) {
	t.Helper()
	ncat := testutil.RequirePeer(t, "ncat", "ncat")
	for attempt := 0; attempt < 10; attempt++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		p := startPeer(t, stdin, stdout, ncat, append([]string{"-v", "-l", "127.0.0.1", port}, args...)...)
		if p.waitLine(t, ncatListening) != nil {
			return p, "127.0.0.1:" + port
		}
	}
	t.Fatal("ncat could not listen")
	return nil, ""
}

// TestE2EDialToHalfClosingNcat: ncat -l with /dev/null as input
// half-closes at once; every byte of our input still reaches it, and the
// exit status is 0.
func TestE2EDialToHalfClosingNcat(t *testing.T) {
	data := payload(10 << 20)
	for i := 0; i < 3; i++ {
		out := filepath.Join(t.TempDir(), "r.bin")
		f, err := os.Create(out)
		require.NoError(t, err)
		devnull, err := os.Open(os.DevNull)
		require.NoError(t, err)
		p, addr := ncatListen(t, devnull, f)
		code, got, errOut := runBinary(t, data, "dial", "tcp://"+addr)
		require.Equal(t, 0, code, errOut)
		require.Empty(t, got)
		require.Equal(t, 0, p.wait(t), "ncat")
		f.Close()
		devnull.Close()
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		requireSameHash(t, data, b)
	}
}

// TestE2EListenSendsStdinToFirstClient: "conduit listen < file" sends the
// file to the client (ncat) and exits after that one connection.
func TestE2EListenSendsStdinToFirstClient(t *testing.T) {
	ncat := testutil.RequirePeer(t, "ncat", "ncat")
	data := payload(4 << 20)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, data, 0o600))
	in, err := os.Open(file)
	require.NoError(t, err)
	defer in.Close()
	var got safeBuffer
	l := startPeer(t, in, &got, binary(t), "listen", "tcp://127.0.0.1:0")
	m := l.waitLine(t, regexpListening)
	require.NotNil(t, m)
	var out bytes.Buffer
	cl := exec.Command(ncat, strings.Split(strings.TrimPrefix(m[1], "tcp://"), ":")...)
	cl.Stdin = strings.NewReader("from ncat\n")
	cl.Stdout = &out
	require.NoError(t, cl.Run())
	requireSameHash(t, data, out.Bytes())
	require.Equal(t, 0, l.wait(t), "listen exits 0 after its one connection")
	require.Equal(t, "from ncat\n", got.String())
	require.Regexp(t, `closed 127\.0\.0\.1:\d+: ended cleanly, 10 bytes received, 4194304 sent`, l.stderr.String())
}

// TestE2EDialToNcatListenWithFile: the other way round, "ncat -l < file"
// and our dial print the file.
func TestE2EDialToNcatListenWithFile(t *testing.T) {
	data := payload(4 << 20)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, data, 0o600))
	in, err := os.Open(file)
	require.NoError(t, err)
	defer in.Close()
	p, addr := ncatListen(t, in, io.Discard)
	// Our input stays open until the file has come: ncat quits when its
	// peer half-closes, even with its own input not all sent.
	inR, inW, err := os.Pipe()
	require.NoError(t, err)
	defer inW.Close()
	outR, outW := io.Pipe()
	d := startPeer(t, inR, outW, binary(t), "dial", "tcp://"+addr)
	inR.Close()
	got := make([]byte, len(data))
	_, err = io.ReadFull(outR, got)
	require.NoError(t, err)
	inW.Close()
	rest := make(chan []byte)
	go func() { b, _ := io.ReadAll(outR); rest <- b }()
	require.Equal(t, 0, d.wait(t), d.stderr.String())
	outW.Close()
	require.Empty(t, <-rest)
	requireSameHash(t, data, got)
	require.Equal(t, 0, p.wait(t))
}

// TestE2EPeerKilledMidTransfer: the listener is killed (SIGKILL) while
// the dialer still has input to send: exit 1 and the "cut short" line,
// over TCP and TLS.
func TestE2EPeerKilledMidTransfer(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTestPKI(t, dir)
	for _, tc := range []struct {
		name   string
		listen []string
		dial   []string
	}{
		{"tcp", []string{"listen", "--echo", "tcp://127.0.0.1:0"}, []string{"dial"}},
		{"tls", []string{"listen", "--echo", "--cert", cert, "--key", key, "tls://127.0.0.1:0?sni=cli.test"}, []string{"dial", "--ca", ca}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 4; i++ {
				l := startPeer(t, nil, io.Discard, binary(t), tc.listen...)
				m := l.waitLine(t, regexpListening)
				require.NotNil(t, m)
				inR, inW := io.Pipe()
				outR, outW := io.Pipe()
				d := startPeer(t, inR, outW, binary(t), append(tc.dial, m[1])...)
				// Some data goes through the echo, then the listener dies.
				chunk := payload(64 << 10)
				go func() { inW.Write(chunk) }()
				_, err := io.ReadFull(outR, make([]byte, len(chunk)))
				require.NoError(t, err)
				require.NoError(t, l.cmd.Process.Kill())
				l.wait(t)
				// The dialer still has input; it must not end quietly.
				go func() {
					for j := 0; j < 64; j++ {
						if _, err := inW.Write(chunk); err != nil {
							return
						}
					}
					inW.Close()
				}()
				go io.Copy(io.Discard, outR)
				code := d.wait(t)
				inR.Close()
				outW.Close()
				require.Equal(t, 1, code, d.stderr.String())
				require.Regexp(t, `^conduit: dial \S+: transfer cut short after \d+ bytes sent and \d+ received: .+\n$`, d.stderr.String())
			}
		})
	}
}

// tlsServerWithoutCloseNotify serves one TLS connection that sends data
// and then closes TCP with a bare FIN, no close_notify.
func tlsServerWithoutCloseNotify(t *testing.T, data []byte) string {
	t.Helper()
	auth, err := devpki.NewAuthority("truncating CA")
	require.NoError(t, err)
	cert, err := auth.Issue("trunc.test", "127.0.0.1")
	require.NoError(t, err)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, auth.CertPEM(), 0o600))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		tc := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() != nil {
			return
		}
		tc.Write(data)
		nc.(*net.TCPConn).CloseWrite() // a bare FIN
		io.Copy(io.Discard, nc)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ca + " " + "tls://" + ln.Addr().String() + "?sni=trunc.test"
}

// TestE2ETLSPeerWithoutCloseNotify: a TLS stream that ends without
// close_notify is reported as cut short, not taken for a whole one.
func TestE2ETLSPeerWithoutCloseNotify(t *testing.T) {
	data := payload(1 << 20)
	ca, uri, _ := strings.Cut(tlsServerWithoutCloseNotify(t, data), " ")
	code, out, errOut := runBinary(t, nil, "dial", "--ca", ca, uri)
	require.Equal(t, 1, code, errOut)
	requireSameHash(t, data, out)
	require.Regexp(t, `^conduit: dial \S+: transfer cut short after 0 bytes sent and 1048576 received: connection closed without close_notify`, errOut)
}

// TestE2EExec: --exec on listen (ncat as the client) and on dial (socat's
// echo as the server), with the command's exit status reported.
func TestE2EExec(t *testing.T) {
	ncat := testutil.RequirePeer(t, "ncat", "ncat")
	l := startPeer(t, nil, io.Discard, binary(t), "listen", "--exec", "tr a-z A-Z", "tcp://127.0.0.1:0")
	m := l.waitLine(t, regexpListening)
	require.NotNil(t, m)
	cl := exec.Command(ncat, strings.Split(strings.TrimPrefix(m[1], "tcp://"), ":")...)
	cl.Stdin = strings.NewReader("shout this\n")
	out, err := cl.Output()
	require.NoError(t, err)
	require.Equal(t, "SHOUT THIS\n", string(out))
	require.Equal(t, 0, l.wait(t))
	require.Regexp(t, `ended cleanly, 11 bytes received, 11 sent; exec "tr a-z A-Z": exit status 0`, l.stderr.String())

	echo := testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	dir := t.TempDir()
	script := "printf 'to the peer\\n'; exec >&-; cat > " + filepath.Join(dir, "back") + "; exit 3"
	code, _, errOut := runBinary(t, nil, "dial", "--exec", script, "tcp://"+echo)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, `exit status 3`)
	back, err := os.ReadFile(filepath.Join(dir, "back"))
	require.NoError(t, err)
	require.Equal(t, "to the peer\n", string(back), "the echo reached the command's input")

	code, _, errOut = runBinary(t, nil, "dial", "--exec", "printf ok", "tcp://"+echo)
	require.Equal(t, 0, code, errOut)
}

// TestE2EBenchAgainstNonEcho: bench against "listen --discard" and a
// peer that never reads ends with "peer does not echo", exit 1.
func TestE2EBenchAgainstNonEcho(t *testing.T) {
	l := startPeer(t, nil, io.Discard, binary(t), "listen", "--discard", "tcp://127.0.0.1:0")
	m := l.waitLine(t, regexpListening)
	require.NotNil(t, m)
	code, _, errOut := runBinary(t, nil, "bench", "--duration", "200ms", "--timeout", "2s", m[1])
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "peer does not echo")

	// A peer that accepts and then neither reads nor writes.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	held := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c
		}
	}()
	code, _, errOut = runBinary(t, nil, "bench", "--duration", "200ms", "--timeout", "1s", "tcp://"+ln.Addr().String())
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "peer does not echo")
	ln.Close()
	for c := range held {
		c.Close()
	}
}

// TestE2EBenchSignal: SIGINT ends a long bench with what was measured.
func TestE2EBenchSignal(t *testing.T) {
	l := startPeer(t, nil, io.Discard, binary(t), "listen", "--echo", "tcp://127.0.0.1:0")
	m := l.waitLine(t, regexpListening)
	require.NotNil(t, m)
	var out safeBuffer
	b := startPeer(t, nil, &out, binary(t), "bench", "-v", "--duration", "10m", m[1])
	require.NotNil(t, b.waitLine(t, regexp.MustCompile(`^connected `)))
	require.NoError(t, b.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, 1, b.wait(t))
	require.Contains(t, b.stderr.String(), "conduit: bench "+m[1]+": interrupted")
	require.Contains(t, out.String(), "throughput")
}

// TestE2EDialSignalWhileWaitingForInput: SIGTERM ends a dial whose input
// never ends.
func TestE2EDialSignalWhileWaitingForInput(t *testing.T) {
	echo := testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	inR, inW, err := os.Pipe()
	require.NoError(t, err)
	defer inW.Close()
	d := startPeer(t, inR, io.Discard, binary(t), "dial", "-v", "tcp://"+echo)
	inR.Close()
	require.NotNil(t, d.waitLine(t, regexp.MustCompile(`^connected `)))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 1, d.wait(t))
	require.Contains(t, d.stderr.String(), "transfer cut short after 0 bytes sent and 0 received: interrupted")
}

// TestE2ETimeoutCoversSilentServer: a TLS server that accepts TCP and
// never answers the ClientHello is given up after --timeout; --timeout 0
// means no timeout, and then the signal ends it.
func TestE2ETimeoutCoversSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	held := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c
		}
	}()
	uri := "tls://" + ln.Addr().String() + "?sni=x.test"
	code, _, errOut := runBinary(t, nil, "dial", "--timeout", "300ms", uri)
	require.Equal(t, 1, code, errOut)
	require.Regexp(t, `^conduit: dial \S+ .*handshake timed out`, errOut)

	d := startPeer(t, nil, io.Discard, binary(t), "dial", "-vv", "--timeout", "0", uri)
	require.NotNil(t, d.waitLine(t, regexp.MustCompile(`tls handshake `)))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, 1, d.wait(t))
	ln.Close()
	for c := range held {
		c.Close()
	}
}

// TestE2EClientAuth: a TLS listener given --ca requires a client
// certificate signed by it unless --client-auth optional.
func TestE2EClientAuth(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTestPKI(t, dir)
	for _, tc := range []struct {
		mode     []string
		withCert bool
		code     int
	}{
		{nil, false, 1},
		{nil, true, 0},
		{[]string{"--client-auth", "require"}, false, 1},
		{[]string{"--client-auth", "optional"}, false, 0},
	} {
		t.Run(fmt.Sprint(tc.mode, tc.withCert), func(t *testing.T) {
			args := append([]string{"listen", "--echo", "--cert", cert, "--key", key, "--ca", ca}, tc.mode...)
			l := startPeer(t, nil, io.Discard, binary(t), append(args, "tls://127.0.0.1:0?sni=cli.test")...)
			m := l.waitLine(t, regexpListening)
			require.NotNil(t, m)
			dargs := []string{"dial", "--ca", ca}
			if tc.withCert {
				dargs = append(dargs, "--cert", cert, "--key", key)
			}
			code, out, errOut := runBinary(t, []byte("hello"), append(dargs, m[1])...)
			require.Equal(t, tc.code, code, errOut)
			if code == 0 {
				require.Equal(t, "hello", string(out))
			} else {
				require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %s", errOut)
			}
		})
	}
}

// TestE2EFlagsAfterTheURI and the usage contract of the built binary.
func TestE2EUsage(t *testing.T) {
	echo := testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	code, out, errOut := runBinary(t, []byte("after"), "dial", "tcp://"+echo, "--progress", "off", "-w", "10s")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "after", string(out))

	code, out, _ = runBinary(t, nil, "--version")
	require.Equal(t, 0, code)
	require.Regexp(t, `^conduit \S+ .*go1\.`, string(out))
	code, out2, _ := runBinary(t, nil, "version")
	require.Equal(t, 0, code)
	require.Equal(t, string(out), string(out2))
}
