package tcpflow

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// Flow is one TCP connection: the MirageOS TCPv4 flow in Go idiom.
//
// A Flow is a net.Conn, so it drops into net/http, gRPC and crypto/tls.
// Multiple goroutines may invoke methods on a Flow simultaneously, but
// concurrent writes interleave in an unspecified order.
type Flow interface {
	net.Conn

	// Writev writes every buffer, in order, with as few system calls or
	// segments as the backend allows (one writev(2) on the kernel). Like
	// Write it may be coalesced with later writes (Nagle's algorithm).
	Writev(bufs net.Buffers) (int64, error)

	// WriteNodelay writes b and pushes it to the peer at once: it is
	// never held back by Nagle's algorithm.
	WriteNodelay(b []byte) (int, error)

	// WritevNodelay is Writev, pushed at once like WriteNodelay.
	WritevNodelay(bufs net.Buffers) (int64, error)

	// CloseWrite shuts down the sending side (a FIN): the peer reads
	// io.EOF once it has read everything written before.
	CloseWrite() error

	// Dst is the remote address and port, Src the local ones.
	Dst() netip.AddrPort
	Src() netip.AddrPort
}

// Keepalive configures TCP keepalive probes (RFC 1122 §4.2.3.6): the first
// probe is sent After the connection has been idle, then every Interval;
// after Probes unanswered probes the connection is reset and blocked
// readers and writers get a timeout error.
type Keepalive struct {
	After    time.Duration
	Interval time.Duration
	Probes   int
}

// DialOptions are the options of CreateConnection. The zero value dials
// without keepalive from an address chosen by the backend.
type DialOptions struct {
	// Keepalive, when non-nil, enables keepalive on the connection.
	Keepalive *Keepalive
	// Src, when valid, is the local address (and port, if non-zero) to
	// dial from.
	Src netip.AddrPort
}

// Listener is what a stack does with connections accepted on one port.
type Listener struct {
	// Process handles one accepted connection. The stack calls it in a
	// goroutine of its own for each connection and closes the flow when
	// Process returns.
	Process func(Flow)
	// Keepalive, when non-nil, enables keepalive on every connection
	// accepted by this listener.
	Keepalive *Keepalive
}

// Listeners is the listeners-function form of the MirageOS API: given a
// destination port it returns the listener for it, or nil when
// connections to that port are refused.
type Listeners func(port uint16) *Listener

// FlowListener accepts flows, like a net.Listener whose connections are
// Flows. Close stops accepting; it does not close accepted flows.
type FlowListener interface {
	net.Listener
	AcceptFlow() (Flow, error)
}

// Stack is a TCPv4 provider: the kernel (NewKernel) or, later, a
// userspace stack. All methods are safe for concurrent use.
type Stack interface {
	// CreateConnection opens a connection to dst. ctx governs only the
	// connection setup. The errors satisfy errors.Is(err, ErrRefused) and
	// errors.Is(err, ErrTimeout) where that is what happened.
	CreateConnection(ctx context.Context, dst netip.AddrPort, opts DialOptions) (Flow, error)

	// ListenFlows opens a listening endpoint at addr (port 0 picks one)
	// that hands out flows one Accept at a time. ka, when non-nil, is
	// applied to every accepted flow.
	ListenFlows(ctx context.Context, addr netip.AddrPort, ka *Keepalive) (FlowListener, error)

	// Listen installs l on port: the stack accepts connections and runs
	// l.Process for each. It fails if port already has a listener.
	Listen(port uint16, l Listener) error

	// Unlisten removes the listener on port, if any: new connections are
	// refused; connections already accepted carry on.
	Unlisten(port uint16)

	// SetListeners installs the listeners-function form: fn is consulted
	// for each new connection to a port without a Listen listener.
	SetListeners(fn Listeners)

	// Input hands the stack one TCP segment received from the IP layer
	// (src and dst are the IPv4 addresses of the packet). A userspace
	// stack parses it; on the kernel backend it is a no-op.
	Input(src, dst netip.Addr, segment []byte) error

	// Close removes every listener, waits for the stack's own goroutines
	// and releases its resources. On the kernel backend flows already
	// handed out stay open; a userspace stack resets them, since they
	// cannot outlive the stack that carries them.
	Close() error
}
