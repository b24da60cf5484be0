package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http/httpproxy"
)

func TestFromEnvironment(t *testing.T) {
	for _, n := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"} {
		t.Setenv(n, "")
	}
	t.Setenv("http_proxy", "lower-http")
	t.Setenv("https_proxy", "lower-https")
	t.Setenv("all_proxy", "lower-all")
	t.Setenv("no_proxy", "lower-no")
	assert.Equal(t, &EnvConfig{HTTPProxy: "lower-http", HTTPSProxy: "lower-https", AllProxy: "lower-all", NoProxy: "lower-no"}, FromEnvironment())

	// The uppercase form wins (httpproxy).
	t.Setenv("HTTP_PROXY", "UPPER-HTTP")
	t.Setenv("HTTPS_PROXY", "UPPER-HTTPS")
	t.Setenv("ALL_PROXY", "UPPER-ALL")
	t.Setenv("NO_PROXY", "UPPER-NO")
	t.Setenv("REQUEST_METHOD", "GET")
	assert.Equal(t, &EnvConfig{HTTPProxy: "UPPER-HTTP", HTTPSProxy: "UPPER-HTTPS", AllProxy: "UPPER-ALL", NoProxy: "UPPER-NO", CGI: true}, FromEnvironment())
}

func TestProxyForSchemes(t *testing.T) {
	full := &EnvConfig{HTTPProxy: "http://hp:1", HTTPSProxy: "http://sp:2", AllProxy: "socks5h://ap:3"}
	onlyAll := &EnvConfig{AllProxy: "socks5://ap:3"}
	for _, tc := range []struct {
		cfg    *EnvConfig
		scheme string
		want   string
	}{
		{full, "http", "http://hp:1"},
		{full, "HTTP", "http://hp:1"},
		{full, "http+srv", "http://hp:1"},
		{full, "http+unix", "http://hp:1"},
		{full, "http+vchan", "http://hp:1"},
		{full, "https", "http://sp:2"},
		{full, "https+srv", "http://sp:2"},
		{full, "tls", "http://sp:2"},
		{full, "tls+unix", "http://sp:2"},
		{full, "tcp", "socks5h://ap:3"},
		{full, "srv", "socks5h://ap:3"},
		{full, "my-scheme", "socks5h://ap:3"},
		{full, "httpx", "socks5h://ap:3"},
		{full, "", "socks5h://ap:3"},
		// A scheme's own variable unset: ALL_PROXY applies (curl).
		{onlyAll, "http", "socks5://ap:3"},
		{onlyAll, "https", "socks5://ap:3"},
		{onlyAll, "tls", "socks5://ap:3"},
		{onlyAll, "tcp", "socks5://ap:3"},
		{&EnvConfig{HTTPProxy: "hp:1"}, "https", "<nil>"},
		{&EnvConfig{HTTPProxy: "hp:1"}, "tcp", "<nil>"},
		{&EnvConfig{HTTPSProxy: "sp:2"}, "http", "<nil>"},
		{&EnvConfig{}, "http", "<nil>"},
		{nil, "http", "<nil>"},
	} {
		u, err := tc.cfg.ProxyFor(tc.scheme, "example.com", 443)
		require.NoError(t, err, "%+v %s", tc.cfg, tc.scheme)
		assert.Equal(t, tc.want, fmt.Sprint(u), "%+v %s", tc.cfg, tc.scheme)
	}
}

// Proxy values: httpproxy's cases for bare host[:port] and schemes, and
// the schemes conduit accepts.
func TestProxyForValues(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  string
		err   string
	}{
		{"127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"cache.corp.example.com:1234", "http://cache.corp.example.com:1234", ""},
		{"cache.corp.example.com", "http://cache.corp.example.com", ""},
		{"localhost", "http://localhost", ""},
		{"https://cache.corp.example.com", "https://cache.corp.example.com", ""},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"https://127.0.0.1:8080", "https://127.0.0.1:8080", ""},
		{"socks5://127.0.0.1", "socks5://127.0.0.1", ""},
		{"SOCKS5H://proxy:1080", "socks5h://proxy:1080", ""},
		{"http://user:p%40ss@proxy:3128", "http://user:p%40ss@proxy:3128", ""},
		{"[::1]:3128", "http://[::1]:3128", ""},
		{"  proxy:3128  ", "http://proxy:3128", ""},
		{"foo://host", "", `proxy: HTTPS_PROXY: unsupported proxy scheme "foo" (want socks5, socks5h, http or https)`},
		{"socks4://host:1080", "", `proxy: HTTPS_PROXY: unsupported proxy scheme "socks4" (want socks5, socks5h, http or https)`},
		{"http://", "", `proxy: HTTPS_PROXY: proxy URL "http://" has no host`},
		{"http://proxy:99999", "", `proxy: HTTPS_PROXY: proxy URL "http://proxy:99999" has an invalid port`},
		{"http://pro xy:1", "", `proxy: HTTPS_PROXY: invalid proxy URL "http://pro xy:1"`},
		{"%zz", "", `proxy: HTTPS_PROXY: invalid proxy URL "%zz"`},
	} {
		u, err := (&EnvConfig{HTTPSProxy: tc.value}).ProxyFor("https", "example.com", 443)
		if tc.err != "" {
			assert.EqualError(t, err, tc.err, "%q", tc.value)
			assert.Nil(t, u)
			continue
		}
		require.NoError(t, err, "%q", tc.value)
		assert.Equal(t, tc.want, u.String(), "%q", tc.value)
	}
	// The error names the variable that applies.
	_, err := (&EnvConfig{AllProxy: "ftp://x"}).ProxyFor("tcp", "example.com", 1)
	assert.ErrorContains(t, err, "ALL_PROXY")
	_, err = (&EnvConfig{HTTPProxy: "ftp://x"}).ProxyFor("http", "example.com", 1)
	assert.ErrorContains(t, err, "HTTP_PROXY")
	// A destination that is not proxied does not need the value.
	u, err := (&EnvConfig{AllProxy: "ftp://x", NoProxy: "example.com"}).ProxyFor("tcp", "example.com", 1)
	assert.NoError(t, err)
	assert.Nil(t, u)
}

