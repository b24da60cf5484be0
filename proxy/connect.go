package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/conduit-go/conduit/endpoint"
)

// MaxHTTPHeadBytes bounds an HTTP CONNECT message head, the request line
// or status line with every header line and the blank line that ends them:
// the client's reading of a proxy's response (interim 1xx responses
// included) and the server's reading of a client's request. A longer head
// is a protocol violation.
const MaxHTTPHeadBytes = 64 << 10

// HTTPError is a proxy's refusal of an HTTP CONNECT request: a final
// response whose status is not 2xx. It unwraps to the cause it names
// where one applies:
//
//   - 407 Proxy Authentication Required: ErrAuth, and 401 Unauthorized
//     too (tinyproxy 1.11 answers wrong credentials with 401; to a
//     CONNECT, only the proxy can answer);
//   - 403 Forbidden: ErrNotAllowed;
//   - 502 Bad Gateway and 503 Service Unavailable: endpoint.ErrRefused
//     (the proxy could not reach the destination: squid answers a
//     refused or unreachable destination with 503, most others with 502);
//   - 504 Gateway Timeout: endpoint.ErrTimeout.
type HTTPError struct {
	// StatusCode is the response's three-digit status code.
	StatusCode int
	// Status is the code with the reason phrase the proxy sent, as in
	// "407 Proxy Authentication Required" (net/http's Response.Status),
	// its control and non-ASCII bytes replaced by '?' and cut at 128 bytes.
	Status string
}

// Error is "proxy: http connect: " and Status.
func (e *HTTPError) Error() string { return "proxy: http connect: " + e.Status }

// Unwrap returns the cause of the status (see HTTPError), or nil.
func (e *HTTPError) Unwrap() error {
	switch e.StatusCode {
	case 401, 407:
		return ErrAuth
	case 403:
		return ErrNotAllowed
	case 502, 503:
		return endpoint.ErrRefused
	case 504:
		return endpoint.ErrTimeout
	}
	return nil
}

// Timeout reports whether the proxy timed out reaching the destination
// (504), as endpoint.ErrTimeout's matches do.
func (e *HTTPError) Timeout() bool { return e.StatusCode == 504 }

// httpConnectError is an HTTP CONNECT failure that is not a status: its
// message names what went wrong and it unwraps to the cause (ErrProtocol,
// a read error, the context's error), whose own text is not repeated when
// it is one of the package's sentinels.
type httpConnectError struct {
	msg   string
	cause error
}

func (e *httpConnectError) Error() string { return "proxy: http connect: " + e.msg }
func (e *httpConnectError) Unwrap() error { return e.cause }

// protocolError is an httpConnectError wrapping ErrProtocol.
func protocolError(format string, args ...any) error {
	return &httpConnectError{msg: fmt.Sprintf(format, args...), cause: ErrProtocol}
}

// HTTPConnect asks the HTTP proxy at the other end of conn to open a
// tunnel to target ("host:port", host an IP address or a name): it sends
// "CONNECT host:port HTTP/1.1" with a Host header and, when auth is not
// nil, Basic Proxy-Authorization, and reads the proxy's response (at most
// MaxHTTPHeadBytes, interim 1xx responses skipped). On a 2xx response it
// returns the tunnel: conn itself when the proxy sent nothing after its
// response head, otherwise a net.Conn that yields those bytes first and
// then reads conn (it has conn's CloseWrite, Writev and WriteNodelay, and
// NetConn returns conn). conn can be any stream: TCP, a tls.Conn to an
// https:// proxy, or the tunnel of a previous hop.
//
// Errors: a non-2xx response is an *HTTPError; a response that is not
// HTTP/1.x, is malformed, is truncated or is longer than the bound wraps
// ErrProtocol; a failed read wraps the read's error.
//
// ctx bounds the handshake only: its deadline is set on conn and its
// cancellation interrupts the reads and writes; conn's deadline is reset
// to none when HTTPConnect returns. HTTPConnect never closes conn: on an
// error the caller should close it, since the stream's state is unknown.
func HTTPConnect(ctx context.Context, conn net.Conn, target string, auth *Auth) (net.Conn, error) {
	req, err := connectRequest(target, auth)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &httpConnectError{msg: err.Error(), cause: err}
	}
	release := bindContext(ctx, conn)
	out, err := httpConnect(conn, req)
	if release() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		if cerr := contextError(ctx, err); cerr != nil {
			var he *HTTPError
			if !errors.As(err, &he) {
				return nil, &httpConnectError{msg: cerr.Error(), cause: cerr}
			}
		}
		return nil, err
	}
	return out, nil
}

