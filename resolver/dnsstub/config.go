package dnsstub

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/conduit-go/conduit/clock"
)

// Config configures a Stub. The zero value works: 127.0.0.1:53, no search
// list, ndots 1, a 5 s timeout, 2 attempts, and the cache defaults. New
// copies the Config; it may be reused afterwards.
type Config struct {
	// Nameservers are asked in order, each attempt going through the
	// list. Empty means 127.0.0.1:53. A zero port means 53.
	Nameservers []netip.AddrPort
	// Search is the search list for names without a trailing dot.
	Search []string
	// Ndots: a name with at least Ndots dots is first tried as is, before
	// the search list. 0 means 1; negative means 0.
	Ndots int
	// Timeout is the wait for one server's answer. 0 means 5 s.
	Timeout time.Duration
	// Attempts is how many times the whole server list is tried. 0 means 2.
	Attempts int
	// UDPSize is the EDNS0 UDP payload size advertised. 0 means 1232.
	UDPSize uint16
	// MaxCNAME is the longest CNAME chain followed. 0 means 8.
	MaxCNAME int
	// Cache configures the answer cache.
	Cache CacheConfig
	// Clock is the cache's clock: it times the answers' TTLs and the
	// stale answers. Nil means clock.Real(). (Network timeouts use real
	// time.)
	Clock clock.Clock
	// Logger receives debug messages (dropped responses, retries). Nil
	// means none.
	Logger *slog.Logger
}

// CacheConfig configures a Stub's cache. The zero value gives the defaults.
type CacheConfig struct {
	// MinTTL and MaxTTL clamp the TTL of positive answers. 0 means no
	// minimum and a maximum of 24 h.
	MinTTL, MaxTTL time.Duration
	// NegativeTTL is the maximum time a NXDOMAIN or NODATA answer is
	// cached (RFC 2308: the SOA's TTL or minimum, whichever is lower,
	// bounded by this). 0 means 1 h; negative disables negative caching.
	NegativeTTL time.Duration
	// StaleTTL is how long after expiry an answer may still be served when
	// every server fails (RFC 8767). 0 means 1 h; negative disables it.
	StaleTTL time.Duration
	// MaxEntries bounds the cache. 0 means 10000; negative disables the
	// cache (concurrent queries are still shared).
	MaxEntries int
}

// Clone returns a copy of c with its own slices.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	n := *c
	n.Nameservers = append([]netip.AddrPort(nil), c.Nameservers...)
	n.Search = append([]string(nil), c.Search...)
	return &n
}

// ReadResolvConf reads a resolv.conf(5) file: nameserver, search and
// domain (the last of them wins), and options ndots:N, timeout:N (seconds)
// and attempts:N. Unknown lines and options are ignored; invalid
// nameserver addresses are skipped. A file without a nameserver gives
// 127.0.0.1:53, as the C library does.
func ReadResolvConf(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return parseResolvConf(data), nil
}

// parseResolvConf parses the contents of a resolv.conf file.
func parseResolvConf(data []byte) *Config {
	cfg := &Config{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	sc.Split(scanLines)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 || len(cfg.Nameservers) >= 16 {
				continue
			}
			a, err := netip.ParseAddr(f[1])
			if err != nil {
				continue
			}
			cfg.Nameservers = append(cfg.Nameservers, netip.AddrPortFrom(a.Unmap(), 53))
		case "domain":
			if len(f) >= 2 {
				cfg.Search = []string{f[1]}
			}
		case "search":
			cfg.Search = nil
			for _, s := range f[1:] {
				if s != "." && len(cfg.Search) < 32 {
					cfg.Search = append(cfg.Search, s)
				}
			}
		case "options":
			for _, o := range f[1:] {
				k, v, ok := strings.Cut(o, ":")
				if !ok {
					continue
				}
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					continue
				}
				switch k {
				case "ndots":
					cfg.Ndots = min(n, 15)
					if cfg.Ndots == 0 {
						cfg.Ndots = -1 // explicit 0
					}
				case "timeout":
					cfg.Timeout = time.Duration(min(max(n, 1), 30)) * time.Second
				case "attempts":
					cfg.Attempts = min(max(n, 1), 5)
				}
			}
		}
	}
	return cfg
}

// scanLines is bufio.ScanLines that also ends a line too long for the
// buffer, instead of failing.
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Accessors with the defaults.

func (c *Config) ndots() int {
	switch {
	case c.Ndots == 0:
		return 1
	case c.Ndots < 0:
		return 0
	}
	return c.Ndots
}

func (c *Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 5 * time.Second
	}
	return c.Timeout
}

func (c *Config) attempts() int {
	if c.Attempts <= 0 {
		return 2
	}
	return c.Attempts
}

func (c *Config) udpSize() uint16 {
	if c.UDPSize < 512 {
		return 1232
	}
	return c.UDPSize
}

func (c *Config) maxCNAME() int {
	if c.MaxCNAME <= 0 {
		return 8
	}
	return c.MaxCNAME
}

func (c *CacheConfig) maxTTL() time.Duration {
	if c.MaxTTL <= 0 {
		return 24 * time.Hour
	}
	return c.MaxTTL
}

func (c *CacheConfig) negativeTTL() time.Duration {
	switch {
	case c.NegativeTTL == 0:
		return time.Hour
	case c.NegativeTTL < 0:
		return 0
	}
	return c.NegativeTTL
}

func (c *CacheConfig) staleTTL() time.Duration {
	switch {
	case c.StaleTTL == 0:
		return time.Hour
	case c.StaleTTL < 0:
		return 0
	}
	return c.StaleTTL
}

func (c *CacheConfig) maxEntries() int {
	switch {
	case c.MaxEntries == 0:
		return 10000
	case c.MaxEntries < 0:
		return 0
	}
	return c.MaxEntries
}
