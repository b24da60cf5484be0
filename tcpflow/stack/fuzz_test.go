package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

// FuzzDeliver feeds arbitrary packets to a stack with a listener: no
// panic, and no state grows beyond the configured bounds.
func FuzzDeliver(f *testing.F) {
	syn := make(header.TCP, 20)
	syn.Encode(&header.TCPFields{SrcPort: 1234, DstPort: 80, SeqNum: 1, Flags: header.TCPFlagSYN, WindowSize: 1000})
	syn.SetChecksumFor(addrB, addrA)
	f.Add([]byte(ipPacket(addrB, addrA, header.ProtocolTCP, syn)))
	f.Add([]byte(ipPacket(addrB, addrA, header.ProtocolICMPv4, header.AppendEcho(nil, 1, 1, []byte("x")))))
	f.Add([]byte{0x45})
	ea, eb := channel.NewPair(1500, channel.FaultOptions{})
	defer ea.Close()
	defer eb.Close()
	s, err := New(Options{Addr: netip.PrefixFrom(addrA, 24), Link: ea, Clock: clock.NewManual(time.Unix(0, 0)), TCP: tcp.Options{MaxConnections: 64, SYNBacklog: 8}})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	s.Listen(80, tcpflow.Listener{Process: func(tcpflow.Flow) {}})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		s.deliver(pkt)
		if n := s.NumConnections(); n > 64 {
			t.Fatalf("%d connections", n)
		}
	})
}