// connectRequest builds the CONNECT request for target.
func connectRequest(target string, auth *Auth) ([]byte, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return nil, &httpConnectError{msg: fmt.Sprintf("invalid target %q: want host:port", target)}
	}
	if !validHost(host) {
		return nil, &httpConnectError{msg: fmt.Sprintf("invalid target host %q", host)}
	}
	if _, ok := parsePort(port); !ok {
		return nil, &httpConnectError{msg: fmt.Sprintf("invalid target port %q", port)}
	}
	authority := net.JoinHostPort(host, port)
	var b bytes.Buffer
	b.WriteString("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n")
	if auth != nil {
		if strings.ContainsRune(auth.Username, ':') {
			// RFC 7617: the user-id cannot contain a colon.
			return nil, &httpConnectError{msg: "a Basic username cannot contain ':'"}
		}
		b.WriteString("Proxy-Authorization: Basic " +
			base64.StdEncoding.EncodeToString([]byte(auth.Username+":"+auth.Password)) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// validHost reports whether host is an IP address or a DNS-style name
// (letters, digits, '-', '_', '.'), safe to put in a request line.
func validHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	if strings.IndexByte(host, ':') >= 0 {
		return net.ParseIP(host) != nil // IPv6, no zone
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// parsePort parses a decimal port in 1-65535.
func parsePort(s string) (uint16, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// httpConnect writes req and reads the response.
func httpConnect(conn net.Conn, req []byte) (net.Conn, error) {
	if _, err := conn.Write(req); err != nil {
		return nil, &httpConnectError{msg: "sending the request: " + err.Error(), cause: err}
	}
	h := newHeadReader(conn, MaxHTTPHeadBytes)
	rest, err := readConnectResponse(h)
	if err != nil {
		return nil, err
	}
	if len(rest) == 0 {
		return conn, nil
	}
	return newLeftoverConn(conn, rest), nil
}

// readConnectResponse reads responses from h until a final one (interim
// 1xx responses other than 101 are skipped). On 2xx it returns the bytes
// read past the response head; otherwise an *HTTPError or an error.
func readConnectResponse(h *headReader) ([]byte, error) {
	for {
		code, status, err := readResponseHead(h)
		if err != nil {
			return nil, err
		}
		switch {
		case code >= 200 && code <= 299:
			return h.rest(), nil
		case code >= 100 && code <= 199 && code != 101:
			continue // interim: the final response follows
		}
		return nil, &HTTPError{StatusCode: code, Status: status}
	}
}

// readResponseHead reads one response head: the status line and the
// header lines up to the blank line. It returns the code and the status
// ("407 Proxy Authentication Required").
func readResponseHead(h *headReader) (int, string, error) {
	line, err := h.line(checkStatusPrefix)
	if err != nil {
		return 0, "", responseReadError(err)
	}
	code, status, ok := parseStatusLine(line)
	if !ok {
		return 0, "", protocolError("not an HTTP/1.x status line: %q", truncate(line, 64))
	}
	if err := readHeaders(h, nil); err != nil {
		return 0, "", responseReadError(err)
	}
	return code, status, nil
}

// responseReadError turns a headReader error into the client's error.
func responseReadError(err error) error {
	var he *httpConnectError
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return protocolError("the proxy closed the connection before the end of its response")
	}
	return &httpConnectError{msg: "reading the response: " + err.Error(), cause: err}
}

// checkStatusPrefix fails a (partial) status line that does not begin
// with "HTTP/".
func checkStatusPrefix(partial []byte) error {
	const prefix = "HTTP/"
	n := min(len(partial), len(prefix))
	if string(partial[:n]) != prefix[:n] {
		return protocolError("not HTTP: %q", truncate(partial, 64))
	}
	return nil
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason]".
func parseStatusLine(line []byte) (int, string, bool) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ' {
		return 0, "", false
	}
	c := line[9:12]
	for _, d := range c {
		if d < '0' || d > '9' {
			return 0, "", false
		}
	}
	code := int(c[0]-'0')*100 + int(c[1]-'0')*10 + int(c[2]-'0')
	if code < 100 {
		return 0, "", false
	}
	reason := line[12:]
	if len(reason) > 0 {
		if reason[0] != ' ' {
			return 0, "", false
		}
		reason = bytes.TrimSpace(reason[1:])
	}
	for _, b := range reason {
		if b < ' ' && b != '\t' || b == 0x7f {
			return 0, "", false
		}
	}
	status := string(c)
	if len(reason) > 0 {
		status += " " + sanitize(reason, 128)
	}
	return code, status, true
}

// sanitize returns b as a printable ASCII string of at most max bytes.
func sanitize(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	out := []byte(string(b))
	for i, c := range out {
		if c < ' ' || c > '~' {
			out[i] = '?'
		}
	}
	return string(out)
}

// truncate returns at most n bytes of b, for error messages.
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// readHeaders reads header lines up to the blank line that ends a head,
// checking each is "name: value" (obsolete line folding is accepted after
// a first header). For each header, fn, when not nil, is called with the
// name and the value trimmed of spaces; its error ends the reading.
func readHeaders(h *headReader, fn func(name, value []byte) error) error {
	first := true
	for {
		line, err := h.line(nil)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			if first {
				return protocolError("a header block starts with a continuation line")
			}
			if !validFieldValue(line) {
				return protocolError("invalid header continuation line")
			}
			continue
		}
		first = false
		i := bytes.IndexByte(line, ':')
		if i <= 0 || !validToken(line[:i]) {
			return protocolError("invalid header line %q", truncate(line, 64))
		}
		value := bytes.Trim(line[i+1:], " \t")
		if !validFieldValue(value) {
			return protocolError("invalid value in header %q", truncate(line[:i], 64))
		}
		if fn != nil {
			if err := fn(line[:i], value); err != nil {
				return err
			}
		}
	}
}

