package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

const gvNIC tcpip.NICID = 1

// gvisorPair is two gVisor stacks, each with a link/channel endpoint (no
// checksum offload, no GSO), and a goroutine per direction that reads
// the packets one endpoint sends (ReadContext) and injects them into the
// other (InjectInbound), dropping some with a seeded PRNG when loss is
// set. This is the shape of conduit's channel link: one goroutine
// delivering each direction.
type gvisorPair struct {
	client, server *stack.Stack
	ec, es         *countingEndpoint

	cancel context.CancelFunc
	wg     sync.WaitGroup // the pumps
	lost   [2]atomic.Uint64
	closed sync.Once
}

var _ netStack = (*gvisorPair)(nil)

var (
	gvClientAddr = tcpip.AddrFrom4(clientAddr.Addr().As4())
	gvServerAddr = tcpip.AddrFrom4(serverAddr.Addr().As4())
)

func newGvisorPair(tb testing.TB, cfg pairConfig) netStack {
	tb.Helper()
	p := &gvisorPair{}
	var err error
	p.client, p.ec, err = newGvisorStack(gvClientAddr, clientAddr.Bits(), cfg)
	if err != nil {
		tb.Fatalf("gvisor client stack: %v", err)
	}
	p.server, p.es, err = newGvisorStack(gvServerAddr, serverAddr.Bits(), cfg)
	if err != nil {
		p.client.Destroy()
		tb.Fatalf("gvisor server stack: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	// The same PCG streams as conduit's channel link ("link-a" carries
	// packets to the client, "link-b" to the server): not the same
	// packets are lost, since the stacks send different sequences, but
	// the same rate from the same seed.
	toServer := rand.New(rand.NewPCG(cfg.seed, 0x6c696e6b2d62))
	toClient := rand.New(rand.NewPCG(cfg.seed, 0x6c696e6b2d61))
	p.wg.Add(2)
	go p.pump(ctx, p.ec, p.es, toServer, cfg.loss, &p.lost[0])
	go p.pump(ctx, p.es, p.ec, toClient, cfg.loss, &p.lost[1])
	tb.Cleanup(p.close)
	return p
}

// newGvisorStack returns a stack with IPv4 and TCP on a channel endpoint
// of cfg.mtu, with SACK and buffers of bufferSize (receive buffer
// auto-tuning off: the buffers are fixed, as ours are).
func newGvisorStack(addr tcpip.Address, prefixLen int, cfg pairConfig) (*stack.Stack, *countingEndpoint, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	fail := func(what string, err tcpip.Error) (*stack.Stack, *countingEndpoint, error) {
		s.Destroy()
		return nil, nil, fmt.Errorf("%s: %s", what, err)
	}
	opts := []tcpip.SettableTransportProtocolOption{
		new(tcpip.TCPSACKEnabled(true)),
		new(tcpip.CongestionControlOption(*ccName)),
		new(tcpip.TCPModerateReceiveBufferOption(false)),
		&tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: bufferSize, Max: bufferSize},
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: bufferSize, Max: bufferSize},
	}
	for _, o := range opts {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return fail(fmt.Sprintf("option %T", o), err)
		}
	}
	ep := &countingEndpoint{Endpoint: channel.New(queueLen, uint32(cfg.mtu), "")}
	if !cfg.swChecksum {
		ep.LinkEPCapabilities |= stack.CapabilityRXChecksumOffload | stack.CapabilityTXChecksumOffload
	}
	if err := s.CreateNIC(gvNIC, ep); err != nil {
		ep.Close()
		return fail("CreateNIC", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: prefixLen},
	}
	if err := s.AddProtocolAddress(gvNIC, pa, stack.AddressProperties{}); err != nil {
		return fail("AddProtocolAddress", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: gvNIC}})
	return s, ep, nil
}

// countingEndpoint counts the packets that the channel endpoint drops
// because its queue is full (it reports no error for them).
type countingEndpoint struct {
	*channel.Endpoint
	queueDrops atomic.Uint64
}

func (e *countingEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n, err := e.Endpoint.WritePackets(pkts)
	if err == nil && n < pkts.Len() {
		e.queueDrops.Add(uint64(pkts.Len() - n))
	}
	return n, err
}

// pump moves the packets sent by from into to until ctx is done.
func (p *gvisorPair) pump(ctx context.Context, from, to *countingEndpoint, rng *rand.Rand, loss float64, lost *atomic.Uint64) {
	defer p.wg.Done()
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		// Draw for every packet, as conduit's link does.
		if rng.Float64() < loss {
			lost.Add(1)
			pkt.DecRef()
			continue
		}
		// A fresh packet holding the same bytes (shared, not copied),
		// without the sender's parsed headers, as gVisor's own pipe link
		// does.
		in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
		pkt.DecRef()
		to.InjectInbound(ipv4.ProtocolNumber, in)
		in.DecRef()
	}
}

type gvConn struct{ *gonet.TCPConn }

// WriteNodelay is Write: Nagle's algorithm is off in gVisor by default
// (tcpip.TCPDelayEnabled is false), as in Go's net.
func (c gvConn) WriteNodelay(p []byte) (int, error) { return c.Write(p) }

type gvListener struct{ l *gonet.TCPListener }

func (l gvListener) accept() (conn, error) {
	c, err := l.l.Accept()
	if err != nil {
		return nil, err
	}
	return gvConn{c.(*gonet.TCPConn)}, nil
}

func (l gvListener) close() error {
	l.l.Shutdown() // wakes a blocked Accept
	return l.l.Close()
}

func (p *gvisorPair) listen(port uint16) (listener, error) {
	l, err := gonet.ListenTCP(p.server, tcpip.FullAddress{NIC: gvNIC, Addr: gvServerAddr, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, err
	}
	return gvListener{l}, nil
}

func (p *gvisorPair) dial(ctx context.Context, port uint16) (conn, error) {
	c, err := gonet.DialContextTCP(ctx, p.client, tcpip.FullAddress{NIC: gvNIC, Addr: gvServerAddr, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, err
	}
	return gvConn{c}, nil
}

func (p *gvisorPair) stats() string {
	one := func(name string, s *stack.Stack) string {
		t := s.Stats().TCP
		return fmt.Sprintf("%s: segments sent %d received %d, retransmits %d (fast %d, timeouts %d), "+
			"recoveries SACK %d TLP %d fast %d, resets sent %d received %d, established %d\n",
			name, t.SegmentsSent.Value(), t.ValidSegmentsReceived.Value(), t.Retransmits.Value(),
			t.FastRetransmit.Value(), t.Timeouts.Value(), t.SACKRecovery.Value(), t.TLPRecovery.Value(),
			t.FastRecovery.Value(), t.ResetsSent.Value(), t.ResetsReceived.Value(), t.CurrentEstablished.Value())
	}
	return one("client stack", p.client) + one("server stack", p.server) +
		fmt.Sprintf("link: lost to server %d, to client %d; queue drops from client %d, from server %d; queued from client %d, from server %d",
			p.lost[0].Load(), p.lost[1].Load(), p.ec.queueDrops.Load(), p.es.queueDrops.Load(), p.ec.NumQueued(), p.es.NumQueued())
}

func (p *gvisorPair) close() {
	p.closed.Do(func() {
		// Stop the pumps first, so nothing is injected into a stack
		// being torn down; Destroy aborts the connections, waits for the
		// stack's goroutines and closes the channel endpoints (dropping
		// what they hold).
		p.cancel()
		p.wg.Wait()
		p.client.Destroy()
		p.server.Destroy()
	})
}
