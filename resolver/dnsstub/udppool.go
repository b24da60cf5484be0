package dnsstub

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Sizes of a udpPool.
const (
	// poolConns is the number of sockets a pool keeps per nameserver.
	poolConns = 4
	// maxConnUses is how many queries a socket sends before it is retired
	// and replaced by one on a fresh random source port, so that a
	// long-lived socket does not give an off-path attacker a fixed port
	// to aim spoofed answers at.
	maxConnUses = 256
)

// A udpPool keeps a few connected UDP sockets to one nameserver, shared by
// concurrent queries. Each socket has a reader goroutine, owned by the
// Stub (s.wg), that hands each response to the query it answers: found by
// ID among the socket's queries in flight (IDs are random and unique per
// socket), then validated against that query (question, flags) exactly as
// a response on a private socket is. Anything else — an unknown ID, a
// wrong question, garbage — is dropped and counted, and the query keeps
// waiting.
type udpPool struct {
	s       *Stub
	server  netip.AddrPort
	maxUses int          // maxConnUses; tests lower it
	opened  atomic.Int64 // sockets opened, for tests

	mu     sync.Mutex
	conns  []*udpConn // poolConns of them; nil: to be opened on demand
	next   int        // round robin over conns
	closed bool
}

// A udpConn is one pooled socket and the queries waiting on it.
type udpConn struct {
	pool *udpPool
	c    *net.UDPConn

	mu      sync.Mutex
	pending map[uint16]*pendingQuery
	uses    int  // queries sent on it
	retired bool // takes no new queries; closed once pending is empty
	closed  bool // c is closed (or being closed): the reader exits
}

// A pendingQuery is a query waiting for its response.
type pendingQuery struct {
	q  *dns.Msg
	ch chan udpResult // buffered: the reader never blocks
}

type udpResult struct {
	m   *dns.Msg
	err error
}

// timerPool holds stopped timers for the wait on a response.
var timerPool sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timerPool.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop() // since Go 1.23, a stopped timer's channel holds no stale value
	timerPool.Put(t)
}

// packPool holds buffers for packing queries.
var packPool = sync.Pool{New: func() any { b := make([]byte, 512); return &b }}

func newUDPPool(s *Stub, server netip.AddrPort) *udpPool {
	return &udpPool{s: s, server: server, maxUses: maxConnUses, conns: make([]*udpConn, poolConns)}
}

// exchange sends q over one of the pool's sockets (setting q.Id) and waits
// up to timeout, or until ctx ends, for a valid response.
func (p *udpPool) exchange(ctx context.Context, q *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	uc, pq, err := p.register(q)
	if err != nil {
		return nil, err
	}
	bp := packPool.Get().(*[]byte)
	packed, err := q.PackBuffer(*bp)
	if err == nil {
		_, err = uc.c.Write(packed)
	}
	if cap(packed) <= 4096 {
		*bp = packed[:cap(packed)]
	}
	packPool.Put(bp)
	if err != nil {
		uc.unregister(q.Id, pq)
		return nil, err
	}
	t := getTimer(timeout)
	defer putTimer(t)
	var res udpResult
	select {
	case res = <-pq.ch:
		return res.m, res.err
	case <-t.C:
		res.err = ErrTimeout
	case <-ctx.Done():
		res.err = ctx.Err()
	}
	if !uc.unregister(q.Id, pq) {
		// The reader delivered meanwhile: use its answer.
		res = <-pq.ch
	}
	return res.m, res.err
}

// register picks a socket (opening it if needed), gives q an ID unique
// among that socket's queries in flight and registers it.
func (p *udpPool) register(q *dns.Msg) (*udpConn, *pendingQuery, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, ErrClosed
	}
	i := p.next
	p.next = (p.next + 1) % len(p.conns)
	uc := p.conns[i]
	if uc == nil {
		var err error
		if uc, err = p.open(); err != nil {
			p.mu.Unlock()
			return nil, nil, err
		}
		p.conns[i] = uc
	}
	pq := &pendingQuery{q: q, ch: make(chan udpResult, 1)}
	uc.mu.Lock()
	for {
		q.Id = uint16(rand.Uint32())
		if _, busy := uc.pending[q.Id]; !busy {
			break
		}
	}
	uc.pending[q.Id] = pq
	uc.uses++
	if uc.uses >= p.maxUses {
		uc.retired = true
		p.conns[i] = nil
	}
	uc.mu.Unlock()
	p.mu.Unlock()
	return uc, pq, nil
}

