// Package stack is the userspace TCP/IPv4 stack: an IPv4 layer (header
// and checksum validation, ICMP echo and errors) wired to the TCP of
// package tcp over a link.Endpoint, as a tcpflow.Stack.
//
//	a, b := channel.NewPair(1500, channel.FaultOptions{})
//	s, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.0.0.1/24"), Link: a})
//	if err != nil { ... }
//	defer s.Close()
//	f, err := s.CreateConnection(ctx, netip.MustParseAddrPort("10.0.0.2:80"), tcpflow.DialOptions{})
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

// Options configures New. Addr and Link are required; every other zero
// value selects a default.
type Options struct {
	// Addr is our IPv4 address and its subnet.
	Addr netip.Prefix
	// Link carries the IPv4 packets. The stack sets its receiver; the
	// caller keeps ownership and closes it after the stack.
	Link link.Endpoint
	// Clock times every timer; nil means the real clock.
	Clock clock.Clock
	// TCP configures TCP: MSS, buffers and the buffer budget, TIME-WAIT,
	// ISN secret, connection and backlog limits, RTO bounds,
	// retransmission limits, delayed ACKs, SYN cookies; its zero fields
	// select tcp's defaults, but an MSS of zero, or one larger than the
	// link's MTU carries, is derived from the MTU. Its Addr, Output,
	// Clock, ReturnBuffer and ChecksumOffload are the stack's: Addr,
	// Clock and the link's. Its Logger also receives the stack's debug
	// records.
	TCP tcp.Options
}

// Stats counts the stack's packets.
type Stats struct {
	IPIn, IPOut        uint64
	IPInvalid          uint64 // bad header or checksum
	IPNotOurs          uint64 // addressed to another host
	IPFragmentsDropped uint64
	IPUnknownProtocol  uint64
	ICMPEchoReplies    uint64
	ICMPErrorsIn       uint64
	OutputErrors       uint64
	TCP                tcp.Stats
}

// Stack is the userspace stack. It is safe for concurrent use.
type Stack struct {
	addr netip.Addr
	pfx  netip.Prefix
	ep   link.Endpoint
	tcp  *tcp.Protocol
	log  *slog.Logger
	mtu  int

	ipID                                                        atomic.Uint32
	ipIn, ipOut, ipInvalid, notOurs, frags, unknown, echo, icmp atomic.Uint64
	outErr                                                      atomic.Uint64

	pool      sync.Pool         // *[]byte of MTU capacity
	hdrPool   sync.Pool         // IPv4 and TCP headers, for gw
	gw        link.GatherWriter // the link, if it gathers
	lender    link.Lender       // the link, if it lends its buffers
	closeOnce sync.Once
}

var _ tcpflow.Stack = (*Stack)(nil)

// New returns a stack attached to o.Link.
func New(o Options) (*Stack, error) {
	if !o.Addr.Addr().Is4() {
		return nil, fmt.Errorf("stack: address %v is not IPv4", o.Addr)
	}
	if o.Link == nil {
		return nil, errors.New("stack: no link")
	}
	mtu := o.Link.MTU()
	if mtu < 68 {
		return nil, fmt.Errorf("stack: link MTU %d < 68", mtu)
	}
	s := &Stack{addr: o.Addr.Addr(), pfx: o.Addr, ep: o.Link, log: o.TCP.Logger, mtu: mtu}
	s.pool.New = func() any { b := make([]byte, 0, mtu); return &b }
	s.hdrPool.New = func() any { return new([header.IPv4MinimumSize + header.TCPMaximumHeaderSize]byte) }
	s.gw, _ = o.Link.(link.GatherWriter)
	to := o.TCP
	to.Addr = s.addr
	to.Output = s.outputTCP
	to.Clock = o.Clock
	if maxMSS := mtu - header.IPv4MinimumSize - header.TCPMinimumSize; to.MSS <= 0 || to.MSS > maxMSS {
		to.MSS = maxMSS
	}
	if co, ok := o.Link.(link.ChecksumOffloader); ok && co.ChecksumOffload() {
		to.ChecksumOffload = true
	}
	lender, _ := o.Link.(link.Lender)
	if lender != nil {
		to.ReturnBuffer = lender.Return
	}
	p, err := tcp.New(to)
	if err != nil {
		return nil, err
	}
	s.tcp = p
	if lender != nil {
		lender.SetLendingReceiver(s.deliverLent)
	} else {
		o.Link.SetReceiver(s.deliver)
	}
	s.lender = lender
	return s, nil
}

