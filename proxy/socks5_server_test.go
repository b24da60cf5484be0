package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
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
	"syscall"
	"testing"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/stretchr/testify/require"
)

// socks5Logs is a slog handler's output that tests can read while the
// server writes to it.
type socks5Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *socks5Logs) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

// records returns the JSON records written so far.
func (l *socks5Logs) records(t testing.TB) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		out = append(out, m)
	}
	return out
}

func (l *socks5Logs) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// socks5Wait receives one ServeSOCKS5 result, failing the test after a
// minute (a hang, not a measure).
func socks5Wait(t testing.TB, errs <-chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(time.Minute):
		t.Fatal("ServeSOCKS5 did not return")
		return nil
	}
}

// socks5Run runs a peer program with a bound on its time, returning its
// standard output.
func socks5Run(t testing.TB, stdin io.Reader, path string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", filepath.Base(path), err, stderr.String())
	}
	return out, nil
}

// TestSOCKS5ServerCurl serves curl: --socks5-hostname (the proxy
// resolves) and --socks5 (curl resolves), without and with
// username/password, fetching a body byte for byte from a loopback HTTP
// server; a wrong password is refused.
func TestSOCKS5ServerCurl(t *testing.T) {
	curl := testutil.RequirePeer(t, "curl", "curl")
	body := socks5Random(t, 3<<20)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	t.Cleanup(web.Close)
	webPort := web.Listener.Addr().(*net.TCPAddr).Port
	fetch := func(proxyFlag, proxy, url string, extra ...string) ([]byte, error) {
		args := append([]string{"-sS", "--fail", "--max-time", "50", "--noproxy", "", proxyFlag, proxy}, extra...)
		return socks5Run(t, nil, curl, append(args, url)...)
	}

	var logs socks5Logs
	proxy, errs := socks5TestServer(t, &Server{Dial: socks5NetDial, Logger: logs.logger()})
	for _, tc := range []struct{ flag, url, dest string }{
		{"--socks5-hostname", "http://localhost:" + strconv.Itoa(webPort) + "/", "localhost:" + strconv.Itoa(webPort)},
		{"--socks5", "http://localhost:" + strconv.Itoa(webPort) + "/", "127.0.0.1:" + strconv.Itoa(webPort)},
	} {
		got, err := fetch(tc.flag, proxy, tc.url)
		require.NoError(t, err)
		require.True(t, bytes.Equal(body, got), "%s: body differs (%d bytes of %d)", tc.flag, len(got), len(body))
		require.NoError(t, socks5Wait(t, errs))
		recs := logs.records(t)
		rec := recs[len(recs)-1]
		require.Equal(t, tc.dest, rec["destination"], tc.flag)
		require.Equal(t, "ok", rec["result"])
		require.Greater(t, rec["down"], float64(len(body)))
		require.Greater(t, rec["up"], float64(0))
		require.Contains(t, rec["client"], "127.0.0.1:")
	}

	proxy, errs = socks5TestServer(t, &Server{Dial: socks5NetDial, Auth: &Auth{Username: "bob", Password: "hunter2"}})
	got, err := fetch("--socks5-hostname", proxy, web.URL+"/", "--proxy-user", "bob:hunter2")
	require.NoError(t, err)
	require.True(t, bytes.Equal(body, got), "body differs")
	require.NoError(t, socks5Wait(t, errs))

	_, err = fetch("--socks5-hostname", proxy, web.URL+"/", "--proxy-user", "bob:hunter3")
	require.Error(t, err)
	require.ErrorIs(t, socks5Wait(t, errs), ErrAuth)
	_, err = fetch("--socks5-hostname", proxy, web.URL+"/")
	require.Error(t, err)
	require.ErrorIs(t, socks5Wait(t, errs), ErrAuth)
}

