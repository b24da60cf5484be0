package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/header"
	"github.com/conduit-go/conduit/tcpflow/internal/clock"
	"github.com/conduit-go/conduit/tcpflow/internal/seqnum"
)

// Defaults of Options.
const (
	DefaultMSS            = 1460
	DefaultSendBuffer     = 1 << 20
	DefaultRecvBuffer     = 1 << 20
	DefaultTimeWait       = 60 * time.Second
	DefaultFinTimeout     = 60 * time.Second
	DefaultMaxConnections = 4096
	DefaultSYNBacklog     = 128
	DefaultRTOInitial     = time.Second
	DefaultRTOMin         = 200 * time.Millisecond
	DefaultRTOMax         = 60 * time.Second
	DefaultMaxRetransmits = 15
	DefaultSYNRetries     = 6
	DefaultDelayedACK     = 40 * time.Millisecond
	DefaultUserTimeout    = 5 * time.Minute
)

// Options configures a Protocol. The zero value of every field but
// Output and Addr selects its default.
type Options struct {
	// Addr is our IPv4 address.
	Addr netip.Addr
	// Output sends a TCP segment (header, with its checksum set, then
	// payload) from src to dst over IPv4. It must not retain its
	// arguments and must not call back into the Protocol.
	Output func(src, dst netip.Addr, tcpHeader, payload []byte) error
	// Clock times every timer; nil means the real clock.
	Clock clock.Clock
	// MSS is the largest segment payload we announce and send.
	MSS int
	// SendBuffer and RecvBuffer bound each connection's buffers (bytes).
	SendBuffer, RecvBuffer int
	// BufferBudget bounds the memory the send and receive buffers of
	// all connections pin together (bytes; see budget.go): send and
	// receive rings, buffers lent by the link, out-of-order data. When
	// it is reached, a Write waits as on a full send buffer (its
	// deadline applies), receive windows advertise no more than the
	// memory left, and, once not even 8 KiB is left for a new
	// connection, SYNs are answered with a reset and dials fail with
	// ErrBudgetExhausted (Stats.BudgetRefused). Beyond its first 8 KiB
	// a connection's buffers grow only while the total stays under 7/8
	// of the budget: the last eighth keeps new connections working
	// while peers pin the rest. Zero means DefaultBufferBudget (256
	// MiB), or 16 connections' full buffers, 16 × (SendBuffer +
	// RecvBuffer), if that is more; negative means no budget. A budget
	// below 32 KiB counts as 32 KiB.
	BufferBudget int
	// UserTimeout is how long data may wait for the peer before the
	// connection fails with a timeout (RFC 9293 section 3.8.3's R2,
	// RFC 5482): unacknowledged despite retransmissions, or held back
	// by a zero window that the peer keeps closed while answering our
	// probes (RFC 6429 lets a sender give up on such a peer). It is
	// measured from the peer's last acknowledgment of new data, or from
	// when data began to wait for it. The retransmission and probe
	// timers are clamped so that it ends on time. It also bounds how
	// long a closed connection keeps its unsent data (and its share of
	// BufferBudget) for a peer whose window stays closed. Zero means
	// DefaultUserTimeout (5 minutes); negative means none:
	// retransmissions are then bounded by MaxRetransmits alone, and a
	// zero window is probed for as long as the peer answers (RFC 1122
	// section 4.2.2.17).
	UserTimeout time.Duration
	// TimeWait is 2MSL, the time a connection stays in TIME-WAIT.
	TimeWait time.Duration
	// FinTimeout bounds FIN-WAIT-2 of a connection closed by Close.
	FinTimeout time.Duration
	// ISNSecret keys the initial sequence numbers (RFC 6528) and the
	// ephemeral port offsets (RFC 6056); nil means a random key.
	ISNSecret []byte
	// Logger, when non-nil, receives debug records.
	Logger *slog.Logger
	// MaxConnections bounds the connections (in any state).
	MaxConnections int
	// SYNBacklog bounds each listener's half-open connections
	// (SYN-RECEIVED): SYNs beyond it are answered with SYN cookies (RFC
	// 4987), or dropped with NoSYNCookies. It also sizes the queue of
	// established connections a ListenFlows listener has not accepted
	// yet; a connection that finds it full is reset.
	SYNBacklog int
	// NoSYNCookies disables SYN cookies: a SYN for a listener whose
	// SYNBacklog is full is dropped instead of answered with a SYN-ACK
	// whose sequence number encodes the connection, which the peer's
	// ACK then creates without the backlog. Cookies are used only once
	// the backlog is full, so a SYN flood cannot deny service to real
	// clients; they keep window scale and SACK only if the SYN carried
	// timestamps, and the MSS rounded down to one of a few common
	// values. MaxConnections still applies: at the limit, SYNs and
	// cookie ACKs are dropped.
	NoSYNCookies bool
	// RTOInitial, RTOMin and RTOMax bound the retransmission timeout
	// (RFC 6298). RTOMax also caps the interval between zero-window
	// probes, which doubles from the RTO (RFC 9293 section 3.8.6.1).
	RTOInitial, RTOMin, RTOMax time.Duration
	// MaxRetransmits is the number of retransmissions (or unanswered
	// zero-window probes) after which a connection fails with a timeout.
	MaxRetransmits int
	// SYNRetries is the number of SYN or SYN-ACK retransmissions after
	// which a connection attempt fails with a timeout.
	SYNRetries int
	// ReturnBuffer gives back to the link a buffer that
	// HandleSegmentBuf kept; nil makes the protocol copy everything.
	ReturnBuffer func(buf *[]byte)
	// ChecksumOffload skips computing and checking TCP checksums: the
	// link vouches for the integrity of what it carries (see
	// link.ChecksumOffloader).
	ChecksumOffload bool
	// DelayedACK is how long the ACK of in-order data may wait for a
	// second segment or for data to carry it (RFC 5681 section 4.2);
	// negative sends every ACK at once.
	DelayedACK time.Duration
	// CongestionControl selects the congestion controller; the zero
	// value is CUBIC.
	CongestionControl CongestionControl
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

func (o *Options) setDefaults() {
	o.MSS = orDefault(o.MSS, DefaultMSS)
	o.SendBuffer = orDefault(o.SendBuffer, DefaultSendBuffer)
	o.RecvBuffer = min(orDefault(o.RecvBuffer, DefaultRecvBuffer), 1<<30)
	o.TimeWait = orDefault(o.TimeWait, DefaultTimeWait)
	o.FinTimeout = orDefault(o.FinTimeout, DefaultFinTimeout)
	o.MaxConnections = orDefault(o.MaxConnections, DefaultMaxConnections)
	o.SYNBacklog = orDefault(o.SYNBacklog, DefaultSYNBacklog)
	o.RTOInitial = orDefault(o.RTOInitial, DefaultRTOInitial)
	o.RTOMin = orDefault(o.RTOMin, DefaultRTOMin)
	o.RTOMax = orDefault(o.RTOMax, DefaultRTOMax)
	o.MaxRetransmits = orDefault(o.MaxRetransmits, DefaultMaxRetransmits)
	o.SYNRetries = orDefault(o.SYNRetries, DefaultSYNRetries)
	if o.DelayedACK == 0 {
		o.DelayedACK = DefaultDelayedACK
	}
	if o.BufferBudget == 0 {
		o.BufferBudget = max(DefaultBufferBudget, 16*(o.SendBuffer+o.RecvBuffer))
	}
	if o.UserTimeout == 0 {
		o.UserTimeout = DefaultUserTimeout
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
}

// connID identifies a connection: local and remote address and port.
type connID struct {
	local, remote netip.AddrPort
}

// Stats counts the protocol's events.
type Stats struct {
	SegmentsIn, SegmentsOut   uint64
	Retransmits               uint64 // segments sent again (RTO, fast retransmit, recovery)
	Timeouts                  uint64 // RTO expirations
	FastRetransmits           uint64 // loss recovery episodes begun
	LossProbes                uint64 // tail loss probes sent (RFC 8985 section 7)
	ReorderTimeouts           uint64 // RACK reordering timer expirations (RFC 8985 section 6.3)
	DuplicateSegments         uint64 // data segments received wholly a second time (the peer's spurious retransmissions)
	DSACKs                    uint64 // D-SACK reports received: our retransmissions the peer already had (RFC 2883)
	ResetsOut                 uint64
	InvalidSegments           uint64 // bad options, no such connection and so on
	SYNDropped                uint64 // SYNs (backlog without cookies, connection limit) and cookie ACKs (connection limit)
	PAWSRejected              uint64 // old duplicates caught by their timestamp (RFC 7323)
	ActiveOpens, PassiveOpens uint64
	SYNCookiesSent            uint64 // SYN-ACKs with a cookie (backlog full)
	SYNCookiesValid           uint64 // ACKs giving back a valid cookie
	SYNCookiesInvalid         uint64 // ACKs for no connection to a listener that sent cookies, with no valid one
	BudgetRefused             uint64 // connections refused (SYN or cookie ACK reset, dial failed): the buffer budget is exhausted
	BudgetDrops               uint64 // received segments whose data, or part of it, was dropped: the buffer budget could not hold it
	UserTimeouts              uint64 // connections aborted by Options.UserTimeout
	BufferBytes               uint64 // memory charged to the buffer budget now (a gauge; zero without a budget)
}

type counters struct {
	segIn, segOut, retrans, timeouts, fastRetrans, rstOut, invalid, synDropped, active, passive atomic.Uint64
	paws, lossProbes, reoTimeouts, dupSegs, dsacks                                              atomic.Uint64
	cookiesSent, cookiesValid, cookiesInvalid                                                   atomic.Uint64
	budgetRefused, budgetDrops, userTimeouts                                                    atomic.Uint64
}

// Protocol is the TCP layer of one stack: it demultiplexes segments to
// connections and listeners. It is safe for concurrent use.
type Protocol struct {
	o      Options
	clk    clock.Clock
	epoch  time.Time // the origin of since
	keys   keys
	stats  counters
	budget budget

	mu        sync.Mutex
	closed    bool
	conns     map[connID]*endpoint
	listeners map[uint16]*listener
	// transient holds the listeners function's listeners while they
	// have half-open connections or recently sent cookies, so that a
	// port it accepts has a backlog, and SYN cookies, like any other.
	transient map[uint16]*listener
	listenFn  tcpflow.Listeners
	handlers  map[*endpoint]struct{} // flows running a Process
	nextEph   uint32                 // RFC 6056 algorithm 3 counter
	wg        sync.WaitGroup         // Process goroutines
}

// New returns a Protocol.
func New(o Options) (*Protocol, error) {
	if o.Output == nil {
		return nil, errors.New("tcp: Options.Output is nil")
	}
	if !o.Addr.Is4() {
		return nil, fmt.Errorf("tcp: Options.Addr %v is not an IPv4 address", o.Addr)
	}
	if o.CongestionControl > NewReno {
		return nil, fmt.Errorf("tcp: unknown Options.CongestionControl %v", o.CongestionControl)
	}
	o.setDefaults()
	p := &Protocol{
		o:         o,
		clk:       o.Clock,
		epoch:     o.Clock.Now(),
		conns:     map[connID]*endpoint{},
		listeners: map[uint16]*listener{},
		transient: map[uint16]*listener{},
		handlers:  map[*endpoint]struct{}{},
	}
	p.keys = newKeys(o.ISNSecret)
	p.budget.init(o.BufferBudget)
	return p, nil
}

// since is t on the protocol's own time line, which the connections'
// timers use: the time since the protocol was made (monotonic with the
// real clock).
func (p *Protocol) since(t time.Time) time.Duration { return t.Sub(p.epoch) }

// Stats returns a snapshot of the counters.
func (p *Protocol) Stats() Stats {
	c := &p.stats
	return Stats{
		SegmentsIn: c.segIn.Load(), SegmentsOut: c.segOut.Load(),
		Retransmits: c.retrans.Load(), Timeouts: c.timeouts.Load(),
		FastRetransmits: c.fastRetrans.Load(), ResetsOut: c.rstOut.Load(),
		InvalidSegments: c.invalid.Load(), SYNDropped: c.synDropped.Load(),
		ActiveOpens: c.active.Load(), PassiveOpens: c.passive.Load(),
		PAWSRejected: c.paws.Load(), LossProbes: c.lossProbes.Load(),
		ReorderTimeouts: c.reoTimeouts.Load(), DuplicateSegments: c.dupSegs.Load(),
		DSACKs:         c.dsacks.Load(),
		SYNCookiesSent: c.cookiesSent.Load(), SYNCookiesValid: c.cookiesValid.Load(),
		SYNCookiesInvalid: c.cookiesInvalid.Load(),
		BudgetRefused:     c.budgetRefused.Load(), BudgetDrops: c.budgetDrops.Load(),
		UserTimeouts: c.userTimeouts.Load(),
		BufferBytes:  uint64(max(p.budget.used.Load(), 0)),
	}
}

// BudgetWaiters returns the number of writers waiting for the buffer
// budget to free memory, for tests and monitoring.
func (p *Protocol) BudgetWaiters() int { return p.budget.waiters() }

// NumConnections returns the number of connections the protocol tracks,
// TIME-WAIT included.
func (p *Protocol) NumConnections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *Protocol) debug(msg string, args ...any) {
	if p.o.Logger != nil {
		p.o.Logger.Debug(msg, args...)
	}
}

// HandleSegment processes one TCP segment received from src to dst. The
// IPv4 layer has checked that dst is ours; HandleSegment checks the TCP
// checksum and header. seg is not retained.
func (p *Protocol) HandleSegment(src, dst netip.Addr, seg []byte) {
	p.HandleSegmentBuf(src, dst, seg, nil)
}

// HandleSegmentBuf is HandleSegment for a segment lying in buf, a
// buffer the link lends: it reports whether the protocol kept buf (its
// data queued for reading in place), to give it back later through
// Options.ReturnBuffer. With a nil buf or ReturnBuffer it keeps nothing.
func (p *Protocol) HandleSegmentBuf(src, dst netip.Addr, seg []byte, buf *[]byte) (kept bool) {
	if p.o.ReturnBuffer == nil {
		buf = nil
	}
	p.stats.segIn.Add(1)
	t := header.TCP(seg)
	if t.IsValid() != nil || !p.o.ChecksumOffload && !t.IsChecksumValid(src, dst) {
		p.stats.invalid.Add(1)
		return
	}
	s, err := parseSegment(t)
	if err != nil {
		p.stats.invalid.Add(1)
		return
	}
	s.buf = buf
	id := connID{local: netip.AddrPortFrom(dst, t.DstPort()), remote: netip.AddrPortFrom(src, t.SrcPort())}
	if t.SrcPort() == 0 || t.DstPort() == 0 {
		p.stats.invalid.Add(1)
		return
	}
	p.mu.Lock()
	e := p.conns[id]
	p.mu.Unlock()
	if e != nil {
		e.handleSegment(&s)
		return s.kept
	}
	p.handleNoConn(id, &s)
	return s.kept
}

// returnBuf gives a lent buffer back to the link.
func (p *Protocol) returnBuf(b *[]byte) { p.o.ReturnBuffer(b) }

// handleNoConn handles a segment for no connection: a SYN for a
// listener, an ACK giving back a SYN cookie, or a reset (RFC 9293
// section 3.10.7.1).
func (p *Protocol) handleNoConn(id connID, s *segment) {
	if s.flags&header.TCPFlagRST != 0 {
		return
	}
	switch s.flags & (header.TCPFlagSYN | header.TCPFlagACK) {
	case header.TCPFlagSYN:
		if p.handleSYN(id, s) {
			return
		}
	case header.TCPFlagACK:
		if p.handleCookieACK(id, s) {
			return
		}
	}
	p.stats.invalid.Add(1)
	p.sendResetFor(id, s)
}

// sendResetFor answers s, which belongs to no connection, with a reset.
func (p *Protocol) sendResetFor(id connID, s *segment) {
	if s.flags&header.TCPFlagRST != 0 {
		return
	}
	var f header.TCPFields
	f.SrcPort, f.DstPort = id.local.Port(), id.remote.Port()
	if s.flags&header.TCPFlagACK != 0 {
		f.SeqNum = uint32(s.ack)
		f.Flags = header.TCPFlagRST
	} else {
		f.AckNum = uint32(s.seq.Add(s.logicalLen()))
		f.Flags = header.TCPFlagRST | header.TCPFlagACK
	}
	p.stats.rstOut.Add(1)
	p.writeFields(id, &f, nil)
}

// writeFields encodes f, checksums it with payload and sends it.
func (p *Protocol) writeFields(id connID, f *header.TCPFields, payload []byte) {
	var buf [header.TCPMaximumHeaderSize]byte
	p.writeFieldsBuf(id, f, payload, &buf)
}

// writeFieldsBuf is writeFields encoding the header in buf: a
// connection passes its own, so that sending allocates nothing.
func (p *Protocol) writeFieldsBuf(id connID, f *header.TCPFields, payload []byte, buf *[header.TCPMaximumHeaderSize]byte) {
	hl := f.EncodedLen()
	h := header.TCP(buf[:hl])
	h.Encode(f)
	src, dst := id.local.Addr(), id.remote.Addr()
	if p.o.ChecksumOffload {
		h.SetChecksum(0)
	} else {
		ph := header.PseudoHeaderChecksum(header.ProtocolTCP, src, dst, uint16(hl+len(payload)))
		h.SetChecksum(^header.Checksum(payload, h.CalculateChecksum(ph)))
	}
	p.stats.segOut.Add(1)
	if err := p.o.Output(src, dst, h, payload); err != nil {
		p.debug("tcp: output failed", "err", err)
	}
}

// listenerFor returns the listener for port, consulting the listeners
// function for ports without one. p.mu is held.
func (p *Protocol) listenerForLocked(port uint16) *listener {
	if l := p.lookupListenerLocked(port); l != nil {
		return l
	}
	if p.listenFn == nil {
		return nil
	}
	fl := p.listenFn(port)
	if fl == nil || fl.Process == nil {
		return nil
	}
	l := &listener{p: p, port: port, process: fl.Process, ka: fl.Keepalive, transient: true}
	p.transient[port] = l
	return l
}

// handleSYN starts a passive open, or answers with a SYN cookie when
// the listener's backlog is full; it reports whether a listener took
// the SYN (or dropped it for lack of room), false to reset it.
func (p *Protocol) handleSYN(id connID, s *segment) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	l := p.listenerForLocked(id.local.Port())
	if l == nil {
		p.mu.Unlock()
		return false
	}
	if len(p.conns) >= p.o.MaxConnections || l.pending >= p.o.SYNBacklog && p.o.NoSYNCookies {
		// At the connection limit a cookie could not become a
		// connection either.
		p.forgetTransientLocked(l)
		p.mu.Unlock()
		p.stats.synDropped.Add(1)
		return true
	}
	if p.budget.exhausted() {
		// No memory for its buffers: refused at once rather than left
		// to retransmit its SYN.
		p.forgetTransientLocked(l)
		p.mu.Unlock()
		p.stats.budgetRefused.Add(1)
		p.sendResetFor(id, s)
		return true
	}
	if l.pending >= p.o.SYNBacklog {
		now := p.clk.Now()
		l.cookieSlot = cookieSlot(now) + 1
		p.mu.Unlock()
		p.sendCookie(id, s, now)
		return true
	}
	l.pending++
	e := p.newEndpoint(id, l.ka)
	e.listener = l
	p.conns[id] = e
	p.mu.Unlock()
	p.stats.passive.Add(1)
	e.mu.Lock()
	e.passiveOpen(s)
	e.mu.Unlock()
	return true
}

