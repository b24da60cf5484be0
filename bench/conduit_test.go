package bench

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/stack"
	"github.com/conduit-go/conduit/tcpflow/tcp"
)

var (
	clientAddr = netip.MustParsePrefix("10.0.0.1/24")
	serverAddr = netip.MustParsePrefix("10.0.0.2/24")
)

// conduitPair is two conduit stacks over a channel.NewPair link, which
// delivers each direction's packets from a goroutine of its own and
// applies the loss there.
type conduitPair struct {
	client, server *stack.Stack
	lc, ls         *channel.Endpoint
}

var _ netStack = (*conduitPair)(nil)

func newConduitPair(tb testing.TB, cfg pairConfig) netStack {
	tb.Helper()
	lc, ls := channel.NewPair(cfg.mtu, channel.FaultOptions{Seed: cfg.seed, Loss: cfg.loss, QueueLimit: queueLen, NoChecksumOffload: cfg.swChecksum})
	p := &conduitPair{lc: lc, ls: ls}
	mk := func(addr netip.Prefix, l *channel.Endpoint) *stack.Stack {
		o := stack.Options{
			Addr: addr, Link: l,
			TCP: tcp.Options{SendBuffer: bufferSize, RecvBuffer: bufferSize},
		}
		switch *ccName {
		case "cubic":
			o.TCP.CongestionControl = tcp.CUBIC
		case "reno":
			o.TCP.CongestionControl = tcp.NewReno
		default:
			tb.Fatalf("-cc %q: want cubic or reno", *ccName)
		}
		if cfg.conns > 0 {
			o.TCP.MaxConnections = cfg.conns + 64
			o.TCP.SYNBacklog = cfg.conns
		}
		s, err := stack.New(o)
		if err != nil {
			p.close()
			tb.Fatalf("conduit stack: %v", err)
		}
		return s
	}
	p.client = mk(clientAddr, lc)
	p.server = mk(serverAddr, ls)
	tb.Cleanup(p.close)
	return p
}

type conduitListener struct{ l tcpflow.FlowListener }

func (l conduitListener) accept() (conn, error) {
	f, err := l.l.AcceptFlow()
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (l conduitListener) close() error { return l.l.Close() }

func (p *conduitPair) listen(port uint16) (listener, error) {
	l, err := p.server.ListenFlows(context.Background(), netip.AddrPortFrom(serverAddr.Addr(), port), nil)
	if err != nil {
		return nil, err
	}
	return conduitListener{l}, nil
}

func (p *conduitPair) dial(ctx context.Context, port uint16) (conn, error) {
	f, err := p.client.CreateConnection(ctx, netip.AddrPortFrom(serverAddr.Addr(), port), tcpflow.DialOptions{})
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (p *conduitPair) stats() string {
	s := ""
	if p.client != nil {
		s += fmt.Sprintf("client stack: %+v\n", p.client.Stats())
	}
	if p.server != nil {
		s += fmt.Sprintf("server stack: %+v\n", p.server.Stats())
	}
	return s + fmt.Sprintf("client link: %+v\nserver link: %+v", p.lc.Stats(), p.ls.Stats())
}

func (p *conduitPair) close() {
	// The stacks first (their aborts still reach the link), then the
	// link, whose Close waits for its delivery goroutines.
	if p.client != nil {
		p.client.Close()
	}
	if p.server != nil {
		p.server.Close()
	}
	p.lc.Close()
	p.ls.Close()
}
