package resolver

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// DefaultResolvConf is the resolv.conf(5) file a resolver reads when
// Config.DNS is nil.
const DefaultResolvConf = "/etc/resolv.conf"

// Config configures a URIResolver. The zero value (or a nil *Config) is
// valid: the system's hosts file and resolver, and the built-in services.
// New copies what it needs; the Config may be reused afterwards.
type Config struct {
	// Hosts is a static hosts table, consulted before the hosts file and
	// the system. Keys are host names (matched case-insensitively and
	// without a trailing dot); invalid addresses are ignored.
	Hosts map[string][]netip.Addr

	// HostsFile is a hosts(5) file read once by New and consulted after
	// Hosts. Empty means DefaultHostsFile; "-" disables it. A missing file
	// is an empty table; any other read error makes New fail.
	HostsFile string

	// Services adds service schemes to the built-in table (http 80, https
	// 443 TLS, ssh 22, …; see docs/uris.md) or overrides its entries.
	// Scheme names are case-insensitive; the transport schemes (tcp, tls,
	// unix, tls+unix, vchan, tls+vchan) cannot be overridden and a port
	// must be non-zero.
	Services map[string]Service

	// LookupHost looks up the addresses of a host name that is neither
	// "localhost" nor in the static tables. Nil means
	// net.DefaultResolver.LookupNetIP(ctx, "ip", host). It must honour
	// ctx, and should return a *net.DNSError with IsNotFound set (or an
	// error wrapping ErrNotFound) when the name does not exist. It may be
	// called concurrently.
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)

	// DNS configures the DNS stub resolver (package dnsstub) used for
	// host names when LookupHost is nil and for SRV records when LookupSRV
	// is nil. Nil means DefaultResolvConf read by dnsstub.ReadResolvConf,
	// or, when it cannot be read, the system resolver
	// (net.DefaultResolver). New copies it.
	DNS *dnsstub.Config

	// LookupSRV looks up the SRV records of a name such as
	// "_http._tcp.example.com" (srv:// and SCHEME+srv:// URIs). Nil means
	// the DNS stub (or net.DefaultResolver.LookupSRV without one). A name
	// without records should give an error matching ErrNotFound. It may be
	// called concurrently.
	LookupSRV func(ctx context.Context, name string) ([]dnsstub.SRV, error)

	// LookupSVCB looks up the SVCB or HTTPS records (RFC 9460) of a name,
	// qtype dnsstub.TypeSVCB or dnsstub.TypeHTTPS, for the services that
	// opt in (Service.SVCB). A name without records should give an error
	// matching ErrNotFound. Nil means the DNS stub's LookupSVCB when the
	// stub also looks up host addresses (LookupHost nil and a DNS stub);
	// else no SVCB records are asked. It may be called concurrently.
	LookupSVCB func(ctx context.Context, name string, qtype uint16) ([]dnsstub.SVCB, error)

	// Rand is the random source for the weighted order of SRV targets
	// (RFC 2782) and the jitter of Watch. Nil means math/rand/v2's global
	// source. New wraps it with a lock: it need not be safe for
	// concurrent use, but must not be used elsewhere.
	Rand rand.Source

	// Clock is the resolver's clock: it times Watch's refreshes, the
	// deadline of each SRV target lookup and the cache of resolved
	// URIs, and is the DNS stub's clock unless DNS.Clock is set (then
	// the cache of resolved URIs follows DNS.Clock, whose TTLs it
	// keeps). Nil means clock.Real(). Tests inject a *clock.Manual to
	// advance time without sleeping.
	Clock clock.Clock

	// RefreshInterval is how often Watch re-resolves a name whose lookup
	// gives no TTL (LookupHost, the system resolver, a LookupSRV whose
	// records have TTL 0). 0 means 30 s.
	RefreshInterval time.Duration

	// MinRefreshInterval is the shortest time between two resolutions by
	// Watch, and how often it re-resolves an answer whose DNS TTL is 0
	// ("do not cache", Consul's default), with 0 to 10% of jitter above
	// it. 0 means 1 s.
	MinRefreshInterval time.Duration

	// SRVConcurrency is how many targets of one SRV answer are looked up
	// at once, per resolution. 0 means 8.
	SRVConcurrency int

	// MaxSRVTargets is the most records of one SRV answer that are used:
	// the first ones in RFC 2782 order (priority, then weighted random
	// choice within a priority, drawn again on each resolution), their
	// targets looked up; the others are dropped, counted in Stats and
	// logged (Logger, debug level). 0 means 32.
	MaxSRVTargets int

	// SRVTargetTimeout bounds the address lookup of each SRV target
	// (within the caller's context): a target that does not resolve in
	// time is skipped, as one that fails, and the targets after it
	// proceed. 0 means 2 s.
	SRVTargetTimeout time.Duration

	// Logger receives debug records (SRV answers capped at
	// MaxSRVTargets). Nil means none.
	Logger *slog.Logger

	// PreferIPv4 puts the IPv4 addresses of a name before its IPv6 ones,
	// keeping the order within each family. By default the order of the
	// lookup is kept. (conduit's Happy Eyeballs interleaves the families
	// either way; this decides which goes first.)
	PreferIPv4 bool

	// ServicesFile is a services(5) file whose TCP entries add service
	// schemes (TLS for the implicit-TLS services IANA lists, such as
	// ftps or submissions). The built-in table and Services take
	// precedence. Empty means DefaultServicesFile; "-" reads none; a
	// missing file is no error.
	ServicesFile string

	// Rewrites map the host names under domain suffixes to endpoints of
	// their own, before the hosts tables and DNS: see Rewrite.
	Rewrites []Rewrite
}