// TestSOCKS5ServerNcat serves ncat, which sends a file, half-closes at
// its end and waits for the answer: the destination answers only once
// the half-close reached it, and the answer must reach ncat.
func TestSOCKS5ServerNcat(t *testing.T) {
	ncat := testutil.RequirePeer(t, "ncat", "ncat")
	dest := socks5Serve(t, "tcp4", socks5Summer)
	data := socks5Random(t, 2<<20)
	file := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.WriteFile(file, data, 0o600))
	send := func(proxy string, extra ...string) ([]byte, error) {
		f, err := os.Open(file)
		require.NoError(t, err)
		defer f.Close()
		args := append([]string{"--proxy", proxy, "--proxy-type", "socks5"}, extra...)
		return socks5Run(t, f, ncat, append(args, "127.0.0.1", strconv.Itoa(dest.Port))...)
	}

	proxy, errs := socks5TestServer(t, &Server{Dial: socks5NetDial})
	out, err := send(proxy)
	require.NoError(t, err)
	require.Equal(t, socks5SumLine(data), string(out))
	require.NoError(t, socks5Wait(t, errs))

	proxy, errs = socks5TestServer(t, &Server{Dial: socks5NetDial, Auth: &Auth{Username: "carol", Password: "pw"}})
	out, err = send(proxy, "--proxy-auth", "carol:pw")
	require.NoError(t, err)
	require.Equal(t, socks5SumLine(data), string(out))
	require.NoError(t, socks5Wait(t, errs))

	_, err = send(proxy, "--proxy-auth", "carol:wrong")
	require.Error(t, err)
	require.ErrorIs(t, socks5Wait(t, errs), ErrAuth)
}

// TestSOCKS5ServerOurClient runs our client against our server: the
// three address types, a half-close each way, the BND address, and the
// refusals (credentials, rules, a refused destination).
func TestSOCKS5ServerOurClient(t *testing.T) {
	echo := socks5Serve(t, "tcp4", socks5Echo)
	data := socks5Random(t, 1<<20)
	type seen struct {
		host string
		port uint16
	}
	allowed := make(chan seen, 16)
	s := &Server{Dial: socks5NetDial, Allow: func(host string, port uint16) bool {
		allowed <- seen{host, port}
		return host != "blocked.example" && port != 9
	}}
	proxy, errs := socks5TestServer(t, s)
	nextAllowed := func() seen {
		select {
		case v := <-allowed:
			return v
		case <-time.After(time.Minute):
			t.Fatal("Allow was not called")
			return seen{}
		}
	}
	port := uint16(echo.Port)
	targets := map[string]seen{
		echo.String():                          {"127.0.0.1", port},
		"localhost:" + strconv.Itoa(echo.Port): {"localhost", port},
	}
	if socks5HaveIPv6() {
		echo6 := socks5Serve(t, "tcp6", socks5Echo)
		targets[echo6.String()] = seen{"::1", uint16(echo6.Port)}
	}
	for target, want := range targets {
		c, err := socks5Dial(t, proxy, target, nil)
		require.NoError(t, err, target)
		require.Equal(t, want, nextAllowed())
		socks5RoundTrip(t, c, data)
		c.Close()
		require.NoError(t, socks5Wait(t, errs))
	}

	_, err := socks5Dial(t, proxy, "blocked.example:80", nil)
	require.ErrorIs(t, err, ErrNotAllowed)
	require.Equal(t, seen{"blocked.example", 80}, nextAllowed())
	require.ErrorIs(t, socks5Wait(t, errs), ErrNotAllowed)

	_, err = socks5Dial(t, proxy, "127.0.0.1:"+strconv.Itoa(socks5ClosedPort(t)), nil)
	nextAllowed()
	require.ErrorIs(t, err, endpoint.ErrRefused)
	require.True(t, endpoint.HasCause(socks5Wait(t, errs), endpoint.ErrRefused))

	authed, errs := socks5TestServer(t, &Server{Dial: socks5NetDial, Auth: &Auth{Username: "u", Password: "p"}})
	c, err := socks5Dial(t, authed, echo.String(), &Auth{Username: "u", Password: "p"})
	require.NoError(t, err)
	socks5RoundTrip(t, c, data)
	require.NoError(t, socks5Wait(t, errs))
	for _, auth := range []*Auth{{"u", "q"}, {"v", "p"}, {"u", "pp"}, {"u", ""}, nil} {
		_, err = socks5Dial(t, authed, echo.String(), auth)
		require.ErrorIs(t, err, ErrAuth, "%+v", auth)
		require.ErrorIs(t, socks5Wait(t, errs), ErrAuth)
	}
}

