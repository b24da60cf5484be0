package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/stretchr/testify/require"
)

// TestSOCKS5ClientDanted runs our client against Dante's server: a
// byte-exact echo through it to IPv4, IPv6 and domain-name destinations,
// a refused destination and one its rules block.
func TestSOCKS5ClientDanted(t *testing.T) {
	echo4 := socks5Serve(t, "tcp4", socks5Echo)
	blocked := socks5Serve(t, "tcp4", socks5Echo)
	proxy := socks5Danted(t, blocked.Port)
	data := socks5Random(t, 4<<20)

	t.Run("ipv4", func(t *testing.T) {
		c, err := socks5Dial(t, proxy, echo4.String(), nil)
		require.NoError(t, err)
		socks5RoundTrip(t, c, data)
	})
	t.Run("ipv6", func(t *testing.T) {
		if !socks5HaveIPv6() {
			t.Skip("no IPv6 loopback")
		}
		echo6 := socks5Serve(t, "tcp6", socks5Echo)
		c, err := socks5Dial(t, proxy, echo6.String(), nil)
		require.NoError(t, err)
		socks5RoundTrip(t, c, data)
	})
	t.Run("domain", func(t *testing.T) {
		c, err := socks5Dial(t, proxy, "localhost:"+strconv.Itoa(echo4.Port), nil)
		require.NoError(t, err)
		socks5RoundTrip(t, c, data)
	})
	t.Run("refused", func(t *testing.T) {
		_, err := socks5Dial(t, proxy, "127.0.0.1:"+strconv.Itoa(socks5ClosedPort(t)), nil)
		require.ErrorIs(t, err, endpoint.ErrRefused)
		var se *SOCKSError
		require.ErrorAs(t, err, &se)
		require.Equal(t, byte(5), se.Code)
		require.Equal(t, "proxy: socks5: connection refused by destination (reply 5)", err.Error())
	})
	t.Run("blocked", func(t *testing.T) {
		_, err := socks5Dial(t, proxy, blocked.String(), nil)
		require.ErrorIs(t, err, ErrNotAllowed)
		var se *SOCKSError
		require.ErrorAs(t, err, &se)
		require.Equal(t, byte(2), se.Code)
	})
}

// TestSOCKS5ClientMicrosocks runs our client against microsocks, without
// and with username/password.
func TestSOCKS5ClientMicrosocks(t *testing.T) {
	echo := socks5Serve(t, "tcp4", socks5Echo)
	data := socks5Random(t, 1<<20)
	t.Run("noauth", func(t *testing.T) {
		proxy := socks5Microsocks(t, "", "")
		for _, target := range []string{echo.String(), "localhost:" + strconv.Itoa(echo.Port)} {
			c, err := socks5Dial(t, proxy, target, nil)
			require.NoError(t, err, target)
			socks5Exchange(t, c, data)
		}
	})
	t.Run("auth", func(t *testing.T) {
		proxy := socks5Microsocks(t, "alice", "s3cret")
		c, err := socks5Dial(t, proxy, echo.String(), &Auth{Username: "alice", Password: "s3cret"})
		require.NoError(t, err)
		socks5Exchange(t, c, data)

		_, err = socks5Dial(t, proxy, echo.String(), &Auth{Username: "alice", Password: "wrong"})
		require.ErrorIs(t, err, ErrAuth)
		require.NotErrorIs(t, err, ErrProtocol)

		_, err = socks5Dial(t, proxy, echo.String(), nil)
		require.ErrorIs(t, err, ErrAuth)
	})
}

// socks5Read reads exactly n bytes from c, or returns nil.
func socks5Read(c net.Conn, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return nil
	}
	return b
}

// socks5Fake serves script on each connection of a loopback listener.
func socks5Fake(t *testing.T, script func(c net.Conn)) string {
	return socks5Serve(t, "tcp4", script).String()
}

// socks5ReplyOK is a successful reply binding 127.0.0.1:1080.
var socks5ReplyOK = []byte{5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38}

