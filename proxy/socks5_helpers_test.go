package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/stretchr/testify/require"
)

// socks5Serve runs handle on every connection accepted on a loopback
// listener of network ("tcp4" or "tcp6") until the test ends; cleanup
// closes the listener and the connections and waits for the handlers.
func socks5Serve(t testing.TB, network string, handle func(net.Conn)) *net.TCPAddr {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	ln, err := net.Listen(network, addr)
	require.NoError(t, err)
	return socks5ServeOn(t, ln, handle)
}

func socks5ServeOn(t testing.TB, ln net.Listener, handle func(net.Conn)) *net.TCPAddr {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		done  bool
	)
	wg.Add(1)
	go func() { // owned by the cleanup below
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if done {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = struct{}{}
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		done = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr)
}

// socks5Echo echoes what it reads and half-closes at EOF.
func socks5Echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
}

// socks5Summer reads until EOF, then answers with the count and SHA-256
// of what it read: only a half-close that arrived lets it answer.
func socks5Summer(c net.Conn) {
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		return
	}
	fmt.Fprintf(c, "%d %x\n", n, h.Sum(nil))
}

func socks5SumLine(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%d %x\n", len(b), s)
}

// socks5Random returns n random bytes.
func socks5Random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// socks5RoundTrip writes data on c, half-closes it and reads the echo to
// EOF, checking it byte for byte.
func socks5RoundTrip(t testing.TB, c net.Conn, data []byte) {
	t.Helper()
	werr := make(chan error, 1)
	go func() { // waited for below
		_, err := c.Write(data)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	require.NoError(t, <-werr)
	require.NoError(t, err)
	require.Equal(t, len(data), len(got))
	if !bytes.Equal(data, got) {
		i := 0
		for data[i] == got[i] {
			i++
		}
		t.Fatalf("echo differs from byte %d of %d", i, len(data))
	}
}

// socks5Exchange writes data on c and reads as many bytes back, checking
// them byte for byte, without half-closing (for microsocks, which ends
// both directions at a client's half-close).
func socks5Exchange(t testing.TB, c net.Conn, data []byte) {
	t.Helper()
	werr := make(chan error, 1)
	go func() { // waited for below
		_, err := c.Write(data)
		werr <- err
	}()
	got := make([]byte, len(data))
	_, err := io.ReadFull(c, got)
	require.NoError(t, <-werr)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "echo differs")
}

// socks5FreePort returns a port free on 127.0.0.1 and on ::1 (when the
// machine has IPv6) for a peer that must be given one.
func socks5FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		ln6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			ln6.Close()
			return port
		}
		if !socks5HaveIPv6() {
			return port
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return 0
}

var socks5IPv6 = sync.OnceValue(func() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
})

func socks5HaveIPv6() bool { return socks5IPv6() }

// socks5Danted starts danted on a free port of 127.0.0.1 (and ::1 when
// there is IPv6), passing connections from loopback to loopback but
// blocking destination port blockPort, with no authentication. It
// returns the address on 127.0.0.1.
func socks5Danted(t testing.TB, blockPort int) string {
	t.Helper()
	path := testutil.RequirePeer(t, "danted", "dante-server")
	port := socks5FreePort(t)
	conf := fmt.Sprintf(`logoutput: stderr
internal: 127.0.0.1 port = %[1]d
%[2]s
external: lo
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
client pass { from: ::1/128 to: ::/0 }
socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 port = %[3]d log: error }
socks block { from: 0.0.0.0/0 to: ::/0 port = %[3]d log: error }
socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 }
socks pass { from: 127.0.0.0/8 to: ::1/128 }
socks pass { from: ::1/128 to: 127.0.0.0/8 }
socks pass { from: ::1/128 to: ::1/128 }
`, port, socks5DantedV6(port), blockPort)
	if os.Geteuid() != 0 {
		conf = regexp.MustCompile(`(?m)^user\.\w+: .*\n`).ReplaceAllString(conf, "")
	}
	file := filepath.Join(t.TempDir(), "danted.conf")
	require.NoError(t, os.WriteFile(file, []byte(conf), 0o644))
	p := testutil.StartProcess(t, path, "-f", file, "-N", "2")
	t.Cleanup(func() {
		// SIGTERM, before StartProcess's SIGKILL: danted then ends its
		// child processes too, which a SIGKILL would leave running.
		p.Signal(syscall.SIGTERM)
		select {
		case <-p.Exited():
		case <-time.After(10 * time.Second):
		}
	})
	p.WaitLine(t, regexp.MustCompile(`Dante/server\S* v\S+ running`), 20*time.Second)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	testutil.WaitListening(t, p, netip.MustParseAddrPort(addr), path)
	return addr
}

func socks5DantedV6(port int) string {
	if !socks5HaveIPv6() {
		return ""
	}
	return fmt.Sprintf("internal: ::1 port = %d", port)
}

// socks5Microsocks starts microsocks on a free port of 127.0.0.1, with
// username/password when user is not empty, and returns its address.
func socks5Microsocks(t testing.TB, user, pass string) string {
	t.Helper()
	path := testutil.RequirePeer(t, "microsocks", "microsocks")
	port := socks5FreePort(t)
	args := []string{"-i", "127.0.0.1", "-p", strconv.Itoa(port)}
	if user != "" {
		args = append(args, "-u", user, "-P", pass)
	}
	p := testutil.StartProcess(t, path, args...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	testutil.WaitListening(t, p, netip.MustParseAddrPort(addr), path)
	return addr
}

// socks5Dial connects to the proxy at proxyAddr and runs our client's
// handshake to target; the connection is closed when the test ends.
func socks5Dial(t testing.TB, proxyAddr, target string, auth *Auth) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	if err := SOCKS5(ctx, c, target, auth); err != nil {
		c.Close() // as a caller does: a server lingers until the client closes
		return nil, err
	}
	return c, nil
}

// socks5TestServer serves s.ServeSOCKS5 on a loopback listener until the
// test ends and returns its address and the errors ServeSOCKS5 returned,
// one per connection.
func socks5TestServer(t testing.TB, s *Server) (string, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1024)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by the cleanup below
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.ServeSOCKS5(ctx, c)
				select {
				case errs <- err:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), errs
}

// socks5NetDial is a Server's Dial through the kernel.
func socks5NetDial(ctx context.Context, target string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", target)
}

// socks5ClosedPort returns a loopback port nothing listens on.
func socks5ClosedPort(t testing.TB) int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}