// open opens a socket and starts its reader. p.mu is held.
func (p *udpPool) open() (*udpConn, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.server))
	if err != nil {
		return nil, err
	}
	uc := &udpConn{pool: p, c: c, pending: make(map[uint16]*pendingQuery)}
	p.opened.Add(1)
	p.s.wg.Add(1) // under p.mu, after the closed check: before Close's Wait
	go uc.read()
	return uc, nil
}

// close closes every socket; their readers fail the queries still waiting
// and exit. Later exchanges fail with ErrClosed.
func (p *udpPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i, uc := range p.conns {
		if uc != nil {
			uc.shut()
			p.conns[i] = nil
		}
	}
}

// shut closes the socket once, which ends the reader.
func (uc *udpConn) shut() {
	uc.mu.Lock()
	already := uc.closed
	uc.closed = true
	uc.mu.Unlock()
	if !already {
		uc.c.Close()
	}
}

// unregister removes a query that gave up. It reports false when the
// reader has already delivered a result to pq.ch.
func (uc *udpConn) unregister(id uint16, pq *pendingQuery) bool {
	uc.mu.Lock()
	mine := uc.pending[id] == pq
	if mine {
		delete(uc.pending, id)
	}
	idle := uc.retired && len(uc.pending) == 0
	uc.mu.Unlock()
	if idle {
		uc.shut()
	}
	return mine
}

// read is the socket's reader: it delivers each valid response to its
// query and drops the rest, until the socket is closed or fails. A
// failure (an ICMP port unreachable reported as ECONNREFUSED, say) fails
// every query waiting on the socket, which is then replaced.
func (uc *udpConn) read() {
	p := uc.pool
	defer p.s.wg.Done()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := uc.c.Read(buf)
		if err != nil {
			uc.fail(err)
			return
		}
		b := buf[:n]
		if n < 12 {
			p.s.dropped(p.server, "udp", errMismatch)
			continue
		}
		id := uint16(b[0])<<8 | uint16(b[1])
		uc.mu.Lock()
		pq := uc.pending[id] // pq.q is immutable while pending
		uc.mu.Unlock()
		if pq == nil {
			p.s.dropped(p.server, "udp", errMismatch)
			continue
		}
		m, err := validateResponse(pq.q, b) // copies what it keeps from b
		if err != nil {
			p.s.dropped(p.server, "udp", err)
			continue
		}
		uc.mu.Lock()
		mine := uc.pending[id] == pq
		if mine {
			delete(uc.pending, id)
		}
		idle := uc.retired && len(uc.pending) == 0
		uc.mu.Unlock()
		if mine {
			pq.ch <- udpResult{m: m}
		} else {
			p.s.dropped(p.server, "udp", errMismatch) // it gave up meanwhile
		}
		if idle {
			uc.shut()
		}
	}
}

// fail ends the socket after a read error: it is removed from the pool,
// closed, and its waiting queries get the error (net.ErrClosed when the
// socket was closed on purpose).
func (uc *udpConn) fail(err error) {
	p := uc.pool
	p.mu.Lock()
	for i, c := range p.conns {
		if c == uc {
			p.conns[i] = nil
		}
	}
	p.mu.Unlock()
	uc.mu.Lock()
	if uc.closed {
		err = net.ErrClosed
	}
	uc.retired = true
	pending := uc.pending
	uc.pending = make(map[uint16]*pendingQuery)
	uc.mu.Unlock()
	uc.shut()
	for _, pq := range pending {
		pq.ch <- udpResult{err: err}
	}
}
