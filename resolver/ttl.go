package resolver

import "time"

// How long an answer stays valid, inside the package: ttlForever for one
// that never changes (an IP literal, a static table), ttlUnknown for a
// lookup that gives no TTL (Config.LookupHost, the system resolver, a
// LookupSRV hook's zero TTL), else a DNS TTL, where 0 means "do not
// cache" (RFC 1035 §3.2.1; Consul's default).
const (
	ttlForever = time.Duration(-1)
	ttlUnknown = time.Duration(-2)
)

// minTTL combines the TTLs of two answers: the lower DNS TTL; ttlForever
// is neutral, and so is ttlUnknown beside a known TTL.
func minTTL(a, b time.Duration) time.Duration {
	switch {
	case a == ttlForever:
		return b
	case b == ttlForever:
		return a
	case a == ttlUnknown:
		return b
	case b == ttlUnknown:
		return a
	}
	return min(a, b)
}
