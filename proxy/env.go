package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// EnvConfig chooses a proxy per destination from the proxy environment
// variables, with the semantics of golang.org/x/net/http/httpproxy (which
// net/http's ProxyFromEnvironment uses) for HTTP_PROXY, HTTPS_PROXY and
// NO_PROXY, and curl's for ALL_PROXY.
//
// Which variable applies to a destination depends on its conduit URI
// scheme, by the scheme's first part (before any '+'), in any case:
//
//   - "http" (http, http+unix, http+vchan, http+srv): HTTPProxy;
//   - "https" and "tls" (https, https+srv, tls, tls+unix, tls+vchan):
//     HTTPSProxy;
//   - every other scheme (tcp, srv, unix, vchan, custom ones): AllProxy.
//
// When the scheme's own variable is empty, AllProxy applies (curl).
//
// A proxy value is a URL whose scheme is socks5, socks5h, http or https,
// or a bare "host[:port]", which means http:// (httpproxy); a user:pass@
// in it is kept in the URL. A missing port is left missing, for the
// dialer to choose. Any other scheme, or a value that does not parse, is
// an error naming the variable.
//
// NoProxy lists destinations to reach directly, separated by commas or
// white space (curl accepts both; httpproxy commas only), each matched
// case-insensitively:
//
//   - "*" anywhere in the list: no destination is proxied;
//   - an IP address ("10.1.2.3", "::1", "[::1]"), with an optional port
//     ("10.1.2.3:8080", "[::1]:443") matching that port only;
//   - a CIDR range ("10.0.0.0/8", "fd00::/8"), any port;
//   - a domain name, with an optional port: "example.com" matches
//     example.com and every name under it, ".example.com" and
//     "*.example.com" only the names under it (httpproxy's rule); a
//     trailing dot is ignored on both sides and internationalised names
//     are compared in their ASCII form.
//
// Names never match IP entries, nor addresses domain entries (no
// resolution is done). Malformed entries are ignored, as httpproxy does.
//
// Loopback: unless ProxyLoopback is set, "localhost" and loopback
// addresses (127.0.0.0/8, ::1) are never proxied, net/http's rule;
// with ProxyLoopback they are proxied unless NoProxy lists them, curl's.
//
// CGI: when CGI is set (FromEnvironment sets it when REQUEST_METHOD is in
// the environment), a destination to which HTTPProxy applies gets an
// error instead of the proxy, as httpproxy does: a CGI program's
// HTTP_PROXY can be set by a client's "Proxy:" request header
// (https://go.dev/s/cgihttpproxy).
//
// The zero value proxies nothing. An EnvConfig may be read by many
// goroutines at once; it must not be modified while in use.
type EnvConfig struct {
	// HTTPProxy is the proxy of "http" destinations: HTTP_PROXY or
	// http_proxy.
	HTTPProxy string
	// HTTPSProxy is the proxy of "https" and "tls" destinations:
	// HTTPS_PROXY or https_proxy.
	HTTPSProxy string
	// AllProxy is the proxy of every other destination, and of those
	// whose own variable is empty: ALL_PROXY or all_proxy.
	AllProxy string
	// NoProxy lists the destinations reached directly: NO_PROXY or
	// no_proxy.
	NoProxy string
	// ProxyLoopback, when true, lets localhost and loopback destinations
	// be proxied (curl's rule); false keeps net/http's rule of never
	// proxying them.
	ProxyLoopback bool
	// CGI, when true, refuses HTTPProxy (see EnvConfig).
	CGI bool
}

// FromEnvironment reads the proxy variables: HTTP_PROXY, HTTPS_PROXY,
// ALL_PROXY and NO_PROXY, each falling back to its lowercase form when it
// is unset or empty (the uppercase form wins, as in httpproxy); CGI is set
// when REQUEST_METHOD is. ProxyLoopback is false.
func FromEnvironment() *EnvConfig {
	return &EnvConfig{
		HTTPProxy:  getenvAny("HTTP_PROXY", "http_proxy"),
		HTTPSProxy: getenvAny("HTTPS_PROXY", "https_proxy"),
		AllProxy:   getenvAny("ALL_PROXY", "all_proxy"),
		NoProxy:    getenvAny("NO_PROXY", "no_proxy"),
		CGI:        os.Getenv("REQUEST_METHOD") != "",
	}
}

