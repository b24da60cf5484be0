package conduit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo is a handler that sends back everything it reads, then half-closes.
var echo = HandlerFunc(func(_ context.Context, f Flow) {
	io.Copy(f, f)
	f.CloseWrite()
})

// serve runs Serve in the background and returns the listener's URI; the
// server is shut down (and checked) when the test ends.
func serve(t *testing.T, c *Conduit, uri string, h Handler, opts ...ListenOption) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := c.Listen(ctx, uri, opts...)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- ServeListener(ctx, ln, h, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-errc)
	})
	return ln.URI()
}

// roundTrip writes n random bytes to f, half-closes, and checks that the
// same bytes come back before EOF.
func roundTrip(t *testing.T, f Flow, n int) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := f.Write(data)
		if err == nil {
			err = f.CloseWrite()
		}
		errc <- err
	}()
	h := sha256.New()
	got, err := io.Copy(h, f)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.Equal(t, int64(n), got)
	require.Equal(t, sha256.Sum256(data), [32]byte(h.Sum(nil)), "payload differs")
}

// transportCases are the URIs every transport test runs over.
func transportCases(t *testing.T) map[string]string {
	return map[string]string{
		"tcp4": "tcp://127.0.0.1:0",
		"tcp6": "tcp://[::1]:0",
		"unix": "unix://" + filepath.Join(t.TempDir(), "s.sock"),
		// TLS over TCP and over a Unix socket, with the test PKI.
		"tls":      "tls://127.0.0.1:0?sni=" + testServerName,
		"tls6":     "tls://[::1]:0",
		"tls+unix": "tls+unix://" + filepath.Join(t.TempDir(), "t.sock") + "?sni=" + testServerName,
		// vchan rings in shared memory, by domain id and by name, and TLS
		// over them.
		"vchan":       "vchan://0/echo",
		"vchan-named": "vchan://conduit-test/echo",
		"tls+vchan":   "tls+vchan://0/secure?sni=" + testServerName,
	}
}

func TestDialServeRoundTrip(t *testing.T) {
	for name, uri := range transportCases(t) {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(uri, "[::1]") && !haveIPv6() {
				t.Skip("no IPv6 loopback on this machine")
			}
			c := newTestConduit(t)
			target := serve(t, c, uri, echo)
			f, err := c.Dial(testCtx(t), target)
			require.NoError(t, err)
			defer f.Close()
			roundTrip(t, f, 1<<20)
		})
	}
}

func haveIPv6() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func TestZeroConduitWorks(t *testing.T) {
	var c Conduit
	defer c.Close()
	target := serve(t, &c, "tcp://127.0.0.1:0", echo)
	f, err := c.Dial(testCtx(t), target)
	require.NoError(t, err)
	defer f.Close()
	roundTrip(t, f, 1000)
}

func TestWritevThroughConduit(t *testing.T) {
	for name, uri := range transportCases(t) {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(uri, "[::1]") && !haveIPv6() {
				t.Skip("no IPv6 loopback")
			}
			c := newTestConduit(t)
			f, err := c.Dial(testCtx(t), serve(t, c, uri, echo))
			require.NoError(t, err)
			defer f.Close()
			bufs := net.Buffers{[]byte("hello, "), []byte("vectored "), []byte("world")}
			n, err := f.Writev(bufs)
			require.NoError(t, err)
			require.EqualValues(t, len("hello, vectored world"), n)
			require.Len(t, bufs, 3, "Writev must not consume the caller's slice")
			require.NoError(t, f.CloseWrite())
			got, err := io.ReadAll(f)
			require.NoError(t, err)
			require.Equal(t, "hello, vectored world", string(got))
		})
	}
}

