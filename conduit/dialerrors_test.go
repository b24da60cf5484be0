package conduit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/stack"
	"github.com/conduit-go/conduit/vchan"
)

// dyingPeerEnv makes this test binary the vchan peer of the reset case
// of TLS over vchan: a listener that accepts, reads the start of the
// ClientHello and kills itself. Its value is the store directory.
const dyingPeerEnv = "CONDUIT_TEST_DYING_VCHAN_PEER"

// dialFailure is one way a dial fails over one transport.
type dialFailure struct {
	transport string
	cause     error // ErrRefused, ErrTimeout, ErrReset or ErrClosed
	// setup makes the failing peer and returns the Conduit to dial with
	// and the URI to dial.
	setup func(t *testing.T, e *dialEnv) (*Conduit, string)
	// errno, when set, is the error of the system the transport hands
	// on as it is (Unix sockets are Go's net package): the transport's
	// own error matches it, and conduit's *OpError the shared cause.
	errno error
}

// dialEnv is what the cases of one transport share: the test PKI and a
// vchan store.
type dialEnv struct {
	pki   TLSConfig
	vchan *vchan.Config
}

// conduit returns a Conduit over the kernel's TCP, Unix sockets and
// vchans, with TLS over them, closed when the test ends.
func (e *dialEnv) conduit(t *testing.T) *Conduit {
	c := New(&Config{TLS: e.pki, Vchan: e.vchan})
	t.Cleanup(func() { c.Close() })
	return c
}

// stack returns a Conduit whose tcp:// runs over a userspace stack at
// 10.255.0.2, and the stack at 10.255.0.1 on the other end of its link.
func (e *dialEnv) stack(t *testing.T) (*Conduit, *stack.Stack, *stack.Stack) {
	a, b := channel.NewPair(1500, channel.FaultOptions{})
	t.Cleanup(func() { a.Close(); b.Close() })
	srv, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.255.0.1/24"), Link: a})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	cli, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.255.0.2/24"), Link: b})
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	c := New(&Config{Stack: cli, TLS: e.pki})
	t.Cleanup(func() { c.Close() })
	return c, cli, srv
}

// closedTCPPort returns a loopback port that was just free: nothing
// listens there.
func closedTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// staleUnixSocket returns the path of a socket file nobody listens on
// (its listener closed without removing it): connect is refused.
func staleUnixSocket(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	l.SetUnlinkOnClose(false)
	require.NoError(t, l.Close())
	return path
}