// socks5RawClient connects to a SOCKS5 server to speak the protocol by
// hand; its deadline bounds a hang.
func socks5RawClient(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	return c.(*net.TCPConn)
}

// socks5Request is a CONNECT request for a no-auth server.
func socks5Request(cmd, atyp byte, addr ...byte) []byte {
	return append([]byte{5, 1, 0, 5, cmd, 0, atyp}, addr...)
}

// TestSOCKS5ServerRequests sends requests by hand: the reply codes of
// commands, address types and names the server does not serve, and the
// BND address of a success.
func TestSOCKS5ServerRequests(t *testing.T) {
	ports := make(chan int, 1)
	dest := socks5Serve(t, "tcp4", func(c net.Conn) {
		ports <- c.RemoteAddr().(*net.TCPAddr).Port
		socks5Echo(c)
	})
	var dialed []string
	var mu sync.Mutex
	proxy, errs := socks5TestServer(t, &Server{Dial: func(ctx context.Context, target string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, target)
		mu.Unlock()
		return socks5NetDial(ctx, target)
	}})
	destPort := binary.BigEndian.AppendUint16(nil, uint16(dest.Port))
	name := func(s string) []byte { return append(append([]byte{byte(len(s))}, s...), destPort...) }

	cases := []struct {
		name  string
		req   []byte
		reply byte
	}{
		{"bind", socks5Request(2, 1, append([]byte{127, 0, 0, 1}, destPort...)...), 7},
		{"udp associate", socks5Request(3, 1, append([]byte{127, 0, 0, 1}, destPort...)...), 7},
		{"address type 2", socks5Request(1, 2, append([]byte{127, 0, 0, 1}, destPort...)...), 8},
		{"invalid name", socks5Request(1, 3, name("bad name!")...), 4},
		{"empty name", socks5Request(1, 3, name("")...), 4},
		{"name with a zone", socks5Request(1, 3, name("fe80::1%lo")...), 4},
	}
	for _, tc := range cases {
		c := socks5RawClient(t, proxy)
		_, err := c.Write(tc.req)
		require.NoError(t, err)
		got, err := io.ReadAll(c)
		c.Close()
		require.NoError(t, err, tc.name)
		require.Equal(t, []byte{5, 0, 5, tc.reply, 0, 1, 0, 0, 0, 0, 0, 0}, got, tc.name)
		require.Error(t, socks5Wait(t, errs))
	}
	mu.Lock()
	require.Empty(t, dialed)
	mu.Unlock()

	// An IP literal sent as a name is that address; the reply's BND is
	// the address the destination sees the proxy's connection from.
	mapped := append(net.ParseIP("::ffff:127.0.0.1").To16(), destPort...)
	for _, req := range [][]byte{
		socks5Request(1, 3, name("127.0.0.1")...),
		socks5Request(1, 1, append([]byte{127, 0, 0, 1}, destPort...)...),
		socks5Request(1, 4, mapped...),
		socks5Request(1, 3, name("::ffff:127.0.0.1")...),
	} {
		c := socks5RawClient(t, proxy)
		_, err := c.Write(append(req, "ping"...))
		require.NoError(t, err)
		reply := socks5Read(c, 12+4)
		require.NotNil(t, reply)
		require.Equal(t, []byte{5, 0, 5, 0, 0, 1, 127, 0, 0, 1}, reply[:10])
		require.Equal(t, <-ports, int(binary.BigEndian.Uint16(reply[10:12])))
		require.Equal(t, "ping", string(reply[12:]), "bytes sent right after the request are relayed")
		c.Close()
		socks5Wait(t, errs)
	}
	mu.Lock()
	d := "127.0.0.1:" + strconv.Itoa(dest.Port)
	require.Equal(t, []string{d, d, d, d}, dialed, "names that are addresses and IPv4-mapped addresses are the IPv4 address")
	mu.Unlock()
}

