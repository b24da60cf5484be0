package tcpflow

import "golang.org/x/sys/unix"

// TCPInfo returns the kernel's TCP_INFO for the flow: segment counts,
// RTT, congestion window and retransmissions.
func (f *KernelFlow) TCPInfo() (*unix.TCPInfo, error) {
	var (
		info *unix.TCPInfo
		err  error
	)
	cerr := f.raw.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if cerr != nil {
		return nil, cerr
	}
	return info, err
}
