package tcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/conduit-go/conduit/tcpflow"
)

// Dial opens a connection to dst. ctx governs only the setup.
func (p *Protocol) Dial(ctx context.Context, dst netip.AddrPort, opts tcpflow.DialOptions) (tcpflow.Flow, error) {
	dialErr := func(kind, err error) error { return &tcpflow.Error{Op: "dial", Addr: dst, Kind: kind, Err: err} }
	if !dst.Addr().Is4() || dst.Port() == 0 {
		return nil, dialErr(nil, fmt.Errorf("invalid destination %q", dst))
	}
	src := opts.Src
	if src.Addr().IsValid() && src.Addr() != p.o.Addr {
		return nil, dialErr(nil, fmt.Errorf("source %v is not our address %v", src.Addr(), p.o.Addr))
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, dialErr(nil, net.ErrClosed)
	}
	if len(p.conns) >= p.o.MaxConnections {
		p.mu.Unlock()
		return nil, dialErr(nil, errors.New("too many connections"))
	}
	if p.budget.exhausted() {
		p.mu.Unlock()
		p.stats.budgetRefused.Add(1)
		return nil, dialErr(nil, ErrBudgetExhausted)
	}
	var id connID
	if src.Port() != 0 {
		id = connID{local: netip.AddrPortFrom(p.o.Addr, src.Port()), remote: dst}
		if p.conns[id] != nil {
			p.mu.Unlock()
			return nil, dialErr(nil, fmt.Errorf("address %v already connected to %v", id.local, dst))
		}
	} else {
		port, ok := p.pickPortLocked(dst)
		if !ok {
			p.mu.Unlock()
			return nil, dialErr(nil, errors.New("no ephemeral port free"))
		}
		id = connID{local: netip.AddrPortFrom(p.o.Addr, port), remote: dst}
	}
	e := p.newEndpoint(id, opts.Keepalive)
	p.conns[id] = e
	p.mu.Unlock()
	p.stats.active.Add(1)

	e.mu.Lock()
	e.activeOpen()
	e.mu.Unlock()

	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.broadcast()
		e.mu.Unlock()
	})
	defer stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		switch {
		case e.state == stateSynSent || e.state == stateSynRcvd:
		case e.err != nil:
			err := e.err
			kind := kindOf(err)
			if kind == tcpflow.ErrReset {
				kind = tcpflow.ErrRefused
			}
			return nil, dialErr(kind, err)
		default:
			return e, nil
		}
		if err := ctx.Err(); err != nil {
			e.abortLocked(err)
			kind := error(nil)
			if errors.Is(err, context.DeadlineExceeded) {
				kind = tcpflow.ErrTimeout
			}
			return nil, dialErr(kind, err)
		}
		e.cond.Wait()
	}
}