// TestSOCKS5ServerDialErrors checks the reply code for each cause of a
// failed dial, through our client's view of it.
func TestSOCKS5ServerDialErrors(t *testing.T) {
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	cases := []struct {
		err  error
		code byte
	}{
		{opErr(syscall.ECONNREFUSED), 5},
		{fmt.Errorf("conduit: %w", endpoint.ErrRefused), 5},
		{opErr(syscall.ENETUNREACH), 3},
		{opErr(syscall.EHOSTUNREACH), 4},
		{opErr(syscall.ETIMEDOUT), 4},
		{context.DeadlineExceeded, 4},
		{&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, 4},
		{fmt.Errorf("policy: %w", ErrNotAllowed), 2},
		{&SOCKSError{Code: 5}, 5},
		{&SOCKSError{Code: 2}, 2},
		{errors.New("something else"), 1},
	}
	results := make(chan error, 1)
	proxy, errs := socks5TestServer(t, &Server{Dial: func(ctx context.Context, target string) (net.Conn, error) {
		return nil, <-results
	}})
	for _, tc := range cases {
		results <- tc.err
		_, err := socks5Dial(t, proxy, "example.com:80", nil)
		var se *SOCKSError
		require.ErrorAs(t, err, &se, "%v", tc.err)
		require.Equal(t, tc.code, se.Code, "%v", tc.err)
		serr := socks5Wait(t, errs)
		require.ErrorIs(t, serr, tc.err)
		require.Equal(t, "proxy: socks5: dial example.com:80: "+tc.err.Error(), serr.Error())
	}
}

// TestSOCKS5ServerMisbehavingClients: garbage, a client that offers no
// method the server accepts, one that closes mid-request, and clients
// that stall the handshake, which the handshake timeout ends.
func TestSOCKS5ServerMisbehavingClients(t *testing.T) {
	dialed := make(chan string, 16)
	dial := func(ctx context.Context, target string) (net.Conn, error) {
		dialed <- target
		return socks5NetDial(ctx, target)
	}
	// Clients that stall meet a short handshake timeout; the others a
	// long one, so that a slow machine does not turn them into stalls.
	proxy, errs := socks5TestServer(t, &Server{Dial: dial, HandshakeTimeout: time.Minute})
	stallProxy, stallErrs := socks5TestServer(t, &Server{Dial: dial, HandshakeTimeout: 50 * time.Millisecond})
	cases := []struct {
		name  string
		send  []byte
		close bool // half-close after send
		reply []byte
		check func(t *testing.T, err error)
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, nil, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrProtocol)
			require.Equal(t, "proxy: socks5: greeting has version 71", err.Error())
		}},
		{"socks4", []byte{4, 1, 0, 80, 127, 0, 0, 1, 0}, false, nil, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrProtocol)
		}},
		{"only username/password offered", []byte{5, 1, 2}, false, []byte{5, 0xff}, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrAuth)
		}},
		{"no methods", []byte{5, 0}, false, []byte{5, 0xff}, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrAuth)
		}},
		{"closes mid-greeting", []byte{5, 3, 0}, true, nil, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrProtocol)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		}},
		{"closes mid-request", []byte{5, 1, 0, 5, 1, 0, 3, 20, 'a', 'b'}, true, []byte{5, 0}, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrProtocol)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		}},
		{"request version 4", []byte{5, 1, 0, 4, 1, 0, 1, 127, 0, 0, 1, 0, 80}, false, []byte{5, 0}, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrProtocol)
		}},
		{"stalls the greeting", nil, false, nil, func(t *testing.T, err error) {
			require.True(t, endpoint.HasCause(err, endpoint.ErrTimeout), "%v", err)
		}},
		{"stalls mid-greeting", []byte{5, 2, 0}, false, nil, func(t *testing.T, err error) {
			require.True(t, endpoint.HasCause(err, endpoint.ErrTimeout), "%v", err)
		}},
		{"stalls the request", []byte{5, 1, 0, 5, 1, 0}, false, []byte{5, 0}, func(t *testing.T, err error) {
			require.True(t, endpoint.HasCause(err, endpoint.ErrTimeout), "%v", err)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proxy, errs := proxy, errs
			if strings.HasPrefix(tc.name, "stalls") {
				proxy, errs = stallProxy, stallErrs
			}
			c := socks5RawClient(t, proxy)
			if tc.send != nil {
				_, err := c.Write(tc.send)
				require.NoError(t, err)
			}
			if tc.close {
				require.NoError(t, c.CloseWrite())
			}
			// The server answers what it answers, then closes: EOF ends
			// the read (or a reset, when it closed with bytes unread).
			got, _ := io.ReadAll(c)
			c.Close()
			require.Equal(t, string(tc.reply), string(got))
			err := socks5Wait(t, errs)
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "proxy: socks5: "), err.Error())
			tc.check(t, err)
		})
	}
	require.Empty(t, dialed)
}

