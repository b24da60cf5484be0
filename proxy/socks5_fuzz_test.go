package proxy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// socks5MemConn is an in-memory net.Conn: reads come from in (EOF at its
// end, never blocking), writes are kept. Safe for one reader and one
// writer at once.
type socks5MemConn struct {
	in *bytes.Reader

	mu  sync.Mutex
	out bytes.Buffer
}

func (c *socks5MemConn) Read(b []byte) (int, error) { return c.in.Read(b) }
func (c *socks5MemConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(b)
}
func (c *socks5MemConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}
func (c *socks5MemConn) Close() error { return nil }
func (c *socks5MemConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1080}
}
func (c *socks5MemConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}
func (c *socks5MemConn) SetDeadline(time.Time) error      { return nil }
func (c *socks5MemConn) SetReadDeadline(time.Time) error  { return nil }
func (c *socks5MemConn) SetWriteDeadline(time.Time) error { return nil }

// socks5AddrLen is the length of an address field of type atyp whose
// first byte is first, with the port; 0 for an unknown type.
func socks5AddrLen(atyp, first byte) int {
	switch atyp {
	case socks5AtypIPv4:
		return 4 + 2
	case socks5AtypIPv6:
		return 16 + 2
	case socks5AtypDomain:
		return 1 + int(first) + 2
	}
	return 0
}

// socks5CheckReply runs our client on a proxy's bytes (the first byte of
// data chooses whether it has credentials) and checks that it fails with
// one of its typed errors or succeeds having read exactly the method
// selection, the authentication status and the reply.
func socks5CheckReply(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	var auth *Auth
	if data[0]&1 == 1 {
		auth = &Auth{Username: "user", Password: "pass"}
	}
	server := data[1:]
	conn := &socks5MemConn{in: bytes.NewReader(server)}
	err := SOCKS5(context.Background(), conn, "example.com:443", auth)
	if err != nil {
		require.True(t, strings.HasPrefix(err.Error(), "proxy: socks5: "), err.Error())
		require.NotContains(t, err.Error(), "\n")
		var se *SOCKSError
		require.True(t, errors.As(err, &se) || errors.Is(err, ErrAuth) || errors.Is(err, ErrProtocol),
			"untyped error: %v", err)
		if se != nil {
			require.NotZero(t, se.Code)
		}
		return
	}
	// The oracle: where the reply ends.
	n := 2
	if server[1] == socks5MethodPassword {
		n += 2
	}
	n += 4 + socks5AddrLen(server[n+3], server[n+4])
	require.Equal(t, len(server)-n, conn.in.Len(), "read %d bytes, the handshake has %d", len(server)-conn.in.Len(), n)
}

// FuzzSOCKS5Reply feeds arbitrary proxy bytes to our client.
func FuzzSOCKS5Reply(f *testing.F) {
	for _, seed := range [][]byte{
		append([]byte{0, 5, 0}, socks5ReplyOK...),
		append(append([]byte{1, 5, 2, 1, 0}, socks5ReplyOK...), "data"...),
		append(append([]byte{0, 5, 0, 5, 0, 0, 3, 5}, "proxy"...), 0, 80, 'x'),
		append(append([]byte{0, 5, 0, 5, 0, 0, 4}, make([]byte, 16)...), 0, 80),
		{0, 5, 0, 5, 5, 0, 1},
		{1, 5, 2, 1, 1},
		{0, 5, 0xff},
		{0, 'H', 'T', 'T', 'P'},
	} {
		f.Add(seed)
	}
	f.Fuzz(socks5CheckReply)
}