func TestProxyForCGI(t *testing.T) {
	cfg := &EnvConfig{HTTPProxy: "http://hp", HTTPSProxy: "http://sp", AllProxy: "http://ap", CGI: true}
	_, err := cfg.ProxyFor("http", "example.com", 80)
	assert.ErrorContains(t, err, "refusing HTTP_PROXY in a CGI environment")
	u, err := cfg.ProxyFor("https", "example.com", 443)
	assert.NoError(t, err)
	assert.Equal(t, "http://sp", u.String())
	u, err = cfg.ProxyFor("tcp", "example.com", 443)
	assert.NoError(t, err)
	assert.Equal(t, "http://ap", u.String())
	// Without HTTP_PROXY, ALL_PROXY (which a request header cannot set)
	// serves http destinations.
	u, err = (&EnvConfig{AllProxy: "http://ap", CGI: true}).ProxyFor("http", "example.com", 80)
	assert.NoError(t, err)
	assert.Equal(t, "http://ap", u.String())
}

// httpproxy's NO_PROXY list and hosts.
const hpNoProxy = "foobar.com, .barbaz.net, *.wildcard.io, 192.168.1.1, 192.168.1.2:81, 192.168.1.3:80, 10.0.0.0/30, 2001:db8::52:0:1, [2001:db8::52:0:2]:443, [2001:db8::52:0:3]:80, 2002:db8:a::45/64"

var hpHosts = []struct {
	host    string
	proxied bool
}{
	{"localhost", false},
	{"127.0.0.1", false},
	{"127.0.0.2", false},
	{"[::1]", false},
	{"[::2]", true},
	{"192.168.1.1", false},
	{"192.168.1.2", true},
	{"192.168.1.3", false},
	{"192.168.1.4", true},
	{"10.0.0.2", false},
	{"[2001:db8::52:0:1]", false},
	{"[2001:db8::52:0:2]", true},
	{"[2001:db8::52:0:3]", false},
	{"[2002:db8:a::123]", false},
	{"[fe80::424b:c8be:1643:a1b6]", true},
	{"barbaz.net", true},
	{"www.barbaz.net", false},
	{"foobar.com", false},
	{"www.foobar.com", false},
	{"foofoobar.com", true},
	{"baz.com", true},
	{"localhost.net", true},
	{"local.localhost", true},
	{"barbarbaz.net", true},
	{"wildcard.io", true},
	{"nested.wildcard.io", false},
	{"awildcard.io", true},
}

// httpproxy's table, through ProxyFor and through httpproxy itself: the
// same answers.
func TestNoProxyHTTPProxyTable(t *testing.T) {
	ours := &EnvConfig{HTTPProxy: "http://proxy", NoProxy: hpNoProxy}
	theirs := (&httpproxy.Config{HTTPProxy: "http://proxy", NoProxy: hpNoProxy}).ProxyFunc()
	for _, tc := range hpHosts {
		u, err := ours.ProxyFor("http", tc.host, 80)
		require.NoError(t, err)
		assert.Equal(t, tc.proxied, u != nil, tc.host)
		ref, err := url.Parse("http://" + tc.host + ":80")
		require.NoError(t, err)
		hu, err := theirs(ref)
		require.NoError(t, err)
		assert.Equal(t, hu != nil, u != nil, "ours and httpproxy differ on %s", tc.host)

		// "*" anywhere: nothing is proxied.
		u, err = (&EnvConfig{HTTPProxy: "http://proxy", NoProxy: "example.org, *"}).ProxyFor("http", tc.host, 80)
		require.NoError(t, err)
		assert.Nil(t, u, tc.host)
	}
}

