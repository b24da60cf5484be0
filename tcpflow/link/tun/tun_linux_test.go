//go:build linux

package tun

import (
	"errors"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// testNet is a network namespace holding a TUN device whose kernel side
// is 10.99.X.1/24 (Kernel); our side of the link uses 10.99.X.2 (Ours).
type testNet struct {
	*testutil.TunNet
	ep *Endpoint
}

func newTestNet(t *testing.T) *testNet {
	tn := &testNet{TunNet: testutil.NewTunNet(t, "conduit-tun")}
	var err error
	tn.Do(t, func() { tn.ep, err = Open(tn.Dev, Options{}) })
	require.NoError(t, err)
	t.Cleanup(func() { tn.ep.Close() })
	return tn
}

// receiveIPv4 sets a receiver that forwards valid IPv4 packets matching
// keep (copied) to the returned channel.
func (tn *testNet) receiveIPv4(keep func(header.IPv4) bool) <-chan header.IPv4 {
	ch := make(chan header.IPv4, 16)
	tn.ep.SetReceiver(func(pkt []byte) {
		ip := header.IPv4(pkt)
		if len(pkt) == 0 || ip.Version() != 4 || ip.IsValid(len(pkt)) != nil || !keep(ip) {
			return // IPv6 router solicitations and the like
		}
		select {
		case ch <- append(header.IPv4(nil), pkt...):
		default:
		}
	})
	return ch
}

func TestPingKernel(t *testing.T) {
	tn := newTestNet(t)
	assert.Equal(t, tn.Dev, tn.ep.Name())
	assert.Equal(t, 1500, tn.ep.MTU())
	ident, seq := uint16(rand.Uint32()), uint16(1)
	replies := tn.receiveIPv4(func(ip header.IPv4) bool {
		return ip.Protocol() == header.ProtocolICMPv4 && header.ICMPv4(ip.Payload()).Type() == header.ICMPv4EchoReply
	})

	data := []byte("conduit tun test payload")
	icmp := header.AppendEcho(nil, ident, seq, data)
	pkt := make(header.IPv4, header.IPv4MinimumSize, header.IPv4MinimumSize+len(icmp))
	pkt.Encode(&header.IPv4Fields{
		TotalLength: uint16(header.IPv4MinimumSize + len(icmp)), ID: 1, Flags: header.IPv4FlagDF,
		TTL: 64, Protocol: header.ProtocolICMPv4, Src: tn.Ours, Dst: tn.Kernel,
	})
	pkt.SetChecksum(^pkt.CalculateChecksum())
	pkt = append(pkt, icmp...)
	require.NoError(t, pkt.IsValid(len(pkt)))

	// The device may need a moment after coming up: resend until answered.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	require.NoError(t, tn.ep.WritePacket(pkt))
	for {
		select {
		case ip := <-replies:
			assert.Equal(t, tn.Kernel, ip.Src())
			assert.Equal(t, tn.Ours, ip.Dst())
			rep := header.ICMPv4(ip.Payload())
			require.NoError(t, rep.IsValid(), "the kernel's checksum verifies")
			assert.Equal(t, ident, rep.Ident())
			assert.Equal(t, seq, rep.Sequence())
			assert.Equal(t, data, rep.Payload())
			assert.GreaterOrEqual(t, tn.ep.Stats().RxPackets, uint64(1))
			assert.GreaterOrEqual(t, tn.ep.Stats().TxPackets, uint64(1))
			return
		case <-tick.C:
			require.NoError(t, tn.ep.WritePacket(pkt))
		case <-deadline:
			t.Fatalf("no echo reply from %v (stats %+v, read error %v)", tn.Kernel, tn.ep.Stats(), tn.ep.Err())
		}
	}
}

// TestKernelSYN has the kernel connect to our side and checks its SYN
// with the header package: checksums and options.
func TestKernelSYN(t *testing.T) {
	tn := newTestNet(t)
	const port = 5001
	syns := tn.receiveIPv4(func(ip header.IPv4) bool {
		return ip.Protocol() == header.ProtocolTCP && header.TCP(ip.Payload()).DstPort() == port
	})
	var fd int
	var err error
	tn.Do(t, func() {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	})
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: tn.Ours.As4()})
	require.True(t, errors.Is(err, unix.EINPROGRESS), "connect: %v", err)

	select {
	case ip := <-syns:
		tcp := header.TCP(ip.Payload())
		require.NoError(t, tcp.IsValid())
		assert.True(t, tcp.IsChecksumValid(ip.Src(), ip.Dst()), "kernel's TCP checksum")
		assert.Equal(t, header.TCPFlagSYN, tcp.Flags())
		opts, err := header.ParseTCPOptions(tcp.Options())
		require.NoError(t, err)
		assert.True(t, opts.HasMSS)
		assert.Equal(t, uint16(tn.ep.MTU()-40), opts.MSS)
		// Our encoder lays the options out as Linux does.
		raw := make([]byte, opts.Len())
		n, err := opts.Marshal(raw)
		require.NoError(t, err)
		assert.Equal(t, tcp.Options(), raw[:n])
		t.Logf("kernel SYN: % x", []byte(ip))
	case <-time.After(10 * time.Second):
		t.Fatalf("no SYN (stats %+v)", tn.ep.Stats())
	}
}

func TestCloseUnblocksAndErrors(t *testing.T) {
	tn := newTestNet(t)
	require.NoError(t, tn.ep.Close()) // the read loop is blocked in Read
	assert.ErrorIs(t, tn.ep.Close(), net.ErrClosed)
	assert.ErrorIs(t, tn.ep.WritePacket([]byte{0x45}), net.ErrClosed)
	assert.NoError(t, tn.ep.Err())
}

func TestWriteTooBig(t *testing.T) {
	tn := newTestNet(t)
	assert.ErrorIs(t, tn.ep.WritePacket(make([]byte, tn.ep.MTU()+1)), link.ErrPacketTooBig)
}

func TestOpenErrors(t *testing.T) {
	_, err := Open("a-name-much-too-long-for-ifreq", Options{})
	assert.Error(t, err)
}
