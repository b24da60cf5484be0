package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
)

// hcFakeProxy is a proxy of the tests that reads a request head and then
// runs script on the connection. Each request head it read is sent on
// requests.
type hcFakeProxy struct {
	*hcServer
	requests chan string
}

func hcFake(t testing.TB, script func(c net.Conn, br *bufio.Reader)) *hcFakeProxy {
	f := &hcFakeProxy{requests: make(chan string, 16)}
	f.hcServer = hcListen(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(time.Minute)) // an upper bound against hangs
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			head.WriteString(line)
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		select {
		case f.requests <- head.String():
		default:
		}
		script(c, br)
	})
	return f
}

// hcReply is a script that writes resp and then echoes.
func hcReply(resp string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		if _, err := c.Write([]byte(resp)); err != nil {
			return
		}
		io.Copy(c, br)
		c.(halfCloser).CloseWrite()
		io.Copy(io.Discard, c)
	}
}

func hcConnect(t *testing.T, addr, target string, auth *Auth) (net.Conn, net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	c, err := HTTPConnect(ctx, raw, target, auth)
	return raw, c, err
}

func TestHTTPConnectRequestBytes(t *testing.T) {
	for _, tc := range []struct {
		target string
		auth   *Auth
		want   string
	}{
		{"127.0.0.1:443", nil, "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n"},
		{"example.com:8443", &Auth{"u", "p"}, "CONNECT example.com:8443 HTTP/1.1\r\nHost: example.com:8443\r\nProxy-Authorization: Basic dTpw\r\n\r\n"},
		{"[2001:db8::1]:80", nil, "CONNECT [2001:db8::1]:80 HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n"},
		{"[::1]:1", &Auth{"user", "pa:ss wörd"}, "CONNECT [::1]:1 HTTP/1.1\r\nHost: [::1]:1\r\nProxy-Authorization: Basic dXNlcjpwYTpzcyB3w7ZyZA==\r\n\r\n"},
	} {
		f := hcFake(t, hcReply("HTTP/1.1 200 Connection established\r\n\r\n"))
		_, c, err := hcConnect(t, f.Addr(), tc.target, tc.auth)
		require.NoError(t, err, tc.target)
		assert.Equal(t, tc.want, <-f.requests)
		c.Close()
	}
}

func TestHTTPConnectInvalidTarget(t *testing.T) {
	for _, target := range []string{
		"no-port", "a b:80", "host:0", "host:65536", "host:http", "host\r\nX-Evil: 1:80",
		":80", "[fe80::1%eth0]:80", "user@host:80", "host/path:80", "2001:db8::1:80",
	} {
		a, b := net.Pipe()
		_, err := HTTPConnect(context.Background(), a, target, nil)
		a.Close()
		b.Close()
		assert.Error(t, err, target)
		assert.False(t, errors.Is(err, ErrProtocol), target)
		assert.True(t, strings.HasPrefix(err.Error(), "proxy: http connect: "), err.Error())
	}
	a, b := net.Pipe()
	defer b.Close()
	defer a.Close()
	_, err := HTTPConnect(context.Background(), a, "h:1", &Auth{Username: "a:b"})
	assert.ErrorContains(t, err, "cannot contain ':'")
}

// A 2xx response with the tunnel's first bytes in the same write: they
// are read first, and the tunnel still half-closes.
func TestHTTPConnectBytesAfterResponse(t *testing.T) {
	f := hcFake(t, hcReply("HTTP/1.1 200 Connection established\r\nVia: fake\r\n\r\nearly bytes"))
	raw, c, err := hcConnect(t, f.Addr(), "127.0.0.1:1", nil)
	require.NoError(t, err)
	defer c.Close()
	assert.NotSame(t, raw, c, "bytes after the response need a wrapper")
	assert.Same(t, raw, c.(interface{ NetConn() net.Conn }).NetConn())
	got := make([]byte, len("early bytes"))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, "early bytes", string(got))
	hcExchange(t, c, hcRandom(t, 256<<10), true)
}

// Without bytes after the response, the tunnel is the connection itself
// (its CloseWrite, WriteNodelay, … as they are).
func TestHTTPConnectReturnsConnItself(t *testing.T) {
	f := hcFake(t, hcReply("HTTP/1.0 200 OK\r\n\r\n"))
	raw, c, err := hcConnect(t, f.Addr(), "127.0.0.1:1", nil)
	require.NoError(t, err)
	assert.Same(t, raw, c)
	hcExchange(t, c, []byte("ping"), true)
}