// validToken reports whether b is an RFC 9110 token.
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validFieldValue reports whether b holds only visible characters,
// spaces, tabs and obs-text (RFC 9110 field-value).
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// headReader reads an HTTP/1 message head line by line from r, reading
// at most max bytes of head. It keeps what it read past the last line
// for rest. Lines end with LF, an optional CR before it removed (RFC 9112
// §2.2 lets a recipient accept a bare LF).
type headReader struct {
	r     io.Reader
	max   int
	buf   []byte
	start int // the start of the current line
	scan  int // buf[start:scan] holds no LF
}

func newHeadReader(r io.Reader, max int) *headReader {
	return &headReader{r: r, max: max, buf: make([]byte, 0, min(4096, max))}
}

// errHeadTooLarge is returned by headReader.line past the bound.
var errHeadTooLarge = errors.New("head too large")

// line returns the next line without its terminator (valid until the next
// call). When check is not nil, it is asked about the line read so far
// (complete or not, without its terminator) and its error ends the
// reading: garbage fails as soon as it shows, rather than when a line end
// it may never send arrives or the bound is reached.
func (h *headReader) line(check func(partial []byte) error) ([]byte, error) {
	empty := 0
	for {
		if i := bytes.IndexByte(h.buf[h.scan:], '\n'); i >= 0 {
			end := h.scan + i
			line := h.buf[h.start:end]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			h.start, h.scan = end+1, end+1
			if check != nil {
				if err := check(line); err != nil {
					return nil, err
				}
			}
			return line, nil
		}
		h.scan = len(h.buf)
		if check != nil {
			partial := h.buf[h.start:]
			if n := len(partial); n > 0 && partial[n-1] == '\r' {
				partial = partial[:n-1]
			}
			if err := check(partial); err != nil {
				return nil, err
			}
		}
		if len(h.buf) >= h.max {
			return nil, protocolError("message head longer than %d bytes", h.max)
		}
		if len(h.buf) == cap(h.buf) {
			nb := make([]byte, len(h.buf), min(2*cap(h.buf), h.max))
			copy(nb, h.buf)
			h.buf = nb
		}
		n, err := h.r.Read(h.buf[len(h.buf):cap(h.buf)])
		h.buf = h.buf[:len(h.buf)+n]
		if err != nil && n == 0 {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if n == 0 {
			if empty++; empty > 100 {
				return nil, io.ErrNoProgress
			}
		}
	}
}

// rest returns the bytes read past the last line returned, in a buffer
// of their own.
func (h *headReader) rest() []byte {
	if h.start == len(h.buf) {
		return nil
	}
	return bytes.Clone(h.buf[h.start:])
}

// leftoverConn is a connection some of whose bytes were already read: it
// yields them before reading the connection again.
type leftoverConn struct {
	net.Conn
	buf []byte // read before Conn; only Read touches it
}

var _ net.Conn = (*leftoverConn)(nil)

func newLeftoverConn(c net.Conn, buf []byte) *leftoverConn {
	return &leftoverConn{Conn: c, buf: buf}
}

// Read yields the leftover bytes first, then reads the connection.
func (c *leftoverConn) Read(b []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(b, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(b)
}

// CloseWrite ends the write side of the connection, or returns an error
// wrapping errors.ErrUnsupported when it cannot half-close.
func (c *leftoverConn) CloseWrite() error {
	if h, ok := c.Conn.(halfCloser); ok {
		return h.CloseWrite()
	}
	return fmt.Errorf("proxy: %T cannot half-close: %w", c.Conn, errors.ErrUnsupported)
}

// Writev writes every buffer in order, with the connection's own Writev
// when it has one.
func (c *leftoverConn) Writev(bufs net.Buffers) (int64, error) {
	if w, ok := c.Conn.(interface {
		Writev(net.Buffers) (int64, error)
	}); ok {
		return w.Writev(bufs)
	}
	return bufs.WriteTo(c.Conn)
}

// WriteNodelay writes b and pushes it at once, with the connection's own
// WriteNodelay when it has one (otherwise it is Write).
func (c *leftoverConn) WriteNodelay(b []byte) (int, error) {
	if nd, ok := c.Conn.(interface{ WriteNodelay([]byte) (int, error) }); ok {
		return nd.WriteNodelay(b)
	}
	return c.Conn.Write(b)
}

// NetConn returns the connection the tunnel runs on.
func (c *leftoverConn) NetConn() net.Conn { return c.Conn }