// TestSOCKS5ServerDialBounded checks that the dial gets the handshake's
// deadline: a destination that never answers gets reply 4 when it ends.
func TestSOCKS5ServerDialBounded(t *testing.T) {
	hasDeadline := make(chan bool, 1)
	proxy, errs := socks5TestServer(t, &Server{HandshakeTimeout: 100 * time.Millisecond,
		Dial: func(ctx context.Context, target string) (net.Conn, error) {
			_, ok := ctx.Deadline()
			hasDeadline <- ok
			<-ctx.Done()
			return nil, ctx.Err()
		}})
	_, err := socks5Dial(t, proxy, "example.com:80", nil)
	require.True(t, <-hasDeadline)
	require.ErrorIs(t, err, endpoint.ErrTimeout)
	var se *SOCKSError
	require.ErrorAs(t, err, &se)
	require.Equal(t, byte(4), se.Code)
	require.ErrorIs(t, socks5Wait(t, errs), context.DeadlineExceeded)
}

// socks5Direct serves one connection with ServeSOCKS5 under ctx and
// returns the client side and ServeSOCKS5's result.
func socks5Direct(t *testing.T, ctx context.Context, s *Server) (*net.TCPConn, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	c.SetDeadline(time.Now().Add(time.Minute))
	sc, err := ln.Accept()
	require.NoError(t, err)
	done := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by the cleanup below
		defer wg.Done()
		done <- s.ServeSOCKS5(ctx, sc)
	}()
	t.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
	return c.(*net.TCPConn), done
}

// TestSOCKS5ServerRelayEnds checks how a relay ends: ctx ending ends it;
// a client that dies mid-transfer ends it and the destination sees the
// end; a client that never reads a flooding destination is ended by ctx.
func TestSOCKS5ServerRelayEnds(t *testing.T) {
	ended := make(chan error, 4)
	flood := socks5Serve(t, "tcp4", func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				ended <- err
				return
			}
		}
	})
	sink := socks5Serve(t, "tcp4", func(c net.Conn) {
		_, err := io.Copy(io.Discard, c)
		ended <- err
	})
	handshake := func(t *testing.T, c *net.TCPConn, target *net.TCPAddr) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, SOCKS5(ctx, c, target.String(), nil))
	}

	t.Run("ctx ends the relay", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c, done := socks5Direct(t, ctx, &Server{Dial: socks5NetDial})
		handshake(t, c, flood)
		require.NotNil(t, socks5Read(c, 1<<20), "the flood reaches the client")
		// Now never read again: the relay blocks writing to the client.
		cancel()
		require.ErrorIs(t, socks5Wait(t, done), context.Canceled)
		require.Error(t, <-ended, "the destination was closed")
	})
	t.Run("client dies mid-transfer", func(t *testing.T) {
		c, done := socks5Direct(t, context.Background(), &Server{Dial: socks5NetDial})
		handshake(t, c, sink)
		_, err := c.Write(socks5Random(t, 256<<10))
		require.NoError(t, err)
		require.NoError(t, c.SetLinger(0)) // close with a reset
		require.NoError(t, c.Close())
		socks5Wait(t, done)
		<-ended // the sink's copy ended: its connection was closed or reset
	})
	t.Run("client resets under a flood", func(t *testing.T) {
		c, done := socks5Direct(t, context.Background(), &Server{Dial: socks5NetDial})
		handshake(t, c, flood)
		require.NotNil(t, socks5Read(c, 1<<20))
		// Closing the client's read side while the flood continues: the
		// server's writes to the client fail once the client resets.
		require.NoError(t, c.SetLinger(0))
		require.NoError(t, c.Close())
		socks5Wait(t, done)
		require.Error(t, <-ended)
	})
}