// TestSOCKS5ClientMisbehaving runs our client against servers that break
// the protocol, stop answering or refuse; each must end in its typed
// error, never a hang.
func TestSOCKS5ClientMisbehaving(t *testing.T) {
	const target = "192.0.2.1:80" // never dialed: the fakes answer
	greetAndRequest := func(c net.Conn) bool {
		if socks5Read(c, 3) == nil {
			return false
		}
		c.Write([]byte{5, 0})
		return socks5Read(c, 10) != nil
	}
	cases := []struct {
		name   string
		script func(c net.Conn)
		check  func(t *testing.T, err error)
	}{
		{"closes after the greeting", func(c net.Conn) { socks5Read(c, 3) }, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrProtocol)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		}},
		{"closes mid-reply", func(c net.Conn) {
			if greetAndRequest(c) {
				c.Write(socks5ReplyOK[:5])
			}
		}, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrProtocol)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		}},
		{"answers HTTP", func(c net.Conn) {
			socks5Read(c, 3)
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
		}, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrProtocol)
			require.Equal(t, "proxy: socks5: method selection has version 72", err.Error())
		}},
		{"unknown address type in the reply", func(c net.Conn) {
			if greetAndRequest(c) {
				c.Write([]byte{5, 0, 0, 9, 1, 2, 3, 4, 5, 6})
			}
		}, func(t *testing.T, err error) { require.ErrorIs(t, err, ErrProtocol) }},
		{"wrong version in the reply", func(c net.Conn) {
			if greetAndRequest(c) {
				c.Write([]byte{4, 0x5a, 0, 0, 0, 0, 0, 0})
			}
		}, func(t *testing.T, err error) { require.ErrorIs(t, err, ErrProtocol) }},
		{"wants credentials", func(c net.Conn) {
			socks5Read(c, 3)
			c.Write([]byte{5, 0xff})
		}, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrAuth)
			require.Equal(t, "proxy: socks5: proxy requires authentication", err.Error())
		}},
		{"chooses a method not offered", func(c net.Conn) {
			socks5Read(c, 3)
			c.Write([]byte{5, 2})
		}, func(t *testing.T, err error) { require.ErrorIs(t, err, ErrProtocol) }},
		{"refusal cut short", func(c net.Conn) {
			if greetAndRequest(c) {
				c.Write([]byte{5, 5})
			}
		}, func(t *testing.T, err error) { require.ErrorIs(t, err, endpoint.ErrRefused) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := socks5Dial(t, socks5Fake(t, tc.script), target, nil)
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "proxy: socks5: "), err.Error())
			require.NotContains(t, err.Error(), "\n")
			tc.check(t, err)
		})
	}

	t.Run("stalls", func(t *testing.T) {
		proxy := socks5Fake(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		c, err := net.Dial("tcp", proxy)
		require.NoError(t, err)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err = SOCKS5(ctx, c, target, nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, endpoint.HasCause(err, endpoint.ErrTimeout))
	})
	t.Run("cancelled while blocked", func(t *testing.T) {
		greeted := make(chan struct{})
		proxy := socks5Fake(t, func(c net.Conn) {
			socks5Read(c, 3)
			close(greeted)
			io.Copy(io.Discard, c)
		})
		c, err := net.Dial("tcp", proxy)
		require.NoError(t, err)
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- SOCKS5(ctx, c, target, nil) }()
		<-greeted
		cancel()
		err = <-done
		require.ErrorIs(t, err, context.Canceled)
	})
}

// TestSOCKS5ClientReplyCodes checks each reply code's error and cause.
func TestSOCKS5ClientReplyCodes(t *testing.T) {
	codes := make(chan byte, 1)
	proxy := socks5Fake(t, func(c net.Conn) {
		socks5Read(c, 3)
		c.Write([]byte{5, 0})
		socks5Read(c, 10)
		c.Write([]byte{5, <-codes, 0, 1, 0, 0, 0, 0, 0, 0})
	})
	cases := []struct {
		code  byte
		cause error
		text  string
	}{
		{1, nil, "general SOCKS server failure (reply 1)"},
		{2, ErrNotAllowed, "connection not allowed by the proxy's rules (reply 2)"},
		{3, syscall.ENETUNREACH, "network unreachable (reply 3)"},
		{4, endpoint.ErrTimeout, "host unreachable (reply 4)"},
		{5, endpoint.ErrRefused, "connection refused by destination (reply 5)"},
		{6, endpoint.ErrTimeout, "TTL expired (reply 6)"},
		{7, nil, "command not supported (reply 7)"},
		{8, nil, "address type not supported (reply 8)"},
		{9, nil, "unknown reply (reply 9)"},
		{255, nil, "unknown reply (reply 255)"},
	}
	for _, tc := range cases {
		codes <- tc.code
		_, err := socks5Dial(t, proxy, "192.0.2.1:80", nil)
		var se *SOCKSError
		require.ErrorAs(t, err, &se)
		require.Equal(t, tc.code, se.Code)
		require.Equal(t, "proxy: socks5: "+tc.text, err.Error())
		if tc.cause != nil {
			require.ErrorIs(t, err, tc.cause)
		}
		for _, other := range []error{ErrNotAllowed, endpoint.ErrRefused, endpoint.ErrTimeout, syscall.ENETUNREACH, ErrProtocol, ErrAuth} {
			if other != tc.cause {
				require.NotErrorIs(t, err, other, "reply %d", tc.code)
			}
		}
	}
}

// TestSOCKS5ClientExactReply checks that the reply is read exactly: bytes
// of the tunnelled stream sent in the same segment as the reply, after a
// BND of each address type, stay for the caller.
func TestSOCKS5ClientExactReply(t *testing.T) {
	binds := map[string][]byte{
		"ipv4":   {1, 10, 0, 0, 1, 0, 80},
		"ipv6":   append(append([]byte{4}, net.ParseIP("2001:db8::1")...), 0, 80),
		"domain": append(append([]byte{3, 13}, "proxy.example"...), 0, 80),
		"empty":  {3, 0, 0, 80},
	}
	for name, bind := range binds {
		t.Run(name, func(t *testing.T) {
			proxy := socks5Fake(t, func(c net.Conn) {
				socks5Read(c, 3)
				c.Write([]byte{5, 0})
				socks5Read(c, 4+1+len("example.com")+2)
				msg := append([]byte{5, 0, 0}, bind...)
				c.Write(append(msg, "hello, tunnel"...))
			})
			c, err := socks5Dial(t, proxy, "example.com:443", nil)
			require.NoError(t, err)
			got := socks5Read(c, len("hello, tunnel"))
			require.Equal(t, "hello, tunnel", string(got))
		})
	}
}

