package tcp

import "net/netip"

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