// fullBacklog returns a listening socket of backlog 1 that never accepts,
// with its accept queue filled by two parked connections: the kernel
// drops the SYNs of a further TCP connection (the dial times out) and
// refuses a further Unix connection with EAGAIN at once. sa is the
// address to bind; the bound address is returned in net's notation.
func fullBacklog(t *testing.T, domain int, sa syscall.Sockaddr) string {
	fd, err := syscall.Socket(domain, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	file := os.NewFile(uintptr(fd), "full backlog")
	t.Cleanup(func() { file.Close() })
	require.NoError(t, syscall.Bind(fd, sa))
	require.NoError(t, syscall.Listen(fd, 1))
	bound, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	network, addr := "unix", ""
	switch a := bound.(type) {
	case *syscall.SockaddrInet4:
		network, addr = "tcp", netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *syscall.SockaddrUnix:
		addr = a.Name
	}
	d := net.Dialer{Timeout: 10 * time.Second} // only against a hang
	for range 2 {
		c, err := d.Dial(network, addr)
		require.NoError(t, err, "parking a connection in the backlog")
		t.Cleanup(func() { c.Close() })
	}
	if network == "tcp" {
		// The handshake of a parked connection may still be on its way
		// into the queue when its connect returns; wait until both are
		// queued (for a listener, Unacked is the accept queue's length).
		require.Eventually(t, func() bool {
			info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
			return err == nil && info.Unacked >= 2
		}, 10*time.Second, time.Millisecond)
	}
	return addr
}

// silentListener returns a listener that accepts nothing: the kernel
// completes connections into its queue, and nobody answers them.
func silentListener(t *testing.T, network, addr string) string {
	l, err := net.Listen(network, addr)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// onFirstByte accepts one connection on l, reads one byte of it (the
// ClientHello has arrived), calls end and closes it; the listener is
// closed and the goroutine waited for when the test ends.
func onFirstByte[C net.Conn](t *testing.T, l net.Listener, accept func() (C, error), end func(C)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := c.Read(make([]byte, 1)); err == nil {
			end(c)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
}

// vchanListener listens on port of a fresh domain of e's store.
func (e *dialEnv) vchanListener(t *testing.T, name, port string) *vchan.Listener {
	cfg := e.vchan.Clone()
	cfg.Name = name
	l, err := vchan.Listen(context.Background(), cfg, port)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// dialFailures lists how dials fail, by cause and transport.
//
// A plain TCP, userspace TCP or Unix dial sees no reset: the kernel or
// the stack completes the handshake before any application sees the
// connection, and a reset answering the SYN is a refusal. A reset is
// seen by the part of a dial that talks to the peer's application, the
// TLS handshake.
func dialFailures() []dialFailure {
	var (
		sni    = "?sni=" + testServerName
		kernel = func(t *testing.T, e *dialEnv, uri string) (*Conduit, string) { return e.conduit(t), uri }
		inet   = &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
		sockIn = func(t *testing.T) *syscall.SockaddrUnix {
			return &syscall.SockaddrUnix{Name: filepath.Join(t.TempDir(), "full.sock")}
		}
		eagain  = syscall.EAGAIN
		refused = syscall.ECONNREFUSED
		reset   = syscall.ECONNRESET
	)
	return []dialFailure{
		// Refused: nothing listens there.
		{transport: "tcp", cause: ErrRefused, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, fmt.Sprintf("tcp://127.0.0.1:%d", closedTCPPort(t)))
		}},
		{transport: "stack", cause: ErrRefused, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			c, _, _ := e.stack(t)
			return c, "tcp://10.255.0.1:7"
		}},
		{transport: "unix", cause: ErrRefused, errno: refused, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, "unix://"+staleUnixSocket(t))
		}},
		{transport: "vchan", cause: ErrRefused, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			l := e.vchanListener(t, "", "web") // a live domain, but not this port
			return kernel(t, e, fmt.Sprintf("vchan://%d/nosuch", l.Domid()))
		}},
		{transport: "vchan-named", cause: ErrRefused, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, "vchan://nobody/web")
		}},
		{transport: "tls", cause: ErrRefused, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, fmt.Sprintf("tls://127.0.0.1:%d%s", closedTCPPort(t), sni))
		}},
		{transport: "tls+stack", cause: ErrRefused, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			c, _, _ := e.stack(t)
			return c, "tls://10.255.0.1:7" + sni
		}},
		{transport: "tls+unix", cause: ErrRefused, errno: refused, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, "tls+unix://"+staleUnixSocket(t)+sni)
		}},
		{transport: "tls+vchan", cause: ErrRefused, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, "tls+vchan://nobody/web"+sni)
		}},

		// Timeout: the dial's deadline passes while the peer does not
		// answer.
		{transport: "tcp", cause: ErrTimeout, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, "tcp://"+fullBacklog(t, syscall.AF_INET, inet))
		}},
		{transport: "stack", cause: ErrTimeout, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			c, _, _ := e.stack(t)
			return c, "tcp://10.255.0.3:80" // no such host on the link
		}},
		// The kernel refuses a Unix connection to a full backlog at once
		// with EAGAIN, which Go counts as a timeout (Errno.Timeout), as a
		// TCP dial to a full backlog ends in one.
		{transport: "unix", cause: ErrTimeout, errno: eagain, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, "unix://"+fullBacklog(t, syscall.AF_UNIX, sockIn(t)))
		}},
		{transport: "vchan", cause: ErrTimeout, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			l := e.vchanListener(t, "", "idle") // never accepts
			return kernel(t, e, fmt.Sprintf("vchan://%d/idle", l.Domid()))
		}},
		{transport: "vchan-named", cause: ErrTimeout, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			e.vchanListener(t, "idle-peer", "idle")
			return kernel(t, e, "vchan://idle-peer/idle")
		}},
		{transport: "tls", cause: ErrTimeout, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, "tls://"+silentListener(t, "tcp", "127.0.0.1:0")+sni)
		}},
		{transport: "tls+stack", cause: ErrTimeout, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			c, _, srv := e.stack(t)
			l, err := srv.ListenFlows(context.Background(), netip.MustParseAddrPort("10.255.0.1:443"), nil)
			require.NoError(t, err)
			t.Cleanup(func() { l.Close() }) // never accepts
			return c, "tls://10.255.0.1:443" + sni
		}},
		{transport: "tls+unix", cause: ErrTimeout, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return kernel(t, e, "tls+unix://"+silentListener(t, "unix", filepath.Join(t.TempDir(), "silent.sock"))+sni)
		}},
		{transport: "tls+vchan", cause: ErrTimeout, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			// A vchan dial completes on Accept: accept, and say nothing.
			l := e.vchanListener(t, "", "silent")
			onFirstByte(t, l, l.AcceptVchan, func(c *vchan.Conn) {
				io.Copy(io.Discard, c) // until the client gives up
			})
			return kernel(t, e, fmt.Sprintf("tls+vchan://%d/silent%s", l.Domid(), sni))
		}},

		// Reset: the peer ends the connection abruptly during the TLS
		// handshake.
		{transport: "tls", cause: ErrReset, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			onFirstByte(t, l, l.AcceptTCP, func(c *net.TCPConn) { c.SetLinger(0) }) // Close sends a RST
			return kernel(t, e, "tls://"+l.Addr().String()+sni)
		}},
		{transport: "tls+stack", cause: ErrReset, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			c, _, srv := e.stack(t)
			l, err := srv.ListenFlows(context.Background(), netip.MustParseAddrPort("10.255.0.1:443"), nil)
			require.NoError(t, err)
			// Closing a userspace stack resets its connections.
			onFirstByte(t, l, l.AcceptFlow, func(tcpflow.Flow) { srv.Close() })
			return c, "tls://10.255.0.1:443" + sni
		}},
		// Closing a Unix socket with data unread resets its peer.
		{transport: "tls+unix", cause: ErrReset, errno: reset, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			path := filepath.Join(t.TempDir(), "reset.sock")
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			require.NoError(t, err)
			onFirstByte(t, l, l.AcceptUnix, func(*net.UnixConn) {})
			return kernel(t, e, "tls+unix://"+path+sni)
		}},
		// A vchan peer whose process dies (another process: this test
		// binary again).
		{transport: "tls+vchan", cause: ErrReset, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			t.Setenv(dyingPeerEnv, e.vchan.Dir)
			p := testutil.StartProcess(t, os.Args[0], "-test.run=^TestDialErrors$/^every_transport$")
			os.Unsetenv(dyingPeerEnv) // t.Setenv restores it at cleanup anyway
			domid := p.WaitLine(t, regexp.MustCompile(`^listening (\d+)$`), 30*time.Second)[1]
			return kernel(t, e, "tls+vchan://"+domid+"/die"+sni)
		}},

		// Closed: the Conduit, or the stack it dials through, is closed.
		{transport: "tcp", cause: ErrClosed, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return closedConduit(t, e, fmt.Sprintf("tcp://127.0.0.1:%d", closedTCPPort(t)))
		}},
		{transport: "stack", cause: ErrClosed, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			c, cli, _ := e.stack(t)
			require.NoError(t, cli.Close())
			return c, "tcp://10.255.0.1:7"
		}},
		{transport: "unix", cause: ErrClosed, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return closedConduit(t, e, "unix://"+staleUnixSocket(t))
		}},
		{transport: "vchan", cause: ErrClosed, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return closedConduit(t, e, "vchan://6/web")
		}},
		{transport: "vchan-named", cause: ErrClosed, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return closedConduit(t, e, "vchan://nobody/web")
		}},
		{transport: "tls", cause: ErrClosed, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return closedConduit(t, e, fmt.Sprintf("tls://127.0.0.1:%d%s", closedTCPPort(t), sni))
		}},
		{transport: "tls+stack", cause: ErrClosed, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			c, cli, _ := e.stack(t)
			require.NoError(t, cli.Close())
			return c, "tls://10.255.0.1:443" + sni
		}},
		{transport: "tls+unix", cause: ErrClosed, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return closedConduit(t, e, "tls+unix://"+staleUnixSocket(t)+sni)
		}},
		{transport: "tls+vchan", cause: ErrClosed, setup: func(t *testing.T, e *dialEnv) (*Conduit, string) {
			return closedConduit(t, e, "tls+vchan://nobody/web"+sni)
		}},
	}
}