func TestNoProxyMatch(t *testing.T) {
	for _, tc := range []struct {
		noProxy string
		host    string
		port    uint16
		direct  bool
	}{
		// Domain suffixes: httpproxy's rules.
		{"example.com", "example.com", 443, true},
		{"example.com", "a.b.example.com", 443, true},
		{".example.com", "www.example.com", 443, true},
		{".example.com", "example.com", 443, false},
		{"*.example.com", "example.com", 443, false},
		{"*.example.com", "x.example.com", 443, true},
		{"ample.com", "example.com", 443, false},
		{".foo.com", "example.com", 443, false},
		{"EXAMPLE.com", "www.Example.COM", 443, true},
		// A trailing dot on either side.
		{"example.com.", "www.example.com", 1, true},
		{"example.com", "www.example.com.", 1, true},
		{"00.:5", "00..", 5, true}, // found by FuzzNoProxy
		// Internationalised names, either form (httpproxy's cases).
		{".示例.com", "www.示例.com", 80, true},
		{"xn--fsq092h.com", "www.示例.com", 80, true},
		{"示例.com", "www.xn--fsq092h.com", 80, true},
		// Ports.
		{"example.com:443", "example.com", 443, true},
		{"example.com:443", "example.com", 80, false},
		{"example.com:443", "example.com", 0, false},
		{"192.168.1.3:80", "192.168.1.3", 80, true},
		{"192.168.1.3:80", "192.168.1.3", 81, false},
		{"[2001:db8::1]:443", "2001:db8::1", 443, true},
		{"[2001:db8::1]:443", "[2001:db8::1]", 80, false},
		{"example.com:http", "example.com", 80, false},
		// IP literals and CIDR ranges.
		{"10.1.2.3", "10.1.2.3", 5, true},
		{"10.1.2.3", "10.1.2.4", 5, false},
		{"::ffff:10.1.2.3", "10.1.2.3", 5, true},
		{"10.1.2.3", "::ffff:10.1.2.3", 5, true},
		{"10.0.0.0/8", "10.200.3.4", 5, true},
		{"10.0.0.0/8", "11.0.0.1", 5, false},
		{"10.1.2.3/8", "10.9.9.9", 5, true}, // the range of a host address
		{"fd00::/8", "fd12:3456::1", 5, true},
		{"fd00::/8", "[fd12:3456::1]", 5, true},
		{"fd00::/8", "fe80::1", 5, false},
		{"::ffff:10.0.0.0/104", "10.1.1.1", 5, true},
		{"fe80::1%eth0", "fe80::1", 5, true},
		{"[::2]", "::2", 5, true},
		// Names never match addresses, nor addresses names.
		{"10.0.0.0/8", "ten.example", 5, false},
		{"example.com", "93.184.216.34", 5, false},
		// Separators: commas and white space (curl), empty entries.
		{"a.test b.test\tc.test\nd.test", "d.test", 5, true},
		{"a.test,,  ,b.test", "b.test", 5, true},
		{" , ", "b.test", 5, false},
		// Malformed entries are ignored, the rest still apply.
		{":1, [, ], *., ., 10.0.0.0/99, x.test", "x.test", 5, true},
		{":1", "example.com", 80, false},
		{"", "example.com", 80, false},
		{"*", "anything.test", 1, true},
		{"a.test, *", "b.test", 1, true},
	} {
		l := parseNoProxy(tc.noProxy)
		assert.Equal(t, tc.direct, l.match(normalizeHost(tc.host), tc.port), "NO_PROXY=%q host=%q port=%d", tc.noProxy, tc.host, tc.port)
	}
}

func TestProxyLoopback(t *testing.T) {
	for _, host := range []string{"localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1"} {
		// net/http's rule: never proxied.
		u, err := (&EnvConfig{AllProxy: "http://proxy"}).ProxyFor("tcp", host, 80)
		require.NoError(t, err)
		assert.Nil(t, u, host)
		// curl's: proxied unless NO_PROXY lists it.
		u, err = (&EnvConfig{AllProxy: "http://proxy", ProxyLoopback: true}).ProxyFor("tcp", host, 80)
		require.NoError(t, err)
		assert.NotNil(t, u, host)
		u, err = (&EnvConfig{AllProxy: "http://proxy", ProxyLoopback: true, NoProxy: "localhost,127.0.0.0/8,::1"}).ProxyFor("tcp", host, 80)
		require.NoError(t, err)
		assert.Nil(t, u, host)
	}
	// Not loopback.
	u, err := (&EnvConfig{AllProxy: "http://proxy"}).ProxyFor("tcp", "local.localhost", 80)
	require.NoError(t, err)
	assert.NotNil(t, u)
}

