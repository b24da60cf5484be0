package tlsflow

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/internal/netaddr"
)

// Conn is a TLS flow over an inner net.Conn. It wraps a *tls.Conn and is a
// net.Conn; like *tls.Conn, one Read and one Write (or Writev) may run
// concurrently, and Close may be called from any goroutine.
//
// A Conn from Client or Server has completed its handshake. A Conn from a
// Listener handshakes on its first Read, Write, CloseWrite or Handshake
// call. Handshake errors are *HandshakeError; after a failed handshake the
// inner connection is closed and every call returns the same error.
type Conn struct {
	tc     *tls.Conn
	inner  net.Conn
	client bool
	name   string // the name verified by a client

	done  atomic.Bool // handshake completed
	hsMu  sync.Mutex  // serialises Handshake; guards hsErr
	hsErr error

	eof *innerConn // the inner connection as crypto/tls reads it
}

var _ net.Conn = (*Conn)(nil)

// newConn makes a Conn of tc over inner, without truncation detection.
func newConn(tc *tls.Conn, inner net.Conn, client bool, name string) *Conn {
	return &Conn{tc: tc, inner: inner, client: client, name: name}
}

// newTLSConn makes a Conn over inner; wrap makes the *tls.Conn over the
// connection it is given (tls.Client or tls.Server with their config).
func newTLSConn(inner net.Conn, client bool, name string, wrap func(net.Conn) *tls.Conn) *Conn {
	eof := &innerConn{Conn: inner}
	eof.nodelay, _ = inner.(interface{ WriteNodelay([]byte) (int, error) })
	c := newConn(wrap(eof), inner, client, name)
	c.eof = eof
	return c
}

// innerConn is the inner connection as crypto/tls sees it: it remembers
// whether a Read of the inner connection returned io.EOF with no data,
// and pushes every record it writes.
//
// crypto/tls reads only the bytes it needs for the next record, so it
// asks the inner connection for more after a record only when it has no
// complete record left: after a close_notify alert it asks for nothing.
// When tls.Conn.Read then returns io.EOF, the inner connection's own
// end-of-file having been seen means the stream ended without
// close_notify (crypto/tls reports a TCP close at a record boundary as a
// clean io.EOF, for the sake of web servers that do this).
type innerConn struct {
	net.Conn
	sawEOF  atomic.Bool
	nodelay interface{ WriteNodelay([]byte) (int, error) } // nil: plain Write
}

// Write sends what crypto/tls has made of one Write call: whole records,
// which it writes once each. An inner flow that holds small writes back
// (a tcpflow flow: Nagle's algorithm is on) is asked to push them at
// once, as a record is a whole message: held back behind an ACK the peer
// delays, a request-response protocol over TLS would stall for tens of
// milliseconds at each exchange.
func (r *innerConn) Write(b []byte) (int, error) {
	if r.nodelay != nil {
		return r.nodelay.WriteNodelay(b)
	}
	return r.Conn.Write(b)
}

func (r *innerConn) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if n == 0 && err == io.EOF {
		r.sawEOF.Store(true)
	}
	return n, err
}