func TestDialErrors(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	missing := filepath.Join(t.TempDir(), "nobody.sock")

	for _, tc := range []struct {
		uri     string
		is      error  // errors.Is target, if any
		message string // a fragment the message must hold
	}{
		{uri: fmt.Sprintf("tcp://127.0.0.1:%d", closedPort), is: ErrRefused, message: "refused"},
		{uri: "unix://" + missing, message: "nobody.sock"},
		{uri: "nosuchscheme://host:1", is: ErrUnknownScheme, message: "nosuchscheme"},
		{uri: "tcp://127.0.0.1:99999", message: "99999"},
		{uri: "tcp://127.0.0.1:-1", message: "127.0.0.1"},
		{uri: "tcp://127.0.0.1", message: "port"},
		{uri: "unix://", message: "unix"},
		{uri: "::not a uri", message: "::not a uri"},
		{uri: "", message: "conduit"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			c := New(nil)
			defer c.Close()
			f, err := c.Dial(testCtx(t), tc.uri)
			require.Error(t, err)
			require.Nil(t, f)
			assert.True(t, strings.HasPrefix(err.Error(), "conduit: "), "message %q lacks the package prefix", err)
			assert.Contains(t, err.Error(), tc.message)
			if tc.uri != "" {
				assert.Contains(t, err.Error(), tc.uri, "the message names the URI")
			}
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			var oe *OpError
			assert.ErrorAs(t, err, &oe)
		})
	}
	t.Run("every transport", testDialErrorsEveryTransport) // dialerrors_test.go
}