func getenvAny(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// ProxyFor returns the proxy URL for a destination of the given conduit
// URI scheme, host (a name or an IP address, IPv6 with or without
// brackets) and port (0 when unknown: port-specific NoProxy entries do
// not match it), or nil for a direct connection. The error names the
// variable whose value is not a usable proxy URL. ProxyFor parses c on
// every call; ProxyFunc parses it once.
func (c *EnvConfig) ProxyFor(scheme, host string, port uint16) (*url.URL, error) {
	return c.ProxyFunc()(scheme, host, port)
}

// ProxyFunc returns ProxyFor as a function that parses c once: later
// changes to c do not affect it. The function is safe for concurrent use;
// it returns a new *url.URL on each call.
func (c *EnvConfig) ProxyFunc() func(scheme, host string, port uint16) (*url.URL, error) {
	var cfg EnvConfig
	if c != nil {
		cfg = *c
	}
	p := &envProxies{cfg: cfg, noProxy: parseNoProxy(cfg.NoProxy)}
	p.http.url, p.http.err = parseProxyURL("HTTP_PROXY", cfg.HTTPProxy)
	p.https.url, p.https.err = parseProxyURL("HTTPS_PROXY", cfg.HTTPSProxy)
	p.all.url, p.all.err = parseProxyURL("ALL_PROXY", cfg.AllProxy)
	return p.proxyFor
}

// envProxies is an EnvConfig parsed.
type envProxies struct {
	cfg              EnvConfig
	http, https, all parsedProxy
	noProxy          noProxyList
}

type parsedProxy struct {
	url *url.URL // nil: the variable is empty
	err error
}

func (p parsedProxy) set() bool { return p.url != nil || p.err != nil }

func (p *envProxies) proxyFor(scheme, host string, port uint16) (*url.URL, error) {
	base, _, _ := strings.Cut(strings.ToLower(scheme), "+")
	var chosen parsedProxy
	switch base {
	case "http":
		chosen = p.http
		if chosen.set() && p.cfg.CGI {
			return nil, errors.New("proxy: refusing HTTP_PROXY in a CGI environment (REQUEST_METHOD is set); see https://go.dev/s/cgihttpproxy")
		}
	case "https", "tls":
		chosen = p.https
	}
	if !chosen.set() {
		chosen = p.all
	}
	if !chosen.set() {
		return nil, nil
	}
	if p.bypass(host, port) {
		return nil, nil
	}
	if chosen.err != nil {
		return nil, chosen.err
	}
	u := *chosen.url
	if u.User != nil {
		ui := *u.User
		u.User = &ui
	}
	return &u, nil
}

// bypass reports whether a destination is reached directly: by the
// loopback rule or NoProxy.
func (p *envProxies) bypass(host string, port uint16) bool {
	h := normalizeHost(host)
	return !p.cfg.ProxyLoopback && isLoopback(h) || p.noProxy.match(h, port)
}

// BypassFunc returns the part of ProxyFor that no variable's value
// changes: whether a destination is reached directly, by NoProxy or the
// loopback rule (for a proxy chosen otherwise, such as a command line's).
// Like ProxyFunc it parses c once and is safe for concurrent use.
func (c *EnvConfig) BypassFunc() func(host string, port uint16) bool {
	var cfg EnvConfig
	if c != nil {
		cfg = *c
	}
	p := &envProxies{cfg: cfg, noProxy: parseNoProxy(cfg.NoProxy)}
	return p.bypass
}

// parseProxyURL parses a proxy variable's value; "" gives nil, nil.
func parseProxyURL(name, v string) (*url.URL, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	u, err := url.Parse(v)
	if !strings.Contains(v, "://") && (err != nil || u.Scheme == "" || u.Host == "") {
		// A bare host[:port] (which url.Parse takes for a scheme and an
		// opaque part, or rejects): http:// is meant (httpproxy, which
		// also retries values with a scheme, making "http://" a proxy
		// called "http:").
		if u2, err2 := url.Parse("http://" + v); err2 == nil && u2.Host != "" {
			u, err = u2, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("proxy: %s: invalid proxy URL %q", name, v)
	}
	switch u.Scheme {
	case "socks5", "socks5h", "http", "https":
	default:
		return nil, fmt.Errorf("proxy: %s: unsupported proxy scheme %q (want socks5, socks5h, http or https)", name, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("proxy: %s: proxy URL %q has no host", name, v)
	}
	if p := u.Port(); p != "" {
		if _, ok := parsePort(p); !ok {
			return nil, fmt.Errorf("proxy: %s: proxy URL %q has an invalid port", name, v)
		}
	}
	return u, nil
}

// normalizeHost lowercases host, removes IPv6 brackets and trailing
// dots, and puts an internationalised name in its ASCII form.
func normalizeHost(host string) string {
	h := strings.TrimSpace(host)
	if len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	h = strings.TrimRight(strings.ToLower(h), ".")
	return toASCII(h)
}

// toASCII returns the IDNA ASCII form of a non-ASCII name, or s.
func toASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			if a, err := idna.Lookup.ToASCII(s); err == nil {
				return a
			}
			return s
		}
	}
	return s
}

