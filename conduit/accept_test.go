package conduit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/internal/devpki"
	"github.com/conduit-go/conduit/tlsflow"
)

func TestIsTemporaryAccept(t *testing.T) {
	wrap := func(errno syscall.Errno) error {
		return &OpError{Op: "accept", URI: "tcp://127.0.0.1:1",
			Err: &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}}
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO} {
		assert.True(t, isTemporaryAccept(errno), "%v", errno)
		assert.True(t, isTemporaryAccept(wrap(errno)), "wrapped %v", errno)
	}
	for _, err := range []error{
		net.ErrClosed,
		&OpError{Op: "accept", Err: &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}},
		wrap(syscall.EBADF),
		wrap(syscall.EINVAL),
		errors.New("conduit: something else"),
	} {
		assert.False(t, isTemporaryAccept(err), "%v", err)
	}
}

func TestAcceptBackoff(t *testing.T) {
	var b acceptBackoff
	var got []time.Duration
	for range 10 {
		got = append(got, b.next())
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms,
		time.Second, time.Second}, got)
	b.reset()
	assert.Equal(t, 5*ms, b.next())
}

// failingListener returns its scripted results in order (an error, or nil
// for a connection from net.Pipe), then blocks until closed.
type failingListener struct {
	mu      sync.Mutex
	script  []error
	peers   chan net.Conn // the client ends of the connections handed out
	closed  chan struct{}
	once    sync.Once
	forever error // returned on every Accept once the script is done, if set
}

func newFailingListener(script ...error) *failingListener {
	return &failingListener{script: script, peers: make(chan net.Conn, len(script)), closed: make(chan struct{})}
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.script) > 0 {
		err := l.script[0]
		l.script = l.script[1:]
		l.mu.Unlock()
		if err != nil {
			return nil, err
		}
		a, b := net.Pipe()
		l.peers <- a
		return b, nil
	}
	l.mu.Unlock()
	if l.forever != nil {
		select {
		case <-l.closed:
			return nil, &net.OpError{Op: "accept", Net: "pipe", Err: net.ErrClosed}
		default:
			return nil, l.forever
		}
	}
	<-l.closed
	return nil, &net.OpError{Op: "accept", Net: "pipe", Err: net.ErrClosed}
}

func (l *failingListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *failingListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// emfile is an accept error as the net package returns it.
func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// recordingTimers is an injected manual clock: it records the delays
// asked for and advances past each at once, or never when block is set
// (then each request is announced on asked).
type recordingTimers struct {
	*clock.Manual
	mu     sync.Mutex
	delays []time.Duration
	block  bool
	asked  chan time.Duration
}

func newRecordingTimers() *recordingTimers {
	return &recordingTimers{Manual: clock.NewManual(time.Unix(0, 0))}
}

func (r *recordingTimers) AfterFunc(d time.Duration, f func()) clock.Timer {
	r.mu.Lock()
	r.delays = append(r.delays, d)
	r.mu.Unlock()
	t := r.Manual.AfterFunc(d, f)
	if r.block {
		r.asked <- d
	} else {
		r.Advance(d)
	}
	return t
}

func (r *recordingTimers) got() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.delays...)
}

// lockedBuffer is a log sink for several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeRetriesTemporaryAcceptErrors: EMFILE from Accept is logged and
// retried with a back-off doubling from 5 ms to 1 s, reset by an accept
// that succeeds; the flows in between are served.
func TestServeRetriesTemporaryAcceptErrors(t *testing.T) {
	var script []error
	for range 10 {
		script = append(script, emfile())
	}
	script = append(script, nil, emfile(), emfile(), nil)
	ln := newFailingListener(script...)
	var logs lockedBuffer
	timers := newRecordingTimers()
	served := make(chan struct{}, 2)
	srv := &Server{
		Handler: HandlerFunc(func(_ context.Context, f Flow) {
			f.Write([]byte("hi"))
			served <- struct{}{}
		}),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Clock:  timers,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	for range 2 {
		var peer net.Conn
		select {
		case peer = <-ln.peers:
		case err := <-errc:
			t.Fatalf("Serve returned at an accept error: %v", err)
		}
		got, err := io.ReadAll(peer)
		require.NoError(t, err)
		assert.Equal(t, "hi", string(got))
		peer.Close()
		<-served
	}
	require.NoError(t, srv.Close())
	require.ErrorIs(t, <-errc, ErrServerClosed)

	ms := time.Millisecond
	assert.Equal(t, []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms,
		time.Second, time.Second, 5 * ms, 10 * ms}, timers.got())
	out := logs.String()
	assert.Equal(t, 12, strings.Count(out, "accept failed; retrying"), out)
	assert.Contains(t, out, "too many open files")
	assert.Contains(t, out, "level=WARN")
}

// TestServeBackoffInterruptedByClose: Close does not wait for the
// back-off's timer.
func TestServeBackoffInterruptedByClose(t *testing.T) {
	ln := newFailingListener()
	ln.forever = emfile()
	timers := newRecordingTimers()
	timers.block, timers.asked = true, make(chan time.Duration, 1)
	srv := &Server{Handler: echo, Clock: timers}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	require.Equal(t, minAcceptDelay, <-timers.asked)
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrServerClosed)
	case <-time.After(30 * time.Second): // hang guard: the timer never fires
		t.Fatal("Close did not interrupt the back-off")
	}
	require.NoError(t, <-closed)
}

