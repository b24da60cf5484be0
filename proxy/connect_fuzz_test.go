package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// chunkReader yields its data in pieces of a fuzzer-chosen size, then
// EOF, counting what was read.
type chunkReader struct {
	data  []byte
	chunk int
	n     int
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if r.n == len(r.data) {
		return 0, io.EOF
	}
	k := min(len(b), r.chunk, len(r.data)-r.n)
	copy(b, r.data[r.n:r.n+k])
	r.n += k
	return k, nil
}

var hcResponseSeeds = []string{
	"HTTP/1.1 200 Connection established\r\n\r\n",
	"HTTP/1.1 200 OK\r\nVia: x\r\n\r\ntunnelled",
	"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
	"HTTP/1.1 200 OK\nA: b\n  folded\n\n",
	"HTTP/1.1 503 Service Unavailable\r\nX-Squid-Error: ERR_CONNECT_FAIL 111\r\n\r\n<html>",
	"SSH-2.0-x\r\n",
	"\x05\x00",
	"HTTP/1.1 200 OK\r\n",
}

// FuzzHTTPConnectResponse: the client's reading of arbitrary proxy
// bytes, delivered in pieces of any size, never panics, never reads past
// the bound, ends (the source ends with EOF), and on success hands back
// exactly the bytes read past the head.
func FuzzHTTPConnectResponse(f *testing.F) {
	for i, s := range hcResponseSeeds {
		f.Add([]byte(s), uint8(i*7+1))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		r := &chunkReader{data: data, chunk: int(chunk) + 1}
		h := newHeadReader(r, MaxHTTPHeadBytes)
		rest, err := readConnectResponse(h)
		if r.n > MaxHTTPHeadBytes {
			t.Fatalf("read %d bytes, more than the bound", r.n)
		}
		if err != nil {
			var he *HTTPError
			switch {
			case errors.As(err, &he):
				if he.StatusCode < 100 || he.StatusCode > 999 || he.StatusCode/100 == 2 {
					t.Fatalf("status %d in an error", he.StatusCode)
				}
				if strings.ContainsAny(he.Status, "\r\n\x00") || len(he.Status) > 3+1+128 {
					t.Fatalf("status %q is not one short printable line", he.Status)
				}
			case !errors.Is(err, ErrProtocol):
				t.Fatalf("error %v is neither an HTTPError nor a protocol error", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error on several lines: %q", err)
			}
			return
		}
		if !bytes.HasPrefix(data, []byte("HTTP/1.")) {
			t.Fatalf("accepted %q", data)
		}
		read := data[:r.n]
		if !bytes.HasSuffix(read, rest) {
			t.Fatalf("rest %q is not what was read past the head of %q", rest, read)
		}
		head := read[:len(read)-len(rest)]
		if !bytes.HasSuffix(head, []byte("\n\n")) && !bytes.HasSuffix(head, []byte("\n\r\n")) {
			t.Fatalf("head %q does not end with a blank line", head)
		}
	})
}

// memConn is a net.Conn without goroutines: reads come from a
// chunkReader, writes are kept, deadlines are ignored.
type memConn struct {
	r      *chunkReader
	mu     sync.Mutex
	out    bytes.Buffer
	closed bool
}

func (c *memConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(b)
}

func (c *memConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(b)
}

func (c *memConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *memConn) CloseWrite() error                { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

var hcRequestSeeds = []string{
	"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
	"CONNECT [2001:db8::1]:80 HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n\r\nearly",
	"CONNECT 127.0.0.1:22 HTTP/1.0\n\n",
	"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
	"CONNECT x HTTP/1.1\r\n\r\n",
	"\x05\x01\x00",
	"\x16\x03\x01\x00\x05hello",
	"CONNECT a:1 HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
}

// FuzzHTTPConnectRequest: the server's reading of arbitrary client
// bytes, in pieces of any size: the parser never panics, reads at most
// the bound and accepts only CONNECT to a valid host:port; the whole of
// ServeHTTPConnect (with a Dial that reaches an empty destination)
// answers every request with one of its statuses.
func FuzzHTTPConnectRequest(f *testing.F) {
	for i, s := range hcRequestSeeds {
		f.Add([]byte(s), uint8(i*5+1), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, withAuth bool) {
		r := &chunkReader{data: data, chunk: int(chunk) + 1}
		req, err := readConnectRequest(newHeadReader(r, MaxHTTPHeadBytes))
		if r.n > MaxHTTPHeadBytes {
			t.Fatalf("read %d bytes, more than the bound", r.n)
		}
		if err != nil {
			var re *requestError
			if errors.As(err, &re) {
				if re.status != 400 && re.status != 405 {
					t.Fatalf("status %d for a bad request", re.status)
				}
			} else if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
				t.Fatalf("unexpected error %v", err)
			}
		} else {
			if !bytes.HasPrefix(data, []byte("CONNECT ")) {
				t.Fatalf("accepted a request that is not CONNECT: %q", data)
			}
			if !validHost(req.host) || req.port == 0 {
				t.Fatalf("accepted target %q", req.target())
			}
			if _, _, err := net.SplitHostPort(req.target()); err != nil {
				t.Fatalf("target %q: %v", req.target(), err)
			}
		}

		c := &memConn{r: &chunkReader{data: data, chunk: int(chunk) + 1}}
		s := &Server{Dial: func(ctx context.Context, target string) (net.Conn, error) {
			return &memConn{r: &chunkReader{}}, nil
		}}
		if withAuth {
			s.Auth = &Auth{"u", "p"}
		}
		s.ServeHTTPConnect(context.Background(), c)
		out := c.out.String()
		if out == "" {
			if err == nil || errors.As(err, new(*requestError)) {
				t.Fatalf("no answer to %q", data)
			}
			return
		}
		ok := false
		for _, prefix := range []string{connectEstablished, "HTTP/1.1 400 ", "HTTP/1.1 405 ", "HTTP/1.1 407 "} {
			ok = ok || strings.HasPrefix(out, prefix)
		}
		if !ok {
			t.Fatalf("answer %q to %q", out, data)
		}
	})
}