// socks5CheckRequest serves a client's bytes (the first byte of data
// chooses whether the server wants credentials "user"/"pass") and checks
// that ServeSOCKS5 fails with its own error, or dials and relays exactly
// the bytes after the request. It reports whether the server dialed.
func socks5CheckRequest(t *testing.T, data []byte) (dialed bool) {
	if len(data) == 0 {
		return false
	}
	s := &Server{HandshakeTimeout: -1}
	if data[0]&1 == 1 {
		s.Auth = &Auth{Username: "user", Password: "pass"}
	}
	client := data[1:]
	var (
		target string
		dest   *socks5MemConn
	)
	s.Dial = func(ctx context.Context, t string) (net.Conn, error) {
		target = t
		dest = &socks5MemConn{in: bytes.NewReader(nil)}
		return dest, nil
	}
	conn := &socks5MemConn{in: bytes.NewReader(client)}
	err := s.ServeSOCKS5(context.Background(), conn)
	if err != nil {
		require.True(t, strings.HasPrefix(err.Error(), "proxy: socks5: "), err.Error())
		require.NotContains(t, err.Error(), "\n")
	}
	if dest == nil {
		return false
	}
	require.NoError(t, err)
	// The oracle: where the request ends.
	n := 2 + int(client[1])
	if s.Auth != nil {
		n += 1 + int(client[n+1]) + 1
		n += 1 + int(client[n])
	}
	n += 4 + socks5AddrLen(client[n+3], client[n+4])
	require.Equal(t, string(client[n:]), string(dest.written()), "relayed bytes after the request of %d bytes to %s", n, target)
	_, _, err = net.SplitHostPort(target)
	require.NoError(t, err, target)
	reply := conn.written()
	require.Equal(t, byte(5), reply[0])
	return true
}

// FuzzSOCKS5Request feeds arbitrary client bytes to our server.
func FuzzSOCKS5Request(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80, 'h', 'i'},
		append(append([]byte{0, 5, 2, 2, 0, 5, 1, 0, 3, 11}, "example.com"...), 1, 187),
		append(append([]byte{1, 5, 1, 2, 1, 4}, "user\x04pass"...), 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22),
		{1, 5, 1, 2, 1, 4, 'u', 's', 'e', 'r', 4, 'p', 'a', 's', 's'},
		{0, 5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80},
		{0, 'G', 'E', 'T', ' '},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) { socks5CheckRequest(t, data) })
}

// TestSOCKS5FuzzCases keeps the inputs the fuzzers found interesting:
// lengths at their bounds, empty fields, a reply cut anywhere.
func TestSOCKS5FuzzCases(t *testing.T) {
	long := bytes.Repeat([]byte{'a'}, 255)
	replies := [][]byte{
		append(append([]byte{0, 5, 0, 5, 0, 0, 3, 255}, long...), 0, 80, 'x', 'y'),
		{0, 5, 0, 5, 0, 0, 3, 0, 0, 80},
		{0, 5, 0, 5, 0, 0, 3},
		{1, 5, 2, 1},
		{0, 5, 0, 5, 0, 0, 4, 0, 0},
	}
	ok := append([]byte{0, 5, 0}, socks5ReplyOK...)
	for i := range ok {
		replies = append(replies, ok[:i])
	}
	for _, r := range replies {
		socks5CheckReply(t, r)
	}

	methods := make([]byte, 255)
	requests := []struct {
		in     []byte
		dialed bool
	}{
		{append(append(append([]byte{0, 5, 255}, methods...), 5, 1, 0, 3, 255), append(long, 0, 80)...), false}, // 255 a's: no dots, but a label over 63
		{append(append(append([]byte{0, 5, 255}, methods...), 5, 1, 0, 3, 4), "a.bc"...), false},                // no port
		{append(append(append([]byte{0, 5, 255}, methods...), 5, 1, 0, 3, 4), append([]byte("a.bc"), 0, 80, 'x')...), true},
		{append(append([]byte{0, 5, 2, 2, 0}, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80), "data"...), true},
		{append([]byte{1, 5, 1, 2, 1, 0, 0}, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80), false},
		{append(append([]byte{1, 5, 1, 2, 1, 4}, "user\x04pass"...), 5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 1, 0xff), true},
		{append(append([]byte{1, 5, 1, 2, 1, 4}, "user\x03pas"...), 5, 1, 0, 1, 127, 0, 0, 1, 0, 80), false},
		{[]byte{0, 5, 1, 0, 5, 1, 0, 3, 0, 0, 80}, false},
		{[]byte{0, 5, 1, 0, 5, 1, 0, 1, 127}, false},
		{[]byte{0, 5, 1, 0, 5, 1, 0, 4, 0, 0, 0}, false},
		{[]byte{0, 5, 1, 0, 5, 1, 0, 3, 9, 'l', 'o'}, false},
		{[]byte{0, 5, 1, 0, 5, 1}, false},
		{[]byte{0, 5, 0}, false},
		{[]byte{0, 5}, false},
		{[]byte{1, 5, 1, 2, 1, 255}, false},
	}
	for _, r := range requests {
		require.Equal(t, r.dialed, socks5CheckRequest(t, r.in), "%q", r.in)
	}
}