func TestHTTPConnectResponses(t *testing.T) {
	for _, tc := range []struct {
		name, resp string
		code       int
		status     string
		is         []error
		isNot      []error
	}{
		{"407", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n",
			407, "407 Proxy Authentication Required", []error{ErrAuth}, []error{ErrNotAllowed, endpoint.ErrRefused}},
		{"401 tinyproxy", "HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"Tinyproxy\"\r\n\r\n", 401, "401 Unauthorized", []error{ErrAuth}, nil},
		{"403", "HTTP/1.1 403 Forbidden\r\n\r\n", 403, "403 Forbidden", []error{ErrNotAllowed}, []error{ErrAuth}},
		{"502", "HTTP/1.1 502 Bad Gateway\r\n\r\n", 502, "502 Bad Gateway", []error{endpoint.ErrRefused}, []error{endpoint.ErrTimeout}},
		{"503 squid", "HTTP/1.1 503 Service Unavailable\r\nX-Squid-Error: ERR_CONNECT_FAIL 111\r\n\r\n", 503, "503 Service Unavailable", []error{endpoint.ErrRefused}, nil},
		{"504", "HTTP/1.1 504 Gateway Timeout\r\n\r\n", 504, "504 Gateway Timeout", []error{endpoint.ErrTimeout}, []error{endpoint.ErrRefused}},
		{"500", "HTTP/1.1 500 Internal Server Error\r\n\r\n", 500, "500 Internal Server Error", nil, []error{ErrAuth, ErrNotAllowed, endpoint.ErrRefused, endpoint.ErrTimeout, ErrProtocol}},
		{"101", "HTTP/1.1 101 Switching Protocols\r\n\r\n", 101, "101 Switching Protocols", nil, []error{ErrProtocol}},
		{"no reason", "HTTP/1.1 407\r\n\r\n", 407, "407", []error{ErrAuth}, nil},
		{"hostile reason", "HTTP/1.1 418 I'm a \xfftea\xfe pot\r\n\r\n", 418, "418 I'm a ?tea? pot", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := hcFake(t, hcReply(tc.resp))
			_, _, err := hcConnect(t, f.Addr(), "127.0.0.1:1", nil)
			var he *HTTPError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, tc.code, he.StatusCode)
			assert.Equal(t, tc.status, he.Status)
			assert.Equal(t, "proxy: http connect: "+tc.status, err.Error())
			for _, e := range tc.is {
				assert.ErrorIs(t, err, e)
			}
			for _, e := range tc.isNot {
				assert.NotErrorIs(t, err, e)
			}
			assert.Equal(t, tc.code == 504, he.Timeout())
			assert.Equal(t, tc.code == 504, endpoint.HasCause(err, endpoint.ErrTimeout))
		})
	}
}

func TestHTTPConnectAcceptedResponses(t *testing.T) {
	for _, tc := range []struct{ name, resp string }{
		{"interim 100", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"},
		{"several interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"},
		{"bare LF", "HTTP/1.1 200 OK\nVia: x\n\n"},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n"},
		{"299 with a body length to ignore", "HTTP/1.1 299 Whatever\r\nContent-Length: 10\r\n\r\n"},
		{"folded header", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := hcFake(t, hcReply(tc.resp))
			_, c, err := hcConnect(t, f.Addr(), "127.0.0.1:1", nil)
			require.NoError(t, err)
			hcExchange(t, c, []byte("data after the response"), true)
		})
	}
}