// TestSOCKS5ServerNoDial pins that a Server without Dial fails at once.
func TestSOCKS5ServerNoDial(t *testing.T) {
	c, done := socks5Direct(t, context.Background(), &Server{})
	got, _ := io.ReadAll(c)
	require.Empty(t, got)
	require.EqualError(t, socks5Wait(t, done), "proxy: socks5: Server.Dial is nil")
}

// TestSOCKS5ServerRefusalNotReset: a client that sent more than the
// request (data it meant for the destination) and reads the refusal
// only after the server is done gets the refusal and an orderly end, not
// a reset for the bytes the server left unread.
func TestSOCKS5ServerRefusalNotReset(t *testing.T) {
	proxy, errs := socks5TestServer(t, &Server{Dial: socks5NetDial})
	c := socks5RawClient(t, proxy)
	req := socks5Request(2, 1, 127, 0, 0, 1, 0, 80) // BIND: reply 7
	_, err := c.Write(append(req, bytes.Repeat([]byte("early data "), 100)...))
	require.NoError(t, err)
	require.Error(t, socks5Wait(t, errs)) // the server has closed
	got, err := io.ReadAll(c)
	require.NoError(t, err, "the refusal was lost to a reset")
	require.Equal(t, []byte{5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0}, got)
}

// TestSOCKS5ServerOverPipes serves a client on a connection that is not
// TCP, to a destination that is not TCP either (as a Unix or vchan flow
// dialed through conduit would be): the reply's BND is 0.0.0.0:0 and the
// relay works without half-close.
func TestSOCKS5ServerOverPipes(t *testing.T) {
	var wg sync.WaitGroup
	defer wg.Wait()
	s := &Server{Dial: func(ctx context.Context, target string) (net.Conn, error) {
		near, far := net.Pipe()
		wg.Add(1)
		go func() { // ends when the relay closes near
			defer wg.Done()
			defer far.Close()
			io.Copy(far, far)
		}()
		return near, nil
	}}
	client, server := net.Pipe()
	defer client.Close()
	done := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		done <- s.ServeSOCKS5(context.Background(), server)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Our client over a pipe too; it reads the reply, BND included.
	spy := &socks5Spy{Conn: client}
	require.NoError(t, SOCKS5(ctx, spy, "dest.unix:1", nil))
	require.Equal(t, []byte{5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0}, spy.read, "BND is 0.0.0.0:0")
	client.SetDeadline(time.Now().Add(time.Minute))
	_, err := client.Write([]byte("over pipes"))
	require.NoError(t, err)
	require.Equal(t, "over pipes", string(socks5Read(client, len("over pipes"))))
	client.Close()
	// relay ends a direction that cannot half-close by closing the
	// connection; the other direction's copy then ends on a connection
	// relay closed itself, which is a clean end.
	require.NoError(t, socks5Wait(t, done))
}

// socks5Spy is a connection that keeps what it read, to check a reply.
type socks5Spy struct {
	net.Conn
	read []byte
}

func (s *socks5Spy) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	s.read = append(s.read, b[:n]...)
	return n, err
}
