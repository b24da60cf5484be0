package tcp

import (
	"net/netip"
	"sync"
	"time"
)

// What a connection learned about the path to its peer outlives it, for
// the next connection to the same address: the temporal sharing of RFC
// 9040 section 4, as Linux's tcp_metrics keeps its "reordering" metric.
// Only the path's reordering is kept. A new connection on a path known to
// reorder starts with RACK alone deciding losses (no duplicate-ACK
// threshold) and with the reordering window measured before, instead of
// learning both from its own spurious retransmissions at its start; the
// window then lasts dsackPersist recoveries without a D-SACK, as a
// measured one does. RTT, ssthresh and the window are not kept: Linux
// seeds only its first RTO from a cached RTT and by default keeps no
// ssthresh (tcp_no_ssthresh_metrics_save), as a stale one harms more
// than it helps.

const (
	// pathMetricsTTL is how long a path's metrics are kept after the
	// connection that saved them (Linux's TCP_METRICS_TIMEOUT).
	pathMetricsTTL = time.Hour
	// maxPathMetrics bounds the addresses remembered: a new one beyond
	// it replaces the oldest.
	maxPathMetrics = 1024
)

// pathMetrics is what one remote address's path showed.
type pathMetrics struct {
	reoWnd time.Duration // the reordering window measured from D-SACKs, if any
	saved  time.Duration // when (Protocol.since)
}

// pathCache holds the metrics of recently used paths, by remote address.
type pathCache struct {
	mu sync.Mutex
	m  map[netip.Addr]pathMetrics
}

// savePath records what e learned about its path, when it saw
// reordering: its measured window, or the one saved before if it
// measured none. e.mu is held.
func (e *endpoint) savePath() {
	if e.p.o.NoMetricsSave || !e.reordering {
		return
	}
	c, addr, now := &e.p.paths, e.id.remote.Addr(), e.p.since(e.now())
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[addr]
	m := pathMetrics{reoWnd: e.reoWndMeas, saved: now}
	if m.reoWnd == 0 && ok && now-old.saved < pathMetricsTTL {
		m.reoWnd = old.reoWnd
	}
	if c.m == nil {
		c.m = map[netip.Addr]pathMetrics{}
	}
	if !ok && len(c.m) >= maxPathMetrics {
		var oldest netip.Addr
		first := true
		for a, x := range c.m {
			if first || x.saved < c.m[oldest].saved {
				oldest, first = a, false
			}
		}
		delete(c.m, oldest)
	}
	c.m[addr] = m
}

// loadPath starts e with what an earlier connection learned about the
// path to the same address, if it was saved within pathMetricsTTL.
func (e *endpoint) loadPath() {
	if e.p.o.NoMetricsSave {
		return
	}
	c, addr := &e.p.paths, e.id.remote.Addr()
	c.mu.Lock()
	m, ok := c.m[addr]
	if ok && e.p.since(e.now())-m.saved >= pathMetricsTTL {
		delete(c.m, addr)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	e.reordering = true
	if m.reoWnd > 0 {
		e.reoWndMeas, e.reoWndPersist = m.reoWnd, dsackPersist
	}
}