// socks5Recorder is a net.Conn that records what is written to it and
// the deadlines set on it, and reads from in.
type socks5Recorder struct {
	net.Conn // nil: only the methods below are called
	in       io.Reader
	written  bytes.Buffer
	writes   int
	deadline []time.Time
}

func (r *socks5Recorder) Read(b []byte) (int, error) { return r.in.Read(b) }
func (r *socks5Recorder) Write(b []byte) (int, error) {
	r.writes++
	return r.written.Write(b)
}
func (r *socks5Recorder) SetDeadline(d time.Time) error {
	r.deadline = append(r.deadline, d)
	return nil
}

// TestSOCKS5ClientWire checks the bytes our client sends, that a target
// it cannot send fails before any byte, and that the handshake leaves no
// deadline on the connection.
func TestSOCKS5ClientWire(t *testing.T) {
	ok := append([]byte{5, 0}, socks5ReplyOK...)
	cases := []struct {
		target string
		auth   *Auth
		in     []byte
		want   []byte
	}{
		{"192.0.2.1:80", nil, ok, []byte{5, 1, 0, 5, 1, 0, 1, 192, 0, 2, 1, 0, 80}},
		{"[::ffff:192.0.2.1]:80", nil, ok, []byte{5, 1, 0, 5, 1, 0, 1, 192, 0, 2, 1, 0, 80}},
		{"[2001:db8::1]:443", nil, ok, append(append([]byte{5, 1, 0, 5, 1, 0, 4}, net.ParseIP("2001:db8::1")...), 1, 187)},
		{"example.com:65535", nil, ok, append(append([]byte{5, 1, 0, 5, 1, 0, 3, 11}, "example.com"...), 255, 255)},
		{"192.0.2.1:80", &Auth{"u", "pw"}, append([]byte{5, 2, 1, 0}, socks5ReplyOK...),
			[]byte{5, 2, 0, 2, 1, 1, 'u', 2, 'p', 'w', 5, 1, 0, 1, 192, 0, 2, 1, 0, 80}},
		{"192.0.2.1:80", &Auth{"u", "pw"}, ok, []byte{5, 2, 0, 2, 5, 1, 0, 1, 192, 0, 2, 1, 0, 80}},
	}
	for _, tc := range cases {
		r := &socks5Recorder{in: bytes.NewReader(tc.in)}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		require.NoError(t, SOCKS5(ctx, r, tc.target, tc.auth), tc.target)
		cancel()
		require.Equal(t, tc.want, r.written.Bytes(), tc.target)
		require.Len(t, r.deadline, 2)
		require.False(t, r.deadline[0].IsZero())
		require.True(t, r.deadline[1].IsZero(), "the handshake left a deadline on the connection")
	}

	for _, target := range []string{"example.com", "example.com:http", "example.com:65536", ":80",
		strings.Repeat("a", 256) + ":80", "[fe80::1%eth0]:80"} {
		r := &socks5Recorder{in: bytes.NewReader(ok)}
		err := SOCKS5(context.Background(), r, target, nil)
		require.Error(t, err, target)
		require.True(t, strings.HasPrefix(err.Error(), "proxy: socks5: invalid target "), err.Error())
		require.Zero(t, r.writes, target)
	}
	for _, auth := range []*Auth{{"", "pw"}, {strings.Repeat("u", 256), "pw"}, {"u", strings.Repeat("p", 256)}} {
		r := &socks5Recorder{in: bytes.NewReader(ok)}
		require.Error(t, SOCKS5(context.Background(), r, "192.0.2.1:80", auth))
		require.Zero(t, r.writes)
	}
	// A 255-byte name is the longest there is.
	r := &socks5Recorder{in: bytes.NewReader(ok)}
	require.NoError(t, SOCKS5(context.Background(), r, strings.Repeat("a", 255)+":80", nil))

	// A context that has ended sends nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = &socks5Recorder{in: bytes.NewReader(ok)}
	require.ErrorIs(t, SOCKS5(ctx, r, "192.0.2.1:80", nil), context.Canceled)
	require.Zero(t, r.writes)
}

// TestSOCKS5ErrorsMatchOnlyTheirKind pins that an error of one kind does
// not match the other sentinels.
func TestSOCKS5ErrorsMatchOnlyTheirKind(t *testing.T) {
	err := error(&socks5Error{msg: "x", kind: ErrAuth})
	require.ErrorIs(t, err, ErrAuth)
	require.False(t, errors.Is(err, ErrProtocol))
	require.False(t, errors.Is(&socks5Error{msg: "y"}, ErrAuth))
}