// Client runs a client handshake over conn and returns the flow. ctx
// governs the handshake only, not the connection's life. On failure,
// including cancellation and an invalid cfg, conn is closed and the error is
// a *HandshakeError (or a configuration error).
func Client(ctx context.Context, conn net.Conn, cfg *Config) (*Conn, error) {
	tc, err := cfg.clientConfig()
	if err != nil {
		conn.Close()
		return nil, err
	}
	name := tc.ServerName
	if name == "" && !tc.InsecureSkipVerify {
		if name = peerName(conn); name == "" {
			conn.Close()
			return nil, fmt.Errorf("tlsflow: Config.ServerName is empty and the peer address %v has no IP to verify", conn.RemoteAddr())
		}
		tc = tc.Clone()
		tc.ServerName = name
	}
	c := newTLSConn(conn, true, name, func(nc net.Conn) *tls.Conn { return tls.Client(nc, tc) })
	if err := c.Handshake(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Server runs a server handshake over conn and returns the flow, with the
// same context and failure rules as Client.
func Server(ctx context.Context, conn net.Conn, cfg *Config) (*Conn, error) {
	tc, err := cfg.serverConfig()
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := newTLSConn(conn, false, "", func(nc net.Conn) *tls.Conn { return tls.Server(nc, tc) })
	if err := c.Handshake(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Handshake runs the handshake if it has not run yet; it returns nil at
// once when it has completed. ctx bounds this call's handshake: when it is
// cancelled or its deadline passes, the inner connection is closed and the
// error matches ErrHandshakeTimeout and the context's error. Concurrent
// callers wait for the handshake in progress.
func (c *Conn) Handshake(ctx context.Context) error {
	if c.done.Load() {
		return nil
	}
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.done.Load() {
		return nil
	}
	if c.hsErr != nil {
		return c.hsErr
	}
	err := c.tc.HandshakeContext(ctx)
	if err == nil {
		c.done.Store(true)
		return nil
	}
	c.inner.Close()
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		// The context may have fired after the handshake had already
		// failed, while the alert was being sent (a synchronous transport
		// such as net.Pipe blocks until the peer reads). crypto/tls keeps
		// the first failure: report it, keeping the context's error too.
		if cause := c.tc.Handshake(); cause != nil && isVerification(cause) {
			err = &alertNotSent{cause: cause, ctxErr: err}
		}
	}
	name := c.name
	if !c.client {
		name = c.tc.ConnectionState().ServerName
	}
	peer := ""
	if ra := c.inner.RemoteAddr(); ra != nil {
		peer = ra.String()
	}
	c.hsErr = classify(err, name, peer)
	return c.hsErr
}

func (c *Conn) handshake() error {
	if c.done.Load() {
		return nil
	}
	return c.Handshake(context.Background())
}

// Read reads application data, handshaking first if needed. It returns
// io.EOF once the peer has sent close_notify. When the inner connection
// ends without close_notify (a TCP FIN or a closed socket, at a record
// boundary or inside a record) the stream may have been cut short, by
// the peer dying or by an attacker, so Read returns ErrTruncated, which
// also matches io.ErrUnexpectedEOF, instead of io.EOF. Alerts from the
// peer are returned as *AlertError.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	n, err := c.tc.Read(b)
	switch {
	case err == nil:
	case err == io.EOF:
		if c.eof != nil && c.eof.sawEOF.Load() {
			err = ErrTruncated
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The inner connection ended inside a record.
		err = ErrTruncated
	default:
		err = wrapAlert(err)
	}
	return n, err
}

// Write writes b as one or more TLS records and sends them before
// returning (there is no write buffering).
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.tc.Write(b)
}

// WriteNodelay is Write: each Write is already flushed as records.
func (c *Conn) WriteNodelay(b []byte) (int, error) { return c.Write(b) }

// maxPlaintext is the largest plaintext of one TLS record.
const maxPlaintext = 16 << 10

// coalesce holds the pooled buffers Writev copies small buffers into.
var coalesce = sync.Pool{New: func() any {
	b := make([]byte, maxPlaintext)
	return &b
}}

// Writev writes the buffers in order as if concatenated, in as few TLS
// records as possible: small buffers are copied into a pooled 16 KiB buffer
// that is written once full, and whole 16 KiB multiples of large buffers are
// written in place. bufs is not modified. It returns the bytes written.
func (c *Conn) Writev(bufs net.Buffers) (int64, error) {
	switch len(bufs) {
	case 0:
		return 0, nil
	case 1:
		n, err := c.Write(bufs[0])
		return int64(n), err
	}
	if err := c.handshake(); err != nil {
		return 0, err
	}
	var (
		written int64
		bp      *[]byte
		pending int
	)
	defer func() {
		if bp != nil {
			coalesce.Put(bp)
		}
	}()
	write := func(p []byte) error {
		n, err := c.tc.Write(p)
		written += int64(n)
		return err
	}
	for _, b := range bufs {
		for len(b) > 0 {
			if pending == 0 && len(b) >= maxPlaintext {
				n := len(b) - len(b)%maxPlaintext
				if err := write(b[:n]); err != nil {
					return written, err
				}
				b = b[n:]
				continue
			}
			if bp == nil {
				bp = coalesce.Get().(*[]byte)
			}
			k := copy((*bp)[pending:], b)
			pending += k
			b = b[k:]
			if pending == maxPlaintext {
				if err := write((*bp)[:pending]); err != nil {
					return written, err
				}
				pending = 0
			}
		}
	}
	if pending > 0 {
		if err := write((*bp)[:pending]); err != nil {
			return written, err
		}
	}
	return written, nil
}

// WritevNodelay is Writev: every Writev is flushed before it returns.
func (c *Conn) WritevNodelay(bufs net.Buffers) (int64, error) { return c.Writev(bufs) }

// CloseWrite sends close_notify (tls.Conn.CloseWrite): the peer reads
// io.EOF and may still write back; this side may no longer write. The inner
// connection stays fully open.
func (c *Conn) CloseWrite() error {
	if err := c.handshake(); err != nil {
		return err
	}
	return c.tc.CloseWrite()
}

// Close sends close_notify if the handshake completed (bounded by a
// five-second write deadline) and closes the inner connection.
func (c *Conn) Close() error {
	return c.tc.Close()
}

// ConnectionState returns the negotiated parameters (version, ALPN
// protocol, peer certificates, DidResume, ...).
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// NetConn returns the inner connection. Reading or writing it directly
// corrupts the TLS stream.
func (c *Conn) NetConn() net.Conn { return c.inner }

// LocalAddr returns the inner connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.inner.LocalAddr() }

// RemoteAddr returns the inner connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.inner.RemoteAddr() }

// SetDeadline sets the inner connection's deadlines (they also bound a
// pending handshake).
func (c *Conn) SetDeadline(t time.Time) error { return c.tc.SetDeadline(t) }

// SetReadDeadline sets the inner connection's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.tc.SetReadDeadline(t) }

// SetWriteDeadline sets the inner connection's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.tc.SetWriteDeadline(t) }

// Dst returns the peer's address: the inner connection's Dst when it has
// one, else RemoteAddr's when it is a TCP or UDP address, else the zero
// AddrPort.
func (c *Conn) Dst() netip.AddrPort { return dst(c.inner) }

// Src returns the local address, like Dst.
func (c *Conn) Src() netip.AddrPort {
	if s, ok := c.inner.(interface{ Src() netip.AddrPort }); ok {
		return s.Src()
	}
	return netaddr.AddrPort(c.inner.LocalAddr())
}

func dst(conn net.Conn) netip.AddrPort {
	if d, ok := conn.(interface{ Dst() netip.AddrPort }); ok {
		return d.Dst()
	}
	return netaddr.AddrPort(conn.RemoteAddr())
}
