package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemoThirtyTimes: the README's first command works every time.
func TestDemoThirtyTimes(t *testing.T) {
	for i := 0; i < 30; i++ {
		code, out, errOut := runCmd(t, "demo", "--size", "4096")
		require.Equal(t, 0, code, "run %d\nstdout:\n%s\nstderr:\n%s", i, out, errOut)
	}
}

func TestBindSamePort(t *testing.T) {
	for i := 0; i < 50; i++ {
		l, pc, err := bindSamePort()
		require.NoError(t, err)
		require.Equal(t, l.Addr().(*net.TCPAddr).Port, pc.LocalAddr().(*net.UDPAddr).Port)
		l.Close()
		pc.Close()
	}
}

// TestUsageErrors: every usage error is one "conduit:" line with the
// reason and a hint, exit 2.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"dial", "--timeout", "-1s", "tcp://127.0.0.1:1"}, `--timeout "-1s": must not be negative`},
		{[]string{"dial", "--timeout"}, "--timeout needs a value (DURATION)"},
		{[]string{"dial", "--progress", "bogus", "tcp://127.0.0.1:1"}, `--progress "bogus": want auto, on, off`},
		{[]string{"dial", "--stack", "bogus", "tcp://127.0.0.1:1"}, `--stack "bogus": want kernel, direct`},
		{[]string{"demo", "--size", "-5"}, `--size "-5": must be at least 0`},
		{[]string{"demo", "extra"}, `unexpected argument "extra"`},
		{[]string{"resolve", "tcp://a:1", "tcp://b:1"}, `unexpected argument "tcp://b:1"`},
		{[]string{"dial"}, "missing URI"},
		{[]string{"dial", "-x", "tcp://127.0.0.1:1"}, "unknown flag -x"},
		{[]string{"dial", "--echo", "tcp://127.0.0.1:1"}, "unknown flag --echo"},
		{[]string{"dial", "--cert", "c.pem", "--key", "k.pem", "tcp://127.0.0.1:1"}, "--cert is for TLS URIs"},
		{[]string{"listen", "--cert", "c.pem", "--key", "k.pem", "unix:///tmp/x.sock"}, "--cert is for TLS URIs"},
		{[]string{"listen", "--client-auth", "optional", "tls://127.0.0.1:0"}, "needs a certificate"},
		{[]string{"listen", "--client-auth", "sometimes", "tls://127.0.0.1:0"}, `--client-auth "sometimes": want require, optional`},
		{[]string{"listen", "tls://127.0.0.1:0"}, "pass --cert FILE and --key FILE"},
		{[]string{"listen", "--echo", "--exec", "cat", "tcp://127.0.0.1:0"}, "exclude each other"},
		{[]string{"bench", "--duration", "0", "tcp://127.0.0.1:1"}, `--duration "0": must be more than 0`},
		{[]string{"dial", "tcp://127.0.0.1:99999"}, "port 99999 out of range"},
		{[]string{"dial", "tcp://127.0.0.1:99999", "--timeout", "1s"}, "port 99999 out of range"},
		{[]string{"completion", "tcsh"}, `unknown shell "tcsh"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := runWithInput(t, nil, tc.args...)
			require.Equal(t, 2, code, errOut)
			require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			require.True(t, strings.HasPrefix(errOut, "conduit: "), errOut)
			require.Contains(t, errOut, tc.msg)
			require.Contains(t, errOut, "(see conduit "+tc.args[0]+" --help)")
		})
	}
}

// TestParse: flags before, between and after the arguments, clusters of
// short flags, "--" and the --name=value form.
func TestParse(t *testing.T) {
	o, pos, err := parse(lookup("listen"), []string{"tcp://h:1", "-kvv", "--timeout=5s", "-w", "3s", "--grace", "0", "--", "-x"})
	require.NoError(t, err)
	assert.Equal(t, []string{"tcp://h:1", "-x"}, pos)
	assert.True(t, o.keepOpen)
	assert.Equal(t, 2, o.verbose)
	assert.Equal(t, 5*time.Second, o.timeout)
	assert.Equal(t, 3*time.Second, o.idle)
	assert.Equal(t, time.Duration(0), o.grace)
	o, _, err = parse(lookup("dial"), []string{"-w5s", "-timeout", "0", "tcp://h:1"})
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, o.idle)
	assert.Equal(t, time.Duration(0), o.timeout, "--timeout 0: no timeout")
	o, _, err = parse(lookup("dial"), []string{"tcp://h:1"})
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, o.timeout, "the default")
	assert.Equal(t, "auto", o.progress)
	_, _, err = parse(lookup("dial"), []string{"--help"})
	assert.Equal(t, errHelp, err)
}

// TestHelpListsOwnFlags: --help lists the flags of that subcommand only,
// every one of them.
func TestHelpListsOwnFlags(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runWithInput(t, nil, c.name, "--help")
			require.Equal(t, 0, code)
			require.True(t, strings.HasPrefix(errOut, "usage: conduit "+c.name), errOut)
			for _, f := range c.flags {
				assert.Contains(t, errOut, "--"+f.name)
			}
		})
	}
	_, _, dialHelp := runWithInput(t, nil, "dial", "--help")
	assert.NotContains(t, dialHelp, "--echo")
	assert.NotContains(t, dialHelp, "--grace")
	_, _, resolveHelp := runWithInput(t, nil, "resolve", "-h")
	assert.NotContains(t, resolveHelp, "--cert")
}

// TestCompletionScripts: every shell's script parses and offers every
// flag of every subcommand, the values of --stack and every scheme.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range shells {
		t.Run(sh, func(t *testing.T) {
			code, out, errOut := runWithInput(t, nil, "completion", sh)
			require.Equal(t, 0, code, errOut)
			script := string(out)
			for _, c := range commands {
				assert.Contains(t, script, c.name)
				for _, f := range c.flags {
					if sh == "fish" {
						assert.Contains(t, script, "-l "+f.name)
					} else {
						assert.Contains(t, script, "--"+f.name)
					}
				}
			}
			for _, want := range []string{"kernel direct", "srv://", "https+srv://", "tls+vchan://", "tls+unix://", "vchan://"} {
				assert.Contains(t, script, want)
			}
			path, err := exec.LookPath(sh)
			if err != nil {
				t.Logf("%s not installed: syntax not checked", sh)
				return
			}
			cmd := exec.Command(path, "-n")
			cmd.Stdin = strings.NewReader(script)
			msg, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s -n: %s", sh, msg)
		})
	}
}

// TestLogWriterErasesProgress: a log line never lands on the progress
// line.
func TestLogWriterErasesProgress(t *testing.T) {
	var b strings.Builder
	l := newLogWriter(&b)
	l.drawProgress("sent 1 B")
	l.printf("accepted x\n")
	l.drawProgress("sent 2 B")
	l.erase()
	assert.Equal(t, "\r\033[Ksent 1 B\r\033[Kaccepted x\n\r\033[Ksent 2 B\r\033[K", b.String())
	assert.False(t, showProgress("auto", &b, &b), "not a terminal")
	assert.True(t, showProgress("on", &b, &b))
	assert.False(t, showProgress("off", &b, &b))
}

// TestLineWriter: concurrent connections' output interleaves by whole
// lines only.
func TestLineWriter(t *testing.T) {
	var out strings.Builder
	var mu sync.Mutex
	a, b := &lineWriter{mu: &mu, w: &out}, &lineWriter{mu: &mu, w: &out}
	a.Write([]byte("aa"))
	b.Write([]byte("bb\nb"))
	a.Write([]byte("aa\n"))
	b.Write([]byte("b\n"))
	a.Write([]byte("tail"))
	require.NoError(t, a.Flush())
	assert.Equal(t, "bb\naaaa\nbb\ntail", out.String())
}

// listenProc runs listen in this process with its standard error
// readable line by line.
type listenProc struct {
	uri    string
	lines  chan string
	code   chan int
	cancel context.CancelFunc
}

func startListen(t *testing.T, stdin io.Reader, stdout io.Writer, args ...string) *listenProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	lp := &listenProc{lines: make(chan string, 100), code: make(chan int, 1), cancel: cancel}
	go func() {
		lp.code <- run(ctx, args, stdin, stdout, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	require.True(t, sc.Scan())
	lp.uri = strings.TrimPrefix(sc.Text(), "listening on ")
	done := make(chan struct{})
	go func() {
		for sc.Scan() {
			lp.lines <- sc.Text()
		}
		close(lp.lines)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-lp.code; <-done })
	return lp
}

func (lp *listenProc) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	for line := range lp.lines {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("no line starting %q", prefix)
	return ""
}

// TestListenServesOneConnection: without -k listen exits after its
// first connection; with -k it keeps accepting.
func TestListenServesOneConnection(t *testing.T) {
	var got safeBuffer
	lp := startListen(t, strings.NewReader("from stdin"), &got, "listen", "tcp://127.0.0.1:0")
	code, out, errOut := runWithInput(t, []byte("one\n"), "dial", lp.uri)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "from stdin", string(out))
	require.Equal(t, 0, <-lp.code)
	lp.code <- 0
	require.Equal(t, "one\n", got.String())

	got = safeBuffer{}
	lp = startListen(t, strings.NewReader("to the first only"), &got, "listen", "-k", "tcp://127.0.0.1:0")
	code, out, errOut = runWithInput(t, []byte("one\n"), "dial", lp.uri)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "to the first only", string(out))
	code, out, errOut = runWithInput(t, []byte("two\n"), "dial", lp.uri)
	require.Equal(t, 0, code, errOut)
	require.Empty(t, out, "standard input went to the first client")
	lp.waitLine(t, "closed")
	lp.waitLine(t, "closed")
	require.Equal(t, "one\ntwo\n", got.String())
}

// TestListenLogsHowConnectionsEnd: one line when a connection is
// accepted and one when it ends, cleanly or cut by the peer.
func TestListenLogsHowConnectionsEnd(t *testing.T) {
	lp := startListen(t, nil, io.Discard, "listen", "--discard", "tcp://127.0.0.1:0")
	c, err := net.Dial("tcp4", strings.TrimPrefix(lp.uri, "tcp://"))
	require.NoError(t, err)
	_, err = c.Write([]byte("12345"))
	require.NoError(t, err)
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	c.Close()
	require.Regexp(t, `^accepted 127\.0\.0\.1:\d+$`, lp.waitLine(t, "accepted"))
	require.Regexp(t, `^closed 127\.0\.0\.1:\d+: ended cleanly, 5 bytes received, 0 sent$`, lp.waitLine(t, "closed"))

	c, err = net.Dial("tcp4", strings.TrimPrefix(lp.uri, "tcp://"))
	require.NoError(t, err)
	_, err = c.Write([]byte("123"))
	require.NoError(t, err)
	lp.waitLine(t, "accepted")
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // a reset
	require.Regexp(t, `^closed 127\.0\.0\.1:\d+: cut by the peer after \d bytes received, 0 sent: .*reset`, lp.waitLine(t, "closed"))
}

// TestDialIdleTimeout: -w closes a connection on which nothing moves,
// even while standard input is still open.
func TestDialIdleTimeout(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	inR, inW := io.Pipe()
	var out, errb safeBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, []string{"dial", "-w", "200ms", "tcp://" + ln.Addr().String()}, inR, &out, &errb)
	inW.Close()
	require.Equal(t, 1, code, errb.String())
	require.Contains(t, errb.String(), "transfer cut short after 0 bytes sent and 0 received: idle for 200ms")
	(<-accepted).Close()
}