// TestServeEndsOnPermanentAcceptError: an error that is neither temporary
// nor a shutdown ends Serve with that error.
func TestServeEndsOnPermanentAcceptError(t *testing.T) {
	bad := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EINVAL)}
	ln := newFailingListener(bad)
	srv := &Server{Handler: echo}
	err := srv.Serve(ln)
	require.ErrorIs(t, err, syscall.EINVAL)
	require.NoError(t, srv.Close())
}

// fdChildEnv runs TestServeSurvivesFDExhaustion's server role: "tcp",
// or "tls" followed by the paths of the certificate and key.
const fdChildEnv = "CONDUIT_TEST_FD_CHILD"

// fdChildLimit is the child's RLIMIT_NOFILE.
const fdChildLimit = 64

// TestServeSurvivesFDExhaustion runs an echo server in a child process
// (this test binary again) whose RLIMIT_NOFILE is 64, holds more
// connections to it than it has descriptors, waits for the server to log
// EMFILE, releases them and checks that the server serves again and
// exits cleanly. Over TLS the held connections stall their handshakes.
func TestServeSurvivesFDExhaustion(t *testing.T) {
	if spec := os.Getenv(fdChildEnv); spec != "" {
		fdChild(spec)
		return
	}
	t.Run("tcp", func(t *testing.T) {
		fdExhaustion(t, "tcp", New(nil), "tcp://%s")
	})
	t.Run("tls", func(t *testing.T) {
		ca, err := devpki.NewAuthority("conduit test CA")
		require.NoError(t, err)
		cert, err := ca.Issue(testServerName, "127.0.0.1")
		require.NoError(t, err)
		certPEM, keyPEM, err := devpki.PEM(cert)
		require.NoError(t, err)
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
		require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
		c := New(&Config{TLS: TLSConfig{Client: &tlsflow.Config{RootCAs: ca.Pool}}})
		fdExhaustion(t, "tls\n"+certFile+"\n"+keyFile, c, "tls://%s?sni="+testServerName)
	})
}

// fdExhaustion is TestServeSurvivesFDExhaustion over one transport: the
// child serves spec; c dials it at uriFormat with its host:port.
func fdExhaustion(t *testing.T, spec string, c *Conduit, uriFormat string) {
	defer c.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeSurvivesFDExhaustion$", "-test.v")
	cmd.Env = append(os.Environ(), fdChildEnv+"="+spec)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.WaitDelay = 10 * time.Second
	require.NoError(t, cmd.Start())
	exited := make(chan struct{}) // closed when the child has exited, with exitErr set
	var exitErr error
	var childOut lockedBuffer
	outDone := make(chan struct{})
	go func() { io.Copy(&childOut, stdout); close(outDone) }()
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	go func() { <-outDone; exitErr = cmd.Wait(); close(exited) }()
	defer func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()

	guard := time.After(60 * time.Second) // only against a hang
	waitLine := func(want string) string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the server exited before logging %q:\n%s", want, childOut.String())
				}
				if strings.Contains(l, want) {
					return l
				}
			case <-guard:
				t.Fatalf("no %q from the server:\n%s", want, childOut.String())
			}
		}
	}
	addr := strings.TrimPrefix(waitLine("listening "), "listening ")

	// More connections than the child has descriptors: the kernel
	// completes them all in the listen queue; the child accepts until
	// EMFILE.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range fdChildLimit + 16 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		held = append(held, c)
	}
	waitLine("too many open files")

	for _, c := range held {
		c.Close()
	}
	held = nil
	// The server serves again once the descriptors are back.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // hang guard
	defer cancel()
	f, err := c.Dial(ctx, fmt.Sprintf(uriFormat, addr))
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.SetDeadline(time.Now().Add(30*time.Second))) // hang guard
	roundTrip(t, f, 1000)

	stdin.Close() // tells the child to shut down
	select {
	case <-exited:
		require.NoError(t, exitErr, "the server exited with an error:\n%s", childOut.String())
	case <-guard:
		t.Fatal("the server did not exit")
	}
	assert.Contains(t, childOut.String(), "served until shutdown")
}

// fdChild is the server of TestServeSurvivesFDExhaustion: it lowers its
// descriptor limit, serves echo on loopback, logs to stderr, and shuts
// down when its stdin closes. Serve ending early is an error.
func fdChild(spec string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stdout, "FAIL:", err)
		os.Exit(1)
	}
	cfg := &Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	uri := "tcp://127.0.0.1:0"
	if kind, files, _ := strings.Cut(spec, "\n"); kind == "tls" {
		certFile, keyFile, _ := strings.Cut(files, "\n")
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			fail(err)
		}
		cfg.TLS.Server = &tlsflow.Config{Certificates: []tls.Certificate{cert}}
		uri = "tls://127.0.0.1:0?sni=" + testServerName
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fail(err)
	}
	lim.Cur = fdChildLimit
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fail(err)
	}
	c := New(cfg)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := c.Listen(ctx, uri)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "listening %s\n", ln.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := ServeListener(ctx, ln, echo, 10*time.Second); err != nil {
		fail(err)
	}
	fmt.Fprintln(os.Stdout, "served until shutdown")
}