// remove forgets e; called with e.mu held.
func (p *Protocol) remove(e *endpoint) {
	p.mu.Lock()
	if p.conns[e.id] == e {
		delete(p.conns, e.id)
	}
	if l := e.listener; l != nil && !e.delivered {
		l.pending--
		e.listener = nil
		p.forgetTransientLocked(l)
	}
	p.mu.Unlock()
}

// forgetTransientLocked drops a listeners function's listener from the
// cache once it has no half-open connection and sent no cookie in the
// last two slots. p.mu is held.
func (p *Protocol) forgetTransientLocked(l *listener) {
	if !l.transient || l.pending > 0 || p.transient[l.port] != l {
		return
	}
	if l.cookieSlot != 0 && cookieSlot(p.clk.Now())-(l.cookieSlot-1) <= 1 {
		return
	}
	delete(p.transient, l.port)
}

// lookupListenerLocked returns the listener of port, if any, without
// consulting the listeners function. p.mu is held.
func (p *Protocol) lookupListenerLocked(port uint16) *listener {
	if l := p.listeners[port]; l != nil {
		return l
	}
	return p.transient[port]
}

// established is called (without e.mu) when a passive connection is
// established: it goes to its listener.
func (p *Protocol) established(e *endpoint) {
	p.mu.Lock()
	l := e.listener
	if l == nil {
		p.mu.Unlock()
		return
	}
	e.delivered = true
	l.pending--
	p.forgetTransientLocked(l)
	if p.closed || l.closed {
		p.mu.Unlock()
		e.discard()
		return
	}
	if l.process != nil {
		p.handlers[e] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.process(e, l.process)
		return
	}
	p.mu.Unlock()
	select {
	case l.accept <- e:
	default:
		e.discard() // the accept queue is full
	}
}