// parseIP parses an IP address (a zone is dropped), unmapping IPv4-mapped
// IPv6 addresses.
func parseIP(s string) (netip.Addr, bool) {
	if i := strings.IndexByte(s, '%'); i >= 0 {
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func isLoopback(h string) bool {
	if h == "localhost" {
		return true
	}
	a, ok := parseIP(h)
	return ok && a.IsLoopback()
}

// noProxyList is a parsed NO_PROXY.
type noProxyList struct {
	all      bool
	prefixes []netip.Prefix
	ips      []noProxyIP
	domains  []noProxyDomain
}

type noProxyIP struct {
	addr netip.Addr
	port uint16 // 0: any
}

type noProxyDomain struct {
	suffix    string // with a leading '.'
	matchSelf bool   // the name without the dot matches too
	port      uint16 // 0: any
}

// parseNoProxy parses a NO_PROXY list; malformed entries are ignored.
func parseNoProxy(s string) noProxyList {
	var l noProxyList
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		e = strings.ToLower(e)
		if e == "*" {
			return noProxyList{all: true}
		}
		if strings.IndexByte(e, '/') >= 0 {
			if p, err := netip.ParsePrefix(e); err == nil {
				if p.Addr().Is4In6() && p.Bits() >= 96 {
					p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
				}
				l.prefixes = append(l.prefixes, p.Masked())
			}
			continue
		}
		host, port := e, uint16(0)
		if h, ps, err := net.SplitHostPort(e); err == nil {
			n, err := strconv.ParseUint(ps, 10, 16)
			if err != nil || n == 0 {
				continue // a port that can never match
			}
			host, port = h, uint16(n)
		} else if len(e) >= 2 && e[0] == '[' && e[len(e)-1] == ']' {
			host = e[1 : len(e)-1]
		}
		if host == "" {
			continue
		}
		if a, ok := parseIP(host); ok {
			l.ips = append(l.ips, noProxyIP{addr: a, port: port})
			continue
		}
		host = strings.TrimPrefix(host, "*")
		host = strings.TrimRight(host, ".")
		d := noProxyDomain{port: port}
		if !strings.HasPrefix(host, ".") {
			d.matchSelf = true
			host = "." + host
		}
		if host == "." || strings.IndexFunc(host, invalidNameRune) >= 0 {
			continue
		}
		d.suffix = toASCII(host)
		l.domains = append(l.domains, d)
	}
	return l
}

// invalidNameRune reports runes that cannot be in a host name entry.
func invalidNameRune(r rune) bool {
	return r == '*' || r == ':' || r == '[' || r == ']' || r == '@' || r < ' '
}

// match reports whether the destination, normalised, is to be reached
// directly.
func (l noProxyList) match(host string, port uint16) bool {
	if l.all {
		return true
	}
	portOK := func(p uint16) bool { return p == 0 || p == port }
	if a, ok := parseIP(host); ok {
		for _, p := range l.prefixes {
			if p.Contains(a) {
				return true
			}
		}
		for _, ip := range l.ips {
			if ip.addr == a && portOK(ip.port) {
				return true
			}
		}
		return false
	}
	for _, d := range l.domains {
		if (strings.HasSuffix(host, d.suffix) || d.matchSelf && host == d.suffix[1:]) && portOK(d.port) {
			return true
		}
	}
	return false
}
