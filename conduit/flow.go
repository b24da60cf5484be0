package conduit

import (
	"errors"
	"net"
)

// Flow is a connection made or accepted by a Conduit: a net.Conn that can
// also half-close and write several buffers at once. Every built-in
// transport returns a Flow with more methods (tcpflow.Flow adds
// WriteNodelay, Dst and Src; *tlsflow.Conn adds ConnectionState); use a
// type assertion to reach them.
//
// Multiple goroutines may invoke methods on a Flow simultaneously.
type Flow interface {
	net.Conn
	// CloseWrite shuts down the writing side: the peer reads io.EOF
	// after the data written before. Flows over transports that cannot
	// half-close return an error wrapping errors.ErrUnsupported.
	CloseWrite() error
	// Writev writes every buffer in order, in as few system calls or
	// records as the transport allows.
	Writev(bufs net.Buffers) (int64, error)
}

// AsFlow returns c as a Flow: c itself when it already is one, otherwise
// a wrapper whose Writev writes through net.Buffers.WriteTo and whose
// CloseWrite uses c's CloseWrite method if it has one. Custom transports
// can return plain net.Conns; conduit adapts them with AsFlow.
func AsFlow(c net.Conn) Flow {
	if f, ok := c.(Flow); ok {
		return f
	}
	return &connFlow{Conn: c}
}

// connFlow adapts a net.Conn to Flow.
type connFlow struct {
	net.Conn
}

func (f *connFlow) Writev(bufs net.Buffers) (int64, error) { return bufs.WriteTo(f.Conn) }

func (f *connFlow) CloseWrite() error {
	if cw, ok := f.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return &net.OpError{Op: "close", Net: f.LocalAddr().Network(), Addr: f.RemoteAddr(),
		Err: errors.ErrUnsupported}
}

// NetConn returns the wrapped connection.
func (f *connFlow) NetConn() net.Conn { return f.Conn }

// unixFlow is a Flow over a Unix-domain stream socket.
type unixFlow struct {
	*net.UnixConn
}

func (f unixFlow) Writev(bufs net.Buffers) (int64, error) {
	// WriteTo consumes the slice it is called on; work on a copy of the
	// header so the caller's slice is left alone, as with a plain Write.
	b := bufs
	return b.WriteTo(f.UnixConn)
}