func (p *Protocol) process(e *endpoint, fn func(tcpflow.Flow)) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.handlers, e)
		p.mu.Unlock()
		e.Close()
	}()
	fn(e)
}

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

// Ephemeral port range (IANA, RFC 6335).
const (
	ephemeralMin = 49152
	ephemeralMax = 65535
)

// pickPortLocked chooses a local port for a connection to dst with
// RFC 6056 algorithm 3 (double-hash port selection). p.mu is held.
func (p *Protocol) pickPortLocked(dst netip.AddrPort) (uint16, bool) {
	const n = ephemeralMax - ephemeralMin + 1
	offset := p.keys.portOffset(p.o.Addr, dst)
	for count := uint32(0); count < n; count++ {
		port := uint16(ephemeralMin + (p.nextEph+offset+count)%n)
		p.nextEph++
		id := connID{local: netip.AddrPortFrom(p.o.Addr, port), remote: dst}
		if p.conns[id] == nil && p.listeners[port] == nil {
			return port, true
		}
	}
	return 0, false
}

// HandleICMPError handles an ICMP error quoting a segment we sent from
// local to remote with sequence number seq. refused is true for a port
// or protocol unreachable (a hard error during setup), false for other
// soft errors, which are ignored.
func (p *Protocol) HandleICMPError(local, remote netip.AddrPort, seq uint32, refused bool) {
	p.mu.Lock()
	e := p.conns[connID{local: local, remote: remote}]
	p.mu.Unlock()
	if e == nil || !refused {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// RFC 5927: only act on errors quoting a sequence number in flight.
	v := seqnum.Value(seq)
	if e.state == stateSynSent && v.InRange(e.sndUna, e.sndMax.Add(1)) {
		e.fail(errICMPRefused)
	}
}

// Close removes every listener, closes the flows whose Process is still
// running, waits for those Process calls, and aborts every connection
// (their flows fail with net.ErrClosed): a userspace stack cannot carry
// connections on without itself.
func (p *Protocol) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for port, l := range p.listeners {
		l.closeLocked()
		delete(p.listeners, port)
	}
	p.listenFn = nil
	var handlers []*endpoint
	for e := range p.handlers {
		handlers = append(handlers, e)
	}
	p.mu.Unlock()
	for _, e := range handlers {
		e.Close()
	}
	p.wg.Wait()
	p.budget.close()
	p.mu.Lock()
	var all []*endpoint
	for _, e := range p.conns {
		all = append(all, e)
	}
	p.mu.Unlock()
	for _, e := range all {
		e.abort(net.ErrClosed)
	}
	return nil
}