// closedConduit returns a closed Conduit and uri.
func closedConduit(t *testing.T, e *dialEnv, uri string) (*Conduit, string) {
	c := e.conduit(t)
	require.NoError(t, c.Close())
	return c, uri
}

// transportError returns the error under the innermost *OpError: the
// transport's own.
func transportError(err error) error {
	for {
		var oe *OpError
		if !errors.As(err, &oe) {
			return err
		}
		err = oe.Err
	}
}

var causeNames = map[error]string{ErrRefused: "refused", ErrTimeout: "timeout", ErrReset: "reset", ErrClosed: "closed"}

// testDialErrorsEveryTransport: a refused, timed out, reset or closed dial
// matches ErrRefused, ErrTimeout, ErrReset or ErrClosed over every
// transport alike, and no other of the first three; the transport's own
// error, under conduit's *OpError, matches the cause too (or, for Unix
// sockets, the errno that means it).
func testDialErrorsEveryTransport(t *testing.T) {
	if dir := os.Getenv(dyingPeerEnv); dir != "" {
		dyingVchanPeer(dir)
	}
	pki := testPKI(t)
	for _, tc := range dialFailures() {
		t.Run(causeNames[tc.cause]+"/"+tc.transport, func(t *testing.T) {
			e := &dialEnv{pki: pki, vchan: &vchan.Config{Dir: t.TempDir()}}
			c, uri := tc.setup(t, e)
			ctx := testCtx(t)
			if tc.cause == ErrTimeout {
				// The deadline that passes: the peer never answers.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 250*time.Millisecond)
				defer cancel()
			}
			f, err := c.Dial(ctx, uri)
			if f != nil {
				f.Close()
			}
			require.Error(t, err)
			var oe *OpError
			require.ErrorAs(t, err, &oe)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "conduit: dial "), msg)
			assert.NotContains(t, msg, "\n")

			assert.ErrorIs(t, err, tc.cause, "%s", msg)
			for _, other := range []error{ErrRefused, ErrTimeout, ErrReset} {
				if other != tc.cause {
					assert.NotErrorIs(t, err, other, "%s", msg)
				}
			}
			assert.Equal(t, tc.cause == ErrTimeout, oe.Timeout(), "%s", msg)

			own := transportError(err)
			if tc.errno != nil {
				assert.ErrorIs(t, own, tc.errno, "%s", msg)
				assert.True(t, endpoint.HasCause(own, tc.cause), "%s", msg)
			} else {
				assert.ErrorIs(t, own, tc.cause, "the transport's own error (%T) carries the cause: %s", own, msg)
			}
			if tc.cause == ErrTimeout {
				var te interface{ Timeout() bool }
				assert.True(t, errors.As(own, &te) && te.Timeout(), "the transport's error is a timeout: %s", msg)
			}
		})
	}
	t.Run("closed flow", testClosedFlowEveryTransport)
}

