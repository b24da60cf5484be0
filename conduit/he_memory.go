package conduit

import (
	"sync"
	"time"

	"github.com/conduit-go/conduit/endpoint"
)

// DefaultFamilyMemory is how long a Conduit remembers the address family
// that won a host's last dial (Config.FamilyMemory).
const DefaultFamilyMemory = 10 * time.Minute

// maxFamilyMemory bounds the host names remembered: past it, the
// expired entries go, then the oldest.
const maxFamilyMemory = 1024

// familyMemory remembers, per host name, the address family ("4" or "6")
// of the endpoint that won the last dial and when (RFC 8305 §7 suggests
// keeping such state, short-lived, so that the next connection starts
// with what worked). It is safe for concurrent use; the zero value is
// empty.
type familyMemory struct {
	mu    sync.Mutex
	hosts map[string]familyWin
}

type familyWin struct {
	family string
	at     time.Time
}

// get returns host's remembered family, or "" when none was remembered
// in the last ttl before now.
func (m *familyMemory) get(host string, now time.Time, ttl time.Duration) string {
	if host == "" || ttl <= 0 {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.hosts[host]
	if !ok {
		return ""
	}
	if now.Sub(w.at) >= ttl {
		delete(m.hosts, host)
		return ""
	}
	return w.family
}

// put remembers that family won host's dial at now.
func (m *familyMemory) put(host, family string, now time.Time, ttl time.Duration) {
	if host == "" || ttl <= 0 || (family != "4" && family != "6") {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hosts == nil {
		m.hosts = make(map[string]familyWin)
	}
	if _, ok := m.hosts[host]; !ok && len(m.hosts) >= maxFamilyMemory {
		oldest := ""
		for h, w := range m.hosts {
			if now.Sub(w.at) >= ttl {
				delete(m.hosts, h)
			} else if oldest == "" || w.at.Before(m.hosts[oldest].at) {
				oldest = h
			}
		}
		if len(m.hosts) >= maxFamilyMemory {
			delete(m.hosts, oldest)
		}
	}
	m.hosts[host] = familyWin{family, now}
}

// familyMemoryTTL is Config.FamilyMemory with its default.
func (c *Conduit) familyMemoryTTL() time.Duration {
	switch d := c.cfg.FamilyMemory; {
	case d == 0:
		return DefaultFamilyMemory
	case d < 0:
		return 0
	default:
		return d
	}
}

// hostOf is the host name an endpoint was resolved from, the key of the
// family memory: the Host of its innermost endpoint when that is TCP.
func hostOf(ep endpoint.Endpoint) string {
	if t, ok := endpoint.Innermost(ep).(endpoint.TCP); ok && t.Host != t.Addr.Addr().String() {
		return t.Host
	}
	return ""
}
