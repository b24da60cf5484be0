package dnsstub

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// bufPool holds 64 KiB read buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 65535); return &b }}

// exchange sends q to the i-th server over UDP (through its socket
// pool, which sets q.Id), retrying over TCP when the answer is truncated,
// and returns the first response that matches q. Responses that do not
// match are dropped and counted. The exchange lasts at most timeout, and
// ends with ctx.
func (s *Stub) exchange(ctx context.Context, i int, q *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	start := time.Now()
	m, err := s.pools[i].exchange(ctx, q, timeout)
	if err != nil || !m.Truncated {
		return m, err
	}
	s.stats.truncated.Add(1)
	packed, err := q.Pack()
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithDeadline(ctx, start.Add(timeout))
	defer cancel()
	return s.exchangeTCP(tctx, s.servers[i], q, packed)
}

// dial connects to server and arranges for ctx to interrupt the
// connection's reads and writes.
func dial(ctx context.Context, network string, server netip.AddrPort) (net.Conn, func() bool, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, server.String())
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return c, stop, nil
}

func (s *Stub) exchangeTCP(ctx context.Context, server netip.AddrPort, q *dns.Msg, packed []byte) (*dns.Msg, error) {
	c, stop, err := dial(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	defer stop()
	out := make([]byte, 2+len(packed))
	binary.BigEndian.PutUint16(out, uint16(len(packed)))
	copy(out[2:], packed)
	if _, err := c.Write(out); err != nil {
		return nil, ctxErr(ctx, err)
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, ctxErr(ctx, err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, ctxErr(ctx, err)
	}
	m, err := validateResponse(q, buf)
	if err != nil {
		s.dropped(server, "tcp", err)
		return nil, err
	}
	if m.Truncated && len(m.Question) == 0 {
		return nil, errMismatch // a header-only truncated answer over TCP is useless
	}
	return m, nil
}

// ctxErr maps an I/O error caused by ctx (a deadline or a cancellation
// turned into a past deadline) to ErrTimeout or ctx's error.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ErrTimeout
		}
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return err
}

func (s *Stub) dropped(server netip.AddrPort, network string, err error) {
	s.stats.dropped.Add(1)
	if s.log != nil {
		s.log.Debug("dns: dropped response", "server", server, "net", network, "err", err)
	}
}