// testClosedFlowEveryTransport: a flow's Read and Write after its Close
// fail with errors matching ErrClosed over every transport.
func testClosedFlowEveryTransport(t *testing.T) {
	uris := transportCases(t)
	delete(uris, "tcp6")
	delete(uris, "tls6")
	uris["stack"] = "tcp://10.255.0.1:80"
	uris["tls+stack"] = "tls://10.255.0.1:443" + "?sni=" + testServerName
	e := &dialEnv{pki: testPKI(t), vchan: &vchan.Config{Dir: t.TempDir()}}
	for name, uri := range uris {
		t.Run(name, func(t *testing.T) {
			var srv, cli *Conduit
			if strings.HasSuffix(name, "stack") {
				var sa *stack.Stack
				cli, _, sa = e.stack(t)
				srv = New(&Config{Stack: sa, TLS: e.pki})
				t.Cleanup(func() { srv.Close() })
			} else {
				srv, cli = e.conduit(t), e.conduit(t)
			}
			f, err := cli.Dial(testCtx(t), serve(t, srv, uri, echo))
			require.NoError(t, err)
			require.NoError(t, f.Close())
			_, err = f.Read(make([]byte, 1))
			assert.ErrorIs(t, err, ErrClosed, "read: %v", err)
			_, err = f.Write([]byte("x"))
			assert.ErrorIs(t, err, ErrClosed, "write: %v", err)
		})
	}
}

// dyingVchanPeer is the peer of the reset case of TLS over vchan: it
// listens on port "die" of a fresh domain in the store dir, prints the
// domain id, accepts one vchan, reads a byte of it and kills itself.
func dyingVchanPeer(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	l, err := vchan.Listen(context.Background(), &vchan.Config{Dir: dir}, "die")
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "listening %d\n", l.Domid())
	c, err := l.AcceptVchan()
	if err != nil {
		fail(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		fail(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal ends the process
}
