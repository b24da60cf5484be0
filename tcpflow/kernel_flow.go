package tcpflow

import (
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/conduit-go/conduit/internal/netaddr"
)

// KernelFlow is a Flow over a kernel TCP socket. Nagle's algorithm is on
// for Write and Writev (unlike Go's net package, which turns it off);
// WriteNodelay and WritevNodelay turn it off for their data, so it is
// pushed at once. It is safe for concurrent use like any net.Conn.
type KernelFlow struct {
	conn *net.TCPConn
	raw  syscall.RawConn
	dst  netip.AddrPort
	src  netip.AddrPort

	// wmu orders writes with the TCP_NODELAY state they need; nodelay is
	// the socket's current setting.
	wmu     sync.Mutex
	nodelay bool
	vec     net.Buffers // Writev's scratch copy of the caller's slice
	cur     net.Buffers // what WriteTo consumes of vec

	closeOnce sync.Once
	closeErr  error
}

var _ Flow = (*KernelFlow)(nil)

// newKernelFlow takes ownership of c, a connection made with keepalive
// off (net.Dialer and net.ListenConfig with KeepAlive -1): keepalive is
// set when ka asks for it. Go turns Nagle off on every TCP connection;
// the flow turns it back on lazily, at the first Write, so connections
// that only ever WriteNodelay never pay for the system call.
func newKernelFlow(c *net.TCPConn, ka *Keepalive) (*KernelFlow, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	f := &KernelFlow{
		conn:    c,
		raw:     raw,
		dst:     netaddr.AddrPort(c.RemoteAddr()),
		src:     netaddr.AddrPort(c.LocalAddr()),
		nodelay: true, // Go's default; see setNodelay
	}
	if ka != nil {
		if err := setKeepalive(c, ka); err != nil {
			c.Close()
			return nil, err
		}
	}
	return f, nil
}

// setKeepalive turns keepalive on with ka's settings, or off for nil.
func setKeepalive(c *net.TCPConn, ka *Keepalive) error {
	if ka == nil {
		return c.SetKeepAlive(false)
	}
	return c.SetKeepAliveConfig(net.KeepAliveConfig{
		Enable:   true,
		Idle:     ka.After,
		Interval: ka.Interval,
		Count:    ka.Probes,
	})
}

// Read reads at least one byte; io.EOF after the peer's FIN; an error
// matching ErrReset after a reset and ErrTimeout when keepalive probes
// went unanswered.
func (f *KernelFlow) Read(b []byte) (int, error) {
	n, err := f.conn.Read(b)
	return n, ioError("read", f.dst, err)
}

// setNodelay switches TCP_NODELAY; the caller holds wmu. Turning it on
// also pushes anything Nagle was holding back.
func (f *KernelFlow) setNodelay(on bool) error {
	if f.nodelay == on {
		return nil
	}
	if err := f.conn.SetNoDelay(on); err != nil {
		return err
	}
	f.nodelay = on
	return nil
}

// Write writes b; small writes may be coalesced (Nagle).
func (f *KernelFlow) Write(b []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if err := f.setNodelay(false); err != nil {
		return 0, ioError("write", f.dst, err)
	}
	n, err := f.conn.Write(b)
	return n, ioError("write", f.dst, err)
}

// WriteNodelay writes b and pushes it at once.
func (f *KernelFlow) WriteNodelay(b []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if err := f.setNodelay(true); err != nil {
		return 0, ioError("write", f.dst, err)
	}
	n, err := f.conn.Write(b)
	return n, ioError("write", f.dst, err)
}

// Writev writes every buffer with writev(2) (several calls only for more
// buffers than the kernel takes at once, or a short write). bufs is not
// modified.
func (f *KernelFlow) Writev(bufs net.Buffers) (int64, error) {
	return f.writev(bufs, false)
}

// WritevNodelay is Writev, pushed at once.
func (f *KernelFlow) WritevNodelay(bufs net.Buffers) (int64, error) {
	return f.writev(bufs, true)
}

func (f *KernelFlow) writev(bufs net.Buffers, nodelay bool) (int64, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if err := f.setNodelay(nodelay); err != nil {
		return 0, ioError("write", f.dst, err)
	}
	// net.Buffers.WriteTo consumes the slice it is called on: give it a
	// copy (kept for reuse, under wmu) so the caller's stays intact.
	f.vec = append(f.vec[:0], bufs...)
	f.cur = f.vec
	n, err := f.cur.WriteTo(f.conn)
	clear(f.vec) // do not keep the caller's buffers alive
	return n, ioError("write", f.dst, err)
}

// CloseWrite sends a FIN: the peer reads io.EOF after the data already
// written. Reading goes on.
func (f *KernelFlow) CloseWrite() error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return ioError("close", f.dst, f.conn.CloseWrite())
}

// Close closes the flow. It is idempotent: later calls return the first
// call's result.
func (f *KernelFlow) Close() error {
	f.closeOnce.Do(func() { f.closeErr = f.conn.Close() })
	return f.closeErr
}

// Dst returns the remote address and port.
func (f *KernelFlow) Dst() netip.AddrPort { return f.dst }

// Src returns the local address and port.
func (f *KernelFlow) Src() netip.AddrPort { return f.src }

// LocalAddr implements net.Conn.
func (f *KernelFlow) LocalAddr() net.Addr { return f.conn.LocalAddr() }

// RemoteAddr implements net.Conn.
func (f *KernelFlow) RemoteAddr() net.Addr { return f.conn.RemoteAddr() }

// SetDeadline implements net.Conn.
func (f *KernelFlow) SetDeadline(t time.Time) error { return f.conn.SetDeadline(t) }

// SetReadDeadline implements net.Conn.
func (f *KernelFlow) SetReadDeadline(t time.Time) error { return f.conn.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn.
func (f *KernelFlow) SetWriteDeadline(t time.Time) error { return f.conn.SetWriteDeadline(t) }

// SetKeepalive changes the flow's keepalive: nil turns it off.
func (f *KernelFlow) SetKeepalive(ka *Keepalive) error { return setKeepalive(f.conn, ka) }

// Abort closes the flow with a reset instead of a FIN (SO_LINGER 0):
// the peer's reads fail with a reset error. Unsent data is discarded.
func (f *KernelFlow) Abort() error {
	f.closeOnce.Do(func() {
		if err := f.conn.SetLinger(0); err != nil {
			f.closeErr = err
			f.conn.Close()
			return
		}
		f.closeErr = f.conn.Close()
	})
	return f.closeErr
}

// SyscallConn gives access to the socket, for options this type does not
// cover.
func (f *KernelFlow) SyscallConn() (syscall.RawConn, error) { return f.raw, nil }