func TestHTTPConnectGarbage(t *testing.T) {
	for _, tc := range []struct{ name, resp string }{
		{"ssh banner", "SSH-2.0-OpenSSH_9.2\r\n"},
		{"http/2", "HTTP/2 200\r\n\r\n"},
		{"http/0.9", "HTTP/0.9 200 OK\r\n\r\n"},
		{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n"},
		{"letters in status", "HTTP/1.1 2x0 OK\r\n\r\n"},
		{"status 099", "HTTP/1.1 099 X\r\n\r\n"},
		{"no space", "HTTP/1.1 200OK\r\n\r\n"},
		{"header without colon", "HTTP/1.1 200 OK\r\nnot a header\r\n\r\n"},
		{"space in header name", "HTTP/1.1 200 OK\r\nX A: b\r\n\r\n"},
		{"NUL in header", "HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n"},
		{"starts with continuation", "HTTP/1.1 200 OK\r\n folded\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := hcFake(t, hcReply(tc.resp))
			_, _, err := hcConnect(t, f.Addr(), "127.0.0.1:1", nil)
			require.ErrorIs(t, err, ErrProtocol)
			var he *HTTPError
			assert.False(t, errors.As(err, &he))
			assert.True(t, strings.HasPrefix(err.Error(), "proxy: http connect: "), err.Error())
			assert.NotContains(t, err.Error(), "\n")
			assert.Equal(t, 1, strings.Count(err.Error(), "proxy:"), err.Error())
		})
	}
}

// Bytes that cannot begin an HTTP response fail at once, without waiting
// for a line end a non-HTTP peer never sends: the peer here stays silent
// after two bytes of a SOCKS5 reply, so only the early check ends the
// handshake before the context (an upper bound) does.
func TestHTTPConnectNotHTTPFailsEarly(t *testing.T) {
	release := make(chan struct{})
	f := hcFake(t, func(c net.Conn, br *bufio.Reader) {
		c.Write([]byte{5, 0})
		<-release
	})
	defer close(release)
	_, _, err := hcConnect(t, f.Addr(), "127.0.0.1:1", nil)
	require.ErrorIs(t, err, ErrProtocol)
	assert.False(t, endpoint.HasCause(err, endpoint.ErrTimeout), "%v", err)
}

func TestHTTPConnectClosedMidResponse(t *testing.T) {
	for _, resp := range []string{"", "HTT", "HTTP/1.1 200 Conn", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nVia: x\r\n"} {
		f := hcFake(t, func(c net.Conn, br *bufio.Reader) { c.Write([]byte(resp)) })
		_, _, err := hcConnect(t, f.Addr(), "127.0.0.1:1", nil)
		require.ErrorIs(t, err, ErrProtocol, "%q", resp)
		assert.Contains(t, err.Error(), "closed the connection", "%q", resp)
	}
}

func TestHTTPConnectHeadTooLarge(t *testing.T) {
	f := hcFake(t, func(c net.Conn, br *bufio.Reader) {
		c.Write([]byte("HTTP/1.1 200 OK\r\n"))
		line := []byte("X-Filler: " + strings.Repeat("a", 1000) + "\r\n")
		for {
			if _, err := c.Write(line); err != nil {
				return // the client gave up
			}
		}
	})
	_, _, err := hcConnect(t, f.Addr(), "127.0.0.1:1", nil)
	require.ErrorIs(t, err, ErrProtocol)
	assert.Contains(t, err.Error(), "longer than 65536 bytes")
}

// countingReader counts the bytes read from an endless source.
type countingReader struct {
	src io.Reader
	n   int
}

func (r *countingReader) Read(b []byte) (int, error) {
	n, err := r.src.Read(b)
	r.n += n
	return n, err
}

type repeatReader struct{ b []byte }

func (r repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], r.b)
	}
	return n, nil
}

// The response reader never reads more than the bound, whatever the
// proxy sends: one endless line, endless headers, endless interim
// responses.
func TestHTTPConnectResponseBounded(t *testing.T) {
	for _, src := range []io.Reader{
		repeatReader{[]byte("HTTP/1.1 200 OKKKKKKK")},
		io.MultiReader(strings.NewReader("HTTP/1.1 200 OK\r\n"), repeatReader{[]byte("X-A: b\r\n")}),
		repeatReader{[]byte("HTTP/1.1 100 Continue\r\n\r\n")},
	} {
		r := &countingReader{src: src}
		_, err := readConnectResponse(newHeadReader(r, MaxHTTPHeadBytes))
		assert.ErrorIs(t, err, ErrProtocol)
		assert.LessOrEqual(t, r.n, MaxHTTPHeadBytes)
	}
}

