package tcp

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/conduit-go/conduit/clock"
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
	// negative sends every ACK at once, SACKs too (no SACK
	// compression).
	DelayedACK time.Duration
	// CongestionControl selects the congestion controller; the zero
	// value is CUBIC.
	CongestionControl CongestionControl
	// NoHyStart turns off HyStart++ (RFC 9406), which ends a
	// connection's first slow start when the RTT rises by a few
	// milliseconds from one round trip to the next (a queue building at
	// the bottleneck), before the queue overflows, then grows the window
	// a quarter as fast for five round trips before congestion avoidance
	// (Stats.HyStartCSS, HyStartExits). Without it the first slow start
	// ends at the first loss, typically a window's worth of drops at a
	// bottleneck with a short queue.
	NoHyStart bool
	// NoMetricsSave keeps a connection from passing what it learned
	// about its path on to the next connection to the same address
	// (Linux's tcp_no_metrics_save). By default, a path that reordered
	// is known to reorder for an hour: a new connection on it starts
	// with the reordering window measured before rather than learning
	// it from its own spurious retransmissions (RFC 9040 section 4).
	NoMetricsSave bool
	// FixedRecvWindow offers the whole RecvBuffer as the window from the
	// start. By default the window starts at 64 KiB and grows, once a
	// round trip, ahead of what arrives (Linux's receive buffer
	// autotuning), so that a sender in slow start cannot fill a path
	// with one burst the size of the buffer.
	FixedRecvWindow bool
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