func TestListenErrors(t *testing.T) {
	c := New(nil)
	defer c.Close()
	ctx := testCtx(t)
	ln, err := c.Listen(ctx, "tcp://127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = c.Listen(ctx, ln.URI())
	require.Error(t, err, "the port is taken")
	assert.Contains(t, err.Error(), ln.URI())

	_, err = c.Listen(ctx, "unix://"+filepath.Join(t.TempDir(), "no", "such", "dir", "s.sock"))
	require.Error(t, err)

	_, err = c.Listen(ctx, "tls://127.0.0.1:0")
	require.Error(t, err, "a TLS listener needs a certificate")
}

func TestClosedListener(t *testing.T) {
	c := New(nil)
	defer c.Close()
	ln, err := c.Listen(testCtx(t), "tcp://127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	require.NoError(t, ln.Close(), "Close is idempotent")
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, err, ErrClosed)
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	require.NoError(t, r.Register("mem", &memTransport{}))
	err := r.Register("mem", &memTransport{})
	require.Error(t, err, "a kind registers once")
	assert.Contains(t, err.Error(), "mem")
	require.Error(t, r.Register("", &memTransport{}))
	require.Error(t, r.Register("x", nil))
	require.NoError(t, r.RegisterScheme("mem", parseMem))
	require.Error(t, r.RegisterScheme("mem", parseMem))
	require.Error(t, r.RegisterScheme("tcp", parseMem), "built-in schemes cannot be taken over")
	assert.Equal(t, []string{"mem"}, r.Kinds())

	def := NewDefaultRegistry(nil)
	for _, k := range []string{endpoint.KindTCP, endpoint.KindUnix} {
		_, ok := def.Transport(k)
		assert.True(t, ok, "default registry lacks %q", k)
	}
	require.Error(t, def.Register(endpoint.KindTCP, &memTransport{}))
}

func TestCustomTransport(t *testing.T) {
	reg := NewDefaultRegistry(nil)
	mt := &memTransport{}
	require.NoError(t, reg.Register("mem", mt))
	require.NoError(t, reg.RegisterScheme("mem", parseMem))
	c := New(&Config{Registry: reg})
	defer c.Close()
	target := serve(t, c, "mem://alpha", echo)
	assert.Equal(t, "mem://alpha", target)
	f, err := c.Dial(testCtx(t), "mem://alpha")
	require.NoError(t, err)
	defer f.Close()
	roundTrip(t, f, 64<<10)

	_, err = c.Dial(testCtx(t), "mem://nobody")
	require.ErrorIs(t, err, ErrRefused)
}

func TestUnknownEndpointKind(t *testing.T) {
	reg := NewRegistry()
	require.NoError(t, reg.RegisterScheme("mem", parseMem))
	c := New(&Config{Registry: reg})
	defer c.Close()
	_, err := c.Dial(testCtx(t), "mem://alpha")
	require.ErrorIs(t, err, ErrNoTransport)
	assert.Contains(t, err.Error(), `"mem"`)
}

func TestTrace(t *testing.T) {
	c := New(nil)
	defer c.Close()
	target := serve(t, c, "tcp://127.0.0.1:0", echo)
	var events []string
	var accepted atomic.Int32
	tr := &Trace{
		ResolveStart: func(uri string) { events = append(events, "resolve-start "+uri) },
		ResolveDone: func(uri string, eps []endpoint.Endpoint, err error) {
			events = append(events, fmt.Sprintf("resolve-done %d %v", len(eps), err))
		},
		ConnectStart: func(ep endpoint.Endpoint) { events = append(events, "connect-start "+ep.String()) },
		ConnectDone: func(ep endpoint.Endpoint, err error) {
			events = append(events, fmt.Sprintf("connect-done %s %v", ep, err))
		},
		Accept: func(local, remote net.Addr) { accepted.Add(1) },
	}
	f, err := c.Dial(WithTrace(testCtx(t), tr), target)
	require.NoError(t, err)
	f.Close()
	ep := strings.TrimPrefix(target, "tcp://")
	assert.Equal(t, []string{
		"resolve-start " + target,
		"resolve-done 1 <nil>",
		"connect-start tcp://" + ep,
		"connect-done tcp://" + ep + " <nil>",
	}, events)

	ln, err := c.Listen(WithTrace(testCtx(t), tr), "tcp://127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	f, err = c.Dial(testCtx(t), ln.URI())
	require.NoError(t, err)
	defer f.Close()
	g, err := ln.Accept()
	require.NoError(t, err)
	g.Close()
	assert.EqualValues(t, 1, accepted.Load())
}

func TestDialContextPlugsIntoHTTP(t *testing.T) {
	c := New(nil)
	defer c.Close()
	sock := filepath.Join(t.TempDir(), "http.sock")
	ln, err := c.Listen(testCtx(t), "unix://"+sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		require.ErrorIs(t, <-done, http.ErrServerClosed)
	}()

	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return c.DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	resp, err := client.Get("http://app.local/over-unix")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, "hello /over-unix", string(body))

	// Network/address form as http.Transport passes it for TCP.
	target := serve(t, c, "tcp://127.0.0.1:0", echo)
	conn, err := c.DialContext(testCtx(t), "tcp", strings.TrimPrefix(target, "tcp://"))
	require.NoError(t, err)
	conn.Close()
	_, err = c.DialContext(testCtx(t), "udp", "127.0.0.1:53")
	require.Error(t, err)
}

func TestServeGracefulShutdown(t *testing.T) {
	testutil.CheckLeaks(t)
	c := New(nil)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := c.Listen(ctx, "tcp://127.0.0.1:0")
	require.NoError(t, err)
	inHandler := make(chan struct{})
	handlerCtxDone := make(chan struct{})
	release := make(chan struct{})
	h := HandlerFunc(func(hctx context.Context, f Flow) {
		close(inHandler)
		<-hctx.Done() // shutdown is announced to handlers…
		close(handlerCtxDone)
		<-release // …which may still take their time
		f.Write([]byte("bye"))
	})
	errc := make(chan error, 1)
	go func() { errc <- ServeListener(ctx, ln, h, time.Minute) }()

	f, err := c.Dial(testCtx(t), ln.URI())
	require.NoError(t, err)
	defer f.Close()
	<-inHandler
	cancel()
	<-handlerCtxDone
	// No new connections once shutdown has begun.
	require.Eventually(t, func() bool {
		g, err := c.Dial(testCtx(t), ln.URI())
		if err == nil {
			g.Close()
		}
		return errors.Is(err, ErrRefused)
	}, 10*time.Second, 10*time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("Serve returned %v while a handler was running", err)
	default:
	}
	close(release)
	require.NoError(t, <-errc)
	got, err := io.ReadAll(f)
	require.NoError(t, err)
	assert.Equal(t, "bye", string(got), "the handler's last write arrives, then EOF")
}

func TestServeGracePeriodCutsOffStuckHandlers(t *testing.T) {
	testutil.CheckLeaks(t)
	c := New(nil)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := c.Listen(ctx, "tcp://127.0.0.1:0")
	require.NoError(t, err)
	in := make(chan struct{})
	h := HandlerFunc(func(_ context.Context, f Flow) {
		close(in)
		io.Copy(io.Discard, f) // ignores the context: returns only when its flow is closed
	})
	errc := make(chan error, 1)
	go func() { errc <- ServeListener(ctx, ln, h, time.Millisecond) }()
	f, err := c.Dial(testCtx(t), ln.URI())
	require.NoError(t, err)
	defer f.Close()
	<-in
	cancel()
	err = <-errc
	require.Error(t, err)
	assert.Contains(t, err.Error(), "grace period")
	_, err = io.ReadAll(f)
	require.NoError(t, err, "the cut-off flow was closed")
}

func TestMaxConns(t *testing.T) {
	c := New(nil)
	defer c.Close()
	ln, err := c.Listen(testCtx(t), "tcp://127.0.0.1:0", WithMaxConns(1))
	require.NoError(t, err)
	defer ln.Close()
	d1, err := c.Dial(testCtx(t), ln.URI())
	require.NoError(t, err)
	defer d1.Close()
	a1, err := ln.AcceptFlow()
	require.NoError(t, err)
	d2, err := c.Dial(testCtx(t), ln.URI()) // completes in the kernel backlog
	require.NoError(t, err)
	defer d2.Close()

	accepted := make(chan Flow, 1)
	go func() {
		f, err := ln.AcceptFlow()
		if err == nil {
			accepted <- f
		}
		close(accepted)
	}()
	// The second accept must wait for a free slot: prove it by checking
	// that the limit holds while the first flow is open, using the
	// listener's own slot accounting rather than time.
	require.Equal(t, 1, len(ln.slots))
	require.NoError(t, a1.Close())
	a2, ok := <-accepted
	require.True(t, ok)
	defer a2.Close()
	_, err = a2.Write([]byte("x"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = io.ReadFull(d2, b)
	require.NoError(t, err, "the second accepted flow is d2's")
}

func TestInteropSocatTCPServer(t *testing.T) {
	target := "tcp://" + testutil.Socat(t, "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "EXEC:cat")
	c := New(nil)
	defer c.Close()
	f, err := c.Dial(testCtx(t), target)
	require.NoError(t, err)
	defer f.Close()
	roundTrip(t, f, 4<<20)
}

func TestInteropSocatUnixServer(t *testing.T) {
	socat := testutil.RequirePeer(t, "socat", "socat")
	sock := filepath.Join(t.TempDir(), "echo.sock")
	cmd := exec.Command(socat, "-T", "30", "UNIX-LISTEN:"+sock+",fork", "EXEC:cat")
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()
	c := New(nil)
	defer c.Close()
	var f Flow
	require.Eventually(t, func() bool {
		var err error
		f, err = c.Dial(testCtx(t), "unix://"+sock)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	defer f.Close()
	roundTrip(t, f, 1<<20)
}

func TestInteropSocatClient(t *testing.T) {
	socat := testutil.RequirePeer(t, "socat", "socat")
	sock := filepath.Join(t.TempDir(), "srv.sock")
	for _, tc := range []struct{ name, uri, addr string }{
		{"tcp", "tcp://127.0.0.1:0", "TCP4:%s"},
		{"unix", "unix://" + sock, "UNIX-CONNECT:%s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(nil)
			defer c.Close()
			target := serve(t, c, tc.uri, echo)
			u, err := url.Parse(target)
			require.NoError(t, err)
			addr := u.Host
			if u.Scheme == "unix" {
				addr = u.Path
			}
			data := make([]byte, 1<<20)
			rand.Read(data)
			cmd := exec.Command(socat, "-t", "30", "-T", "30", "-", fmt.Sprintf(tc.addr, addr))
			cmd.Stdin = bytes.NewReader(data)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			require.NoError(t, err, stderr.String())
			require.Equal(t, sha256.Sum256(data), sha256.Sum256(out), "socat got back other bytes")
		})
	}
}