// Addr returns our address.
func (s *Stack) Addr() netip.Addr { return s.addr }

// Stats returns a snapshot of the counters.
func (s *Stack) Stats() Stats {
	return Stats{
		IPIn: s.ipIn.Load(), IPOut: s.ipOut.Load(), IPInvalid: s.ipInvalid.Load(),
		IPNotOurs: s.notOurs.Load(), IPFragmentsDropped: s.frags.Load(),
		IPUnknownProtocol: s.unknown.Load(), ICMPEchoReplies: s.echo.Load(),
		ICMPErrorsIn: s.icmp.Load(), OutputErrors: s.outErr.Load(),
		TCP: s.tcp.Stats(),
	}
}

// NumConnections returns the connections tracked, TIME-WAIT included.
func (s *Stack) NumConnections() int { return s.tcp.NumConnections() }

// CreateConnection opens a TCP connection to dst; ctx governs only the
// setup. Errors match tcpflow.ErrRefused (a reset or ICMP port
// unreachable answered the SYN) and tcpflow.ErrTimeout.
func (s *Stack) CreateConnection(ctx context.Context, dst netip.AddrPort, opts tcpflow.DialOptions) (tcpflow.Flow, error) {
	return s.tcp.Dial(ctx, dst, opts)
}

// SupportsFamily reports whether the stack dials the address family
// ("4" or "6", as endpoint.Family names them): only IPv4, so that a
// dialer skips IPv6 endpoints instead of racing them (conduit's
// FamilyStack).
func (s *Stack) SupportsFamily(family string) bool { return family == "4" }

// ListenFlows listens on addr (our address or 0.0.0.0; port 0 picks one).
func (s *Stack) ListenFlows(ctx context.Context, addr netip.AddrPort, ka *tcpflow.Keepalive) (tcpflow.FlowListener, error) {
	return s.tcp.ListenFlows(ctx, addr, ka)
}

// Listen runs l.Process for each connection to port.
func (s *Stack) Listen(port uint16, l tcpflow.Listener) error { return s.tcp.Listen(port, l) }

// Unlisten removes the Listen listener of port.
func (s *Stack) Unlisten(port uint16) { s.tcp.Unlisten(port) }

// SetListeners installs the listeners function for ports without a
// listener; a SYN to a port it declines is answered with a reset.
func (s *Stack) SetListeners(fn tcpflow.Listeners) { s.tcp.SetListeners(fn) }

// Input hands the stack one TCP segment from src to dst, as if it had
// arrived in an IPv4 packet.
func (s *Stack) Input(src, dst netip.Addr, segment []byte) error {
	if dst != s.addr {
		return fmt.Errorf("stack: %v is not our address", dst)
	}
	if err := header.TCP(segment).IsValid(); err != nil {
		return err
	}
	s.tcp.HandleSegment(src, dst, segment)
	return nil
}

// Close detaches the stack from its link, removes the listeners, waits
// for the Process calls (whose flows it closes) and aborts every other
// connection: their flows then fail with net.ErrClosed.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.tcp.Close()
		if s.lender != nil {
			s.lender.SetLendingReceiver(nil)
		}
		s.ep.SetReceiver(nil)
	})
	return nil
}

func (s *Stack) debug(msg string, args ...any) {
	if s.log != nil {
		s.log.Debug(msg, args...)
	}
}