// DebugStates returns the states of the connections, space-separated,
// for tests and logs.
func (p *Protocol) DebugStates() string {
	p.mu.Lock()
	var es []*endpoint
	for _, e := range p.conns {
		es = append(es, e)
	}
	p.mu.Unlock()
	s := ""
	for i, e := range es {
		if i > 0 {
			s += " "
		}
		e.mu.Lock()
		s += e.state.String()
		e.mu.Unlock()
	}
	return s
}

// DebugDump describes every connection's variables, for debugging.
func (p *Protocol) DebugDump() string {
	p.mu.Lock()
	var es []*endpoint
	for _, e := range p.conns {
		es = append(es, e)
	}
	p.mu.Unlock()
	s := ""
	for _, e := range es {
		e.mu.Lock()
		s += fmt.Sprintf("%v->%v %v una=%d nxt=%d max=%d wnd=%d cwnd=%d ssthresh=%d sndBuf=%d bufStart=%d fin=%v rcvNxt=%d adv=%d rcvBuf=%d ooo=%d rto=%v rtoArmed=%v persist=%v retries=%d recovery=%v dup=%d charged=%d err=%v\n",
			e.id.local, e.id.remote, e.state, e.sndUna-e.iss, e.sndNxt-e.iss, e.sndMax-e.iss, e.sndWnd, e.cwnd, e.ssthresh,
			e.sndBuf.Len(), e.sndBufStart-e.iss, e.finQueued, e.rcvNxt-e.irs, e.rcvAdvEdge-e.irs, e.rcvBuf.Len(), len(e.ooo),
			e.rto, e.rtoTimer.armed(), e.persistTimer.armed(), e.retries, e.inRecovery, e.dupAcks, e.charged, e.err)
		e.mu.Unlock()
	}
	return s
}