// ProxyFunc parses once: later changes to the config do not show, and
// each call gets a URL of its own.
func TestProxyFuncSnapshot(t *testing.T) {
	cfg := &EnvConfig{HTTPProxy: "http://user:pw@proxy:1"}
	f := cfg.ProxyFunc()
	cfg.HTTPProxy = ""
	cfg.NoProxy = "*"
	u1, err := f("http", "example.com", 80)
	require.NoError(t, err)
	require.NotNil(t, u1)
	u1.Host = "changed"
	u1.User = url.User("changed")
	u2, err := f("http", "example.com", 80)
	require.NoError(t, err)
	assert.Equal(t, "http://user:pw@proxy:1", u2.String())
}

// FuzzNoProxy: the NO_PROXY parser and matcher never panic, whatever the
// list and the destination; "*" makes everything direct; an exact entry
// for the destination matches it.
func FuzzNoProxy(f *testing.F) {
	f.Add(hpNoProxy, "www.foobar.com", uint16(80))
	f.Add("*", "x", uint16(0))
	f.Add(":1,[,],*.,.,10.0.0.0/99", "[::1]", uint16(1))
	f.Add("示例.com:443 fe80::1%eth0", "www.示例.com", uint16(443))
	f.Add("::ffff:10.0.0.0/104", "10.1.1.1", uint16(5))
	f.Fuzz(func(t *testing.T, noProxy, host string, port uint16) {
		l := parseNoProxy(noProxy)
		h := normalizeHost(host)
		l.match(h, port)
		cfg := &EnvConfig{AllProxy: "http://proxy", NoProxy: noProxy, ProxyLoopback: true}
		cfg.ProxyFor("tcp", host, port)
		if !parseNoProxy(noProxy+",*").match(h, port) {
			t.Fatalf("\"*\" in %q did not match %q", noProxy, host)
		}
		if h == "" || strings.ContainsAny(h, ",/ \t\n\v\f\r\x85\xa0*") || strings.ContainsRune(host, '\u2028') {
			return
		}
		if _, err := netip.ParseAddr(h); err != nil && strings.Contains(h, ":") {
			// Not a host a URI can name ("0:1"): written as an entry it
			// reads as HOST:PORT (testdata/fuzz/FuzzNoProxy/7be60f5ffe0cafb7).
			return
		}
		entry := h
		if port != 0 {
			entry = net.JoinHostPort(h, strconv.Itoa(int(port)))
		}
		if l2 := parseNoProxy(entry); len(l2.domains)+len(l2.ips) > 0 && !l2.match(h, port) {
			t.Fatalf("entry %q did not match host %q port %d", entry, host, port)
		}
	})
}

func ExampleEnvConfig_ProxyFor() {
	cfg := &EnvConfig{
		HTTPSProxy: "http://proxy.corp.example:3128",
		AllProxy:   "socks5h://socks.corp.example:1080",
		NoProxy:    ".internal.example, 10.0.0.0/8",
	}
	for _, d := range []struct {
		scheme, host string
		port         uint16
	}{
		{"https", "example.com", 443},
		{"tcp", "example.com", 22},
		{"https+srv", "api.internal.example", 443},
		{"tls", "10.1.2.3", 443},
		{"tcp", "localhost", 8080},
	} {
		u, err := cfg.ProxyFor(d.scheme, d.host, d.port)
		if err != nil {
			fmt.Println(err)
			continue
		}
		if u == nil {
			fmt.Printf("%s://%s: direct\n", d.scheme, d.host)
			continue
		}
		fmt.Printf("%s://%s: %s\n", d.scheme, d.host, u)
	}
	// Output:
	// https://example.com: http://proxy.corp.example:3128
	// tcp://example.com: socks5h://socks.corp.example:1080
	// https+srv://api.internal.example: direct
	// tls://10.1.2.3: direct
	// tcp://localhost: direct
}

func TestBypassFunc(t *testing.T) {
	direct := (&EnvConfig{NoProxy: ".corp.example, 10.0.0.0/8, db:5432"}).BypassFunc()
	for _, tc := range []struct {
		host string
		port uint16
		want bool
	}{
		{"www.corp.example", 443, true}, {"corp.example", 443, false}, {"10.1.2.3", 80, true},
		{"db", 5432, true}, {"db", 5433, false}, {"example.com", 443, false},
		{"localhost", 80, true}, {"127.0.0.1", 80, true}, // the loopback rule, ProxyLoopback unset
	} {
		assert.Equal(t, tc.want, direct(tc.host, tc.port), "%s:%d", tc.host, tc.port)
	}
	curl := (&EnvConfig{ProxyLoopback: true}).BypassFunc()
	assert.False(t, curl("127.0.0.1", 80), "ProxyLoopback: loopback is proxied as any other")
}