// A proxy that never answers: the context ends the handshake, and the
// connection's deadline is reset afterwards.
func TestHTTPConnectStallBoundedByContext(t *testing.T) {
	for _, how := range []string{"deadline", "cancel"} {
		t.Run(how, func(t *testing.T) {
			later := make(chan struct{})
			f := hcFake(t, func(c net.Conn, br *bufio.Reader) {
				<-later // stall, then show the connection still works
				c.Write([]byte("x"))
				io.Copy(io.Discard, c)
			})
			raw, err := net.Dial("tcp", f.Addr())
			require.NoError(t, err)
			defer raw.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if how == "deadline" {
				ctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
			} else {
				go func() { // ends when the fake has the request
					<-f.requests
					cancel()
				}()
			}
			_, err = HTTPConnect(ctx, raw, "127.0.0.1:1", nil)
			require.Error(t, err)
			if how == "deadline" {
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.True(t, endpoint.HasCause(err, endpoint.ErrTimeout))
			} else {
				assert.ErrorIs(t, err, context.Canceled)
			}
			assert.Equal(t, 1, strings.Count(err.Error(), "proxy:"), err.Error())
			close(later)
			// Not a deadline (that would hide the one HTTPConnect must
			// reset): a watchdog closes the connection against hangs.
			watchdog := time.AfterFunc(30*time.Second, func() { raw.Close() })
			defer watchdog.Stop()
			_, err = raw.Write([]byte("y"))
			require.NoError(t, err, "the handshake's write deadline was not reset")
			b := make([]byte, 1)
			_, err = io.ReadFull(raw, b)
			require.NoError(t, err, "the handshake's read deadline was not reset")
		})
	}
}

// An already ended context sends nothing.
func TestHTTPConnectEndedContext(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := HTTPConnect(ctx, a, "127.0.0.1:1", nil)
	assert.ErrorIs(t, err, context.Canceled)
}

// The client over a net.Pipe, which has no CloseWrite: the wrapper of a
// tunnel with early bytes says so with errors.ErrUnsupported.
func TestHTTPConnectLeftoverConnWithoutHalfClose(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { // ends when a is closed
		br := bufio.NewReader(b)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		b.Write([]byte("HTTP/1.1 200 OK\r\n\r\nhi"))
		io.Copy(io.Discard, b)
	}()
	c, err := HTTPConnect(context.Background(), a, "127.0.0.1:1", nil)
	require.NoError(t, err)
	got := make([]byte, 2)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, "hi", string(got))
	assert.ErrorIs(t, c.(halfCloser).CloseWrite(), errors.ErrUnsupported)
	n, err := c.(interface {
		Writev(net.Buffers) (int64, error)
	}).Writev(net.Buffers{[]byte("a"), []byte("b")})
	assert.NoError(t, err)
	assert.EqualValues(t, 2, n)
}

func TestParseStatusLine(t *testing.T) {
	for _, tc := range []struct {
		line   string
		code   int
		status string
		ok     bool
	}{
		{"HTTP/1.1 200 Connection established", 200, "200 Connection established", true},
		{"HTTP/1.0 200", 200, "200", true},
		{"HTTP/1.1 200 ", 200, "200", true},
		{"HTTP/1.1 407 Proxy Authentication Required", 407, "407 Proxy Authentication Required", true},
		{"HTTP/1.1 200 " + strings.Repeat("x", 300), 200, "200 " + strings.Repeat("x", 128), true},
		{"HTTP/1.1  200 OK", 0, "", false},
		{"HTTP/1.1 200\tOK", 0, "", false},
		{"HTTP/1.1 200 O\x01K", 0, "", false},
		{"HTTP/1.x 200 OK", 0, "", false},
		{"http/1.1 200 OK", 0, "", false},
		{"HTTP/1.1", 0, "", false},
	} {
		code, status, ok := parseStatusLine([]byte(tc.line))
		assert.Equal(t, tc.ok, ok, "%q", tc.line)
		assert.Equal(t, tc.code, code, "%q", tc.line)
		assert.Equal(t, tc.status, status, "%q", tc.line)
	}
}

// The head reader keeps what it read past the head, byte for byte.
func TestHeadReaderRest(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 1000)
	in := append([]byte("HTTP/1.1 200 OK\r\nA: b\r\n\r\n"), payload...)
	h := newHeadReader(bytes.NewReader(in), MaxHTTPHeadBytes)
	rest, err := readConnectResponse(h)
	require.NoError(t, err)
	// What the reader had not read yet is still in the source.
	assert.True(t, bytes.HasPrefix(payload, rest))
	assert.NotEmpty(t, rest)
}
