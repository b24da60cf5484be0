// Package link defines the interface between the userspace TCP/IPv4
// stack and the links that carry its IPv4 packets: link/channel, an
// in-memory pair with fault injection for tests, and link/tun, a Linux
// TUN device.
//
//	a, b := channel.NewPair(1500, channel.FaultOptions{Seed: 1, Loss: 0.01})
//	defer a.Close()
//	defer b.Close()
//	b.SetReceiver(func(pkt []byte) { ip := header.IPv4(pkt); ... }) // pkt valid only during the call
//	err := a.WritePacket(pkt)
package link

import "errors"

// Endpoint is one end of a link carrying raw IPv4 packets (no link-layer
// header).
//
// Ownership: WritePacket does not retain pkt after it returns, so the
// caller may reuse it at once. The receiver is given a packet that is
// valid only until it returns: it must copy what it wants to keep, since
// the endpoint reuses the buffer.
//
// Concurrency: WritePacket may be called from several goroutines at
// once, and concurrently with SetReceiver and Close. The receiver is
// called from one goroutine owned by the endpoint, one packet at a time,
// in arrival order; it must not block for long and must not call Close
// (Close waits for the receiver to return).
type Endpoint interface {
	// MTU returns the largest packet WritePacket accepts, in bytes.
	MTU() int
	// WritePacket sends one IPv4 packet. It returns an error wrapping
	// ErrPacketTooBig if len(pkt) > MTU(), and one satisfying
	// errors.Is(err, net.ErrClosed) after Close. A nil error does not
	// mean the packet arrives: links may lose packets.
	WritePacket(pkt []byte) error
	// SetReceiver sets the function called with each packet received;
	// packets received while it is nil are dropped. It replaces any
	// previous receiver.
	SetReceiver(func(pkt []byte))
	// Close stops the endpoint: it unblocks and waits for every goroutine
	// the endpoint owns, so no receiver call is running or will start
	// once it returns. Later calls return an error satisfying
	// errors.Is(err, net.ErrClosed).
	Close() error
}

// GatherWriter is implemented by endpoints that take a packet in two
// parts, its headers and its payload, and copy them once (the stack
// need not assemble the packet first). The parts are not retained.
type GatherWriter interface {
	// WritePacketv sends the packet hdr followed by payload, as
	// WritePacket would.
	WritePacketv(hdr, payload []byte) error
}

// ChecksumOffloader is implemented by endpoints that can vouch for the
// integrity of what they carry, as a NIC with checksum offload does: when
// ChecksumOffload reports true, the stack neither computes nor checks
// TCP checksums on this link (the IPv4 header checksum is kept). Both
// ends of a link must agree, so it suits in-memory links between
// stacks of this package.
type ChecksumOffloader interface {
	ChecksumOffload() bool
}

// Lender is implemented by endpoints that can lend their packet buffers
// to the receiver instead of reusing them at once, so that a stack may
// queue received data where it arrived rather than copy it.
type Lender interface {
	// SetLendingReceiver sets a receiver that may keep a packet: it
	// returns true to keep *buf, which it then gives back with Return
	// once done with it (or drops: the buffer is then garbage). It
	// replaces the receiver of SetReceiver, and nil removes it.
	SetLendingReceiver(func(buf *[]byte) (kept bool))
	// Return gives back a buffer a lending receiver kept.
	Return(buf *[]byte)
}

// ErrPacketTooBig is wrapped by WritePacket errors for packets larger
// than the MTU.
var ErrPacketTooBig = errors.New("link: packet larger than MTU")
