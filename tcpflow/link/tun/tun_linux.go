//go:build linux

package tun

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/conduit-go/conduit/tcpflow/link"
)

// maxPacket is the read buffer size: the largest IPv4 packet.
const maxPacket = 65535

// Options configures Open. The zero value attaches to the device and
// uses its MTU.
type Options struct {
	// MTU, if not zero, is used instead of asking the device.
	MTU int
}

// Stats counts an endpoint's packets.
type Stats struct {
	TxPackets, TxBytes uint64 // written to the device
	RxPackets, RxBytes uint64 // handed to the receiver
	RxNoReceiver       uint64 // read while the receiver was nil
}

// Endpoint is a TUN device attached by Open. It implements
// link.Endpoint; its methods are safe for concurrent use. It owns one
// goroutine reading the device, stopped by Close.
type Endpoint struct {
	f    *os.File
	name string
	mtu  int
	recv atomic.Pointer[func([]byte)]

	txPackets, txBytes, rxPackets, rxBytes, rxNoReceiver atomic.Uint64

	readErr atomic.Pointer[error]
	wg      sync.WaitGroup
	closed  atomic.Bool
}

var _ link.Endpoint = (*Endpoint)(nil)

// Open attaches to the TUN device name (IFF_TUN|IFF_NO_PI), creating it
// if it does not exist, which needs CAP_NET_ADMIN in the network
// namespace of the calling thread. A device created this way disappears
// when the endpoint is closed. The device must be configured (address,
// up) by other means, such as `ip addr` and `ip link`.
func Open(name string, opts Options) (*Endpoint, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return nil, &net.OpError{Op: "open", Net: "tun", Addr: nil, Err: fmt.Errorf("tun: device name %q: %w", name, err)}
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("tun: open /dev/net/tun: %w", err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: attach to %q (TUNSETIFF): %w", name, err)
	}
	name = ifr.Name()
	mtu := opts.MTU
	if mtu == 0 {
		if mtu, err = deviceMTU(name); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	// A non-blocking descriptor goes through the runtime's poller, so
	// Close unblocks a pending Read.
	f := os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
	e := &Endpoint{f: f, name: name, mtu: mtu}
	e.wg.Add(1)
	go e.readLoop()
	return e, nil
}

func deviceMTU(name string) (int, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("tun: socket for SIOCGIFMTU: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFMTU, ifr); err != nil {
		return 0, fmt.Errorf("tun: MTU of %q (SIOCGIFMTU): %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// Name returns the device name.
func (e *Endpoint) Name() string { return e.name }

// MTU returns the MTU given in Options or read from the device at Open.
func (e *Endpoint) MTU() int { return e.mtu }

// SetReceiver sets the function called with each packet read from the
// device. See link.Endpoint for the ownership of pkt.
func (e *Endpoint) SetReceiver(f func(pkt []byte)) {
	if f == nil {
		e.recv.Store(nil)
		return
	}
	e.recv.Store(&f)
}

// Stats returns a snapshot of the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	return Stats{
		TxPackets: e.txPackets.Load(), TxBytes: e.txBytes.Load(),
		RxPackets: e.rxPackets.Load(), RxBytes: e.rxBytes.Load(),
		RxNoReceiver: e.rxNoReceiver.Load(),
	}
}

// Err returns the error that stopped the read loop before Close, if any.
func (e *Endpoint) Err() error {
	if p := e.readErr.Load(); p != nil {
		return *p
	}
	return nil
}

// WritePacket writes one packet to the device.
func (e *Endpoint) WritePacket(pkt []byte) error {
	if len(pkt) > e.mtu {
		return fmt.Errorf("%w: %d bytes > MTU %d", link.ErrPacketTooBig, len(pkt), e.mtu)
	}
	if _, err := e.f.Write(pkt); err != nil {
		if errors.Is(err, os.ErrClosed) {
			err = net.ErrClosed
		}
		return &net.OpError{Op: "write", Net: "tun", Err: fmt.Errorf("%s: %w", e.name, err)}
	}
	e.txPackets.Add(1)
	e.txBytes.Add(uint64(len(pkt)))
	return nil
}

func (e *Endpoint) readLoop() {
	defer e.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, err := e.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				err = fmt.Errorf("tun: read %s: %w", e.name, err)
				e.readErr.Store(&err)
			}
			return
		}
		if f := e.recv.Load(); f != nil {
			(*f)(buf[:n])
			e.rxPackets.Add(1)
			e.rxBytes.Add(uint64(n))
		} else {
			e.rxNoReceiver.Add(1)
		}
	}
}

// Close closes the device descriptor, which unblocks the read loop, and
// waits for it (and so for any running receiver call). It must not be
// called from the receiver. Later calls return an error satisfying
// errors.Is(err, net.ErrClosed).
func (e *Endpoint) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return &net.OpError{Op: "close", Net: "tun", Err: net.ErrClosed}
	}
	err := e.f.Close()
	e.wg.Wait()
	return err
}
