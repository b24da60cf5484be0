// Package tcp is the TCP of the userspace stack (RFC 9293), split by
// concern as gVisor's transport/tcp is: protocol.go holds the Protocol
// and its Close, options.go its Options and their defaults, dispatch.go
// demultiplexes segments to connections and listeners, listener.go the
// listeners (Listen, SetListeners, ListenFlows), dial.go and ports.go
// active opens and RFC 6056 port choice, stats.go and debug.go the
// counters and dumps, connect.go holds the handshake
// and the state machine, snd.go the send side (Nagle, retransmission,
// RFC 6298 RTO, zero-window persist, keepalive), rcv.go the receive side
// (out-of-order queue, SACK blocks, window, delayed ACKs), ackcomp.go
// its SACK compression (Linux's), rcvtune.go the receive window's
// autotuning, metrics.go what a path showed kept for the next
// connection (RFC 9040), sack.go the
// scoreboard (RFC 6675), RACK and tail loss probes (RFC 8985), cc.go
// congestion control (CUBIC, RFC 9438, by default; NewReno, RFC 5681
// and RFC 6582, as Options.CongestionControl), hystart.go the end of
// the first slow start (HyStart++, RFC 9406, and an ACK train, as
// Linux's HyStart; Options.NoHyStart), ring.go the send and
// receive buffers, timer.go the lazily re-armed timers over an injected
// clock, isn.go the RFC 6528 initial sequence numbers and RFC 6056 port
// offsets, cookie.go the SYN cookies (RFC 4987) a listener answers with
// once its backlog is full, budget.go the buffer budget that bounds the
// memory of every connection's buffers together (Options.BufferBudget).
//
// A Protocol knows nothing of IPv4: it is given segments with their
// addresses (HandleSegment) and sends through Options.Output. Package
// stack wires it to an IPv4 layer and a link.
//
//	p, err := tcp.New(tcp.Options{Addr: addr, Output: send})
//	p.HandleSegment(src, dst, segment)
//	f, err := p.Dial(ctx, dst, tcpflow.DialOptions{})
//
// Connections are tcpflow.Flows; every method is safe for concurrent use.
// docs/tcp.md describes the data path, loss recovery and the defences.
package tcp
