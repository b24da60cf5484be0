package resolver_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
)

// goodURIs map URIs to the strings of their endpoints (Resolve, with
// fakeLookup).
var goodURIs = []struct {
	uri  string
	want []string
}{
	{"tcp://192.0.2.1:1", []string{"tcp://192.0.2.1:1"}},
	{"tcp://192.0.2.1:65535", []string{"tcp://192.0.2.1:65535"}},
	{"tcp://192.0.2.1:00080", []string{"tcp://192.0.2.1:80"}},
	{"Tcp://192.0.2.1:80/", []string{"tcp://192.0.2.1:80"}},
	{"tcp://192.0.2.1:80?", []string{"tcp://192.0.2.1:80"}},
	{"tcp://[::1]:80", []string{"tcp://[::1]:80"}},
	{"tcp://[2001:DB8::1]:80", []string{"tcp://[2001:db8::1]:80"}},
	{"tcp://[::ffff:192.0.2.1]:80", []string{"tcp://[::ffff:192.0.2.1]:80"}},
	{"tcp://[fe80::1%25eth0]:80", []string{"tcp://[fe80::1%eth0]:80"}},
	{"tcp://[ff02::1%25eth0.100]:80", []string{"tcp://[ff02::1%eth0.100]:80"}},
	{"tcp://example.com:80", []string{"tcp://example.com=[2001:db8::10]:80", "tcp://example.com=192.0.2.10:80"}},
	{"tcp://dup.example:80", []string{"tcp://dup.example=192.0.2.20:80", "tcp://dup.example=[2001:db8::20]:80", "tcp://dup.example=192.0.2.21:80"}},
	{"tcp://LOCALHOST:1", []string{"tcp://localhost=127.0.0.1:1", "tcp://localhost=[::1]:1"}},
	{"tcp://localhost.:1", []string{"tcp://localhost.=127.0.0.1:1", "tcp://localhost.=[::1]:1"}},
	{"tcp://app.localhost:1", []string{"tcp://app.localhost=127.0.0.1:1", "tcp://app.localhost=[::1]:1"}},
	{"tcp://a-b.c_d.test:1", []string{"tcp://a-b.c_d.test=192.0.2.99:1"}},
	{"tcp://xn--bcher-kva.test:1", []string{"tcp://xn--bcher-kva.test=192.0.2.99:1"}},
	// Internationalised names become A-labels (UTS 46 mapping, Punycode).
	{"tcp://bücher.test:1", []string{"tcp://xn--bcher-kva.test=192.0.2.99:1"}},
	{"tcp://BÜCHER.Test:1", []string{"tcp://xn--bcher-kva.test=192.0.2.99:1"}},
	{"tcp://b%C3%BCcher.test:1", []string{"tcp://xn--bcher-kva.test=192.0.2.99:1"}},
	{"tcp://例え.テスト:1", []string{"tcp://xn--r8jz45g.xn--zckzah=192.0.2.99:1"}},
	{"tcp://हिन्दी.test:1", []string{"tcp://xn--j2bd4cyah0f.test=192.0.2.99:1"}},
	{"https://bücher.test", []string{"tls://xn--bcher-kva.test@tcp://xn--bcher-kva.test=192.0.2.99:443"}},
	{"tcp://xn--bcher-kva.test:1", []string{"tcp://xn--bcher-kva.test=192.0.2.99:1"}},
	{"tcp://h1:1", []string{"tcp://h1=192.0.2.99:1"}},
	{"tcp://" + strings.Repeat("a", 63) + ".test:1", []string{"tcp://" + strings.Repeat("a", 63) + ".test=192.0.2.99:1"}},
	{"tls://example.com:443", []string{"tls://example.com@tcp://example.com=[2001:db8::10]:443", "tls://example.com@tcp://example.com=192.0.2.10:443"}},
	{"tls://example.com.:443", []string{"tls://example.com@tcp://example.com.=[2001:db8::10]:443", "tls://example.com@tcp://example.com.=192.0.2.10:443"}},
	{"tls://192.0.2.1:443", []string{"tls://192.0.2.1@tcp://192.0.2.1:443"}},
	{"tls://[fe80::1%25eth0]:443", []string{"tls://fe80::1@tcp://[fe80::1%eth0]:443"}},
	{"tls://192.0.2.1:443?sni=Other.Test", []string{"tls://other.test@tcp://192.0.2.1:443"}},
	{"tls://192.0.2.1:443?sni=192.0.2.2", []string{"tls://192.0.2.2@tcp://192.0.2.1:443"}},
	{"tls://192.0.2.1:443?sni=2001:db8::1", []string{"tls://2001:db8::1@tcp://192.0.2.1:443"}},
	{"unix:///run/x.sock", []string{"unix:///run/x.sock"}},
	{"UNIX:///run/X.sock", []string{"unix:///run/X.sock"}},
	{"unix:///tmp/a%20b", []string{"unix:///tmp/a%20b"}},
	{"unix:///tmp/a%2Fb", []string{"unix:///tmp/a/b"}},
	{"unix:///@abstract", []string{"unix:///@abstract"}},
	{"tls+unix:///run/x.sock", []string{"tls://localhost@unix:///run/x.sock"}},
	{"tls+unix:///run/x.sock?sni=192.0.2.1", []string{"tls://192.0.2.1@unix:///run/x.sock"}},
	{"vchan://1/p", []string{"vchan://1/p"}},
	{"vchan://32751/P_-9", []string{"vchan://32751/P_-9"}},
	{"vchan://007/p", []string{"vchan://7/p"}},
	{"vchan://Dom_U-1/p", []string{"vchan://Dom_U-1/p"}},
	{"tls+vchan://1/p", []string{"tls://localhost@vchan://1/p"}},
	{"tls+vchan://web/p?sni=www.example.com", []string{"tls://www.example.com@vchan://web/p"}},
	{"http://example.com", []string{"tcp://example.com=[2001:db8::10]:80", "tcp://example.com=192.0.2.10:80"}},
	{"HTTPS://192.0.2.1:8443/a/b?c=d&e", []string{"tls://192.0.2.1@tcp://192.0.2.1:8443"}},
	{"https://192.0.2.1/?sni=ignored.test", []string{"tls://192.0.2.1@tcp://192.0.2.1:443"}},
	{"wss://192.0.2.1", []string{"tls://192.0.2.1@tcp://192.0.2.1:443"}},
	{"imaps://192.0.2.1", []string{"tls://192.0.2.1@tcp://192.0.2.1:993"}},
	{"smtps://192.0.2.1", []string{"tls://192.0.2.1@tcp://192.0.2.1:465"}},
	{"ldaps://192.0.2.1", []string{"tls://192.0.2.1@tcp://192.0.2.1:636"}},
	{"pop3s://192.0.2.1", []string{"tls://192.0.2.1@tcp://192.0.2.1:995"}},
	{"ircs://192.0.2.1", []string{"tls://192.0.2.1@tcp://192.0.2.1:6697"}},
	{"mqtts://192.0.2.1", []string{"tls://192.0.2.1@tcp://192.0.2.1:8883"}},
	{"amqps://192.0.2.1", []string{"tls://192.0.2.1@tcp://192.0.2.1:5671"}},
	{"ftp://192.0.2.1", []string{"tcp://192.0.2.1:21"}},
	{"ssh://192.0.2.1", []string{"tcp://192.0.2.1:22"}},
	{"smtp://192.0.2.1", []string{"tcp://192.0.2.1:25"}},
	{"imap://192.0.2.1", []string{"tcp://192.0.2.1:143"}},
	{"pop3://192.0.2.1", []string{"tcp://192.0.2.1:110"}},
	{"irc://192.0.2.1", []string{"tcp://192.0.2.1:6667"}},
	{"mqtt://192.0.2.1", []string{"tcp://192.0.2.1:1883"}},
	{"amqp://192.0.2.1", []string{"tcp://192.0.2.1:5672"}},
	{"redis://192.0.2.1", []string{"tcp://192.0.2.1:6379"}},
	{"postgres://192.0.2.1/db", []string{"tcp://192.0.2.1:5432"}},
	{"postgresql://192.0.2.1/db", []string{"tcp://192.0.2.1:5432"}},
	{"mysql://192.0.2.1", []string{"tcp://192.0.2.1:3306"}},
	{"ws://192.0.2.1", []string{"tcp://192.0.2.1:80"}},
	{"ldap://192.0.2.1", []string{"tcp://192.0.2.1:389"}},
}

// badURIs map URIs to the error they give, and a part of its message.
var badURIs = []struct {
	uri  string
	err  error
	what string
}{
	{"", resolver.ErrMalformedURI, "missing scheme"},
	{"tcp", resolver.ErrMalformedURI, "missing scheme"},
	{"://h:1", resolver.ErrMalformedURI, "invalid scheme"},
	{"1tcp://h:1", resolver.ErrMalformedURI, "invalid scheme"},
	{"t_p://h:1", resolver.ErrMalformedURI, "invalid scheme"},
	{"tcp:/h:1", resolver.ErrMalformedURI, `missing "//"`},
	{"tcp:h:1", resolver.ErrMalformedURI, `missing "//"`},
	{"tcp://h:1\n", resolver.ErrMalformedURI, "control character U+000A"},
	{"tcp://h\x00:1", resolver.ErrMalformedURI, "control character U+0000"},
	{"tcp://h:1\x7f", resolver.ErrMalformedURI, "control character U+007F"},
	{"tcp://h:1\u0085", resolver.ErrMalformedURI, "control character U+0085"},
	{"tcp://h\t:1", resolver.ErrMalformedURI, "control character U+0009"},
	{" tcp://h:1", resolver.ErrMalformedURI, "space at offset 0"},
	{"tcp://h:1\u00a0", resolver.ErrMalformedURI, "white space U+00A0"},
	{"tcp://h:1\u2028", resolver.ErrMalformedURI, "white space U+2028"},
	{"tcp://\xff:1", resolver.ErrMalformedURI, "not valid UTF-8"},
	{"tcp://%ff:1", resolver.ErrMalformedURI, "host is not valid UTF-8"},
	{"tcp://%zz:1", resolver.ErrMalformedURI, "invalid URL escape"},
	{"tcp://h%41.test:1", resolver.ErrMalformedURI, "invalid URL escape"},
	{"tcp://[::1:80", resolver.ErrMalformedURI, "missing ']'"},
	{"tcp://[::1]x:80", resolver.ErrMalformedURI, "unexpected"},
	{"tcp://[::1]", resolver.ErrMalformedURI, "missing port"},
	{"tcp://x]:80", resolver.ErrMalformedURI, "misplaced bracket"},
	{"tcp://[192.0.2.1]:80", resolver.ErrMalformedURI, "invalid IPv6 address"},
	{"tcp://[example.com]:80", resolver.ErrMalformedURI, "invalid IPv6 address"},
	{"tcp://[fe80::1%eth0]:80", resolver.ErrMalformedURI, "write a zone as %25ZONE"},
	{"tcp://[fe80::1%25]:80", resolver.ErrMalformedURI, "invalid zone"},
	{"tcp://[fe80::1%25a%2Fb]:80", resolver.ErrMalformedURI, "invalid zone"},
	{"tcp://[2001:db8::1%25eth0]:80", resolver.ErrMalformedURI, "link-local"},
	{"tcp://::1:80", resolver.ErrMalformedURI, "brackets"},
	{"tcp://h:80:81", resolver.ErrMalformedURI, "brackets"},
	{"tcp://h", resolver.ErrMalformedURI, "missing port"},
	{"tls://h/", resolver.ErrMalformedURI, "missing port"},
	{"tcp://h:", resolver.ErrMalformedURI, "empty port"},
	{"tcp://h:-1", resolver.ErrMalformedURI, "non-numeric port"},
	{"tcp://h:+1", resolver.ErrMalformedURI, "non-numeric port"},
	{"tcp://h:0x50", resolver.ErrMalformedURI, "non-numeric port"},
	{"tcp://h:65536", resolver.ErrMalformedURI, "out of range"},
	{"tcp://h:99999999999999999999999", resolver.ErrMalformedURI, "out of range"},
	{"tcp://h:0", resolver.ErrMalformedURI, "port 0"},
	{"http://h:0", resolver.ErrMalformedURI, "port 0"},
	{"tcp://:1", resolver.ErrMalformedURI, "empty host"},
	{"http://:80/", resolver.ErrMalformedURI, "empty host"},
	{"tcp://-h.test:1", resolver.ErrMalformedURI, "starts or ends with '-'"},
	{"tcp://h-.test:1", resolver.ErrMalformedURI, "starts or ends with '-'"},
	{"tcp://a..b:1", resolver.ErrMalformedURI, "empty label"},
	{"tcp://.a:1", resolver.ErrMalformedURI, "empty label"},
	{"tcp://.:1", resolver.ErrMalformedURI, "invalid host name"},
	{"tcp://a..:1", resolver.ErrMalformedURI, "empty label"},
	{"tcp://" + strings.Repeat("a", 64) + ".test:1", resolver.ErrMalformedURI, "too long"},
	{"tcp://" + strings.Repeat("abcdefg.", 32) + "test:1", resolver.ErrMalformedURI, "too long"},
	{"tcp://h*.test:1", resolver.ErrMalformedURI, "invalid character '*'"},
	{"tcp://h%2A.test:1", resolver.ErrMalformedURI, "invalid URL escape"},
	{"tcp://a\u200d.test:1", resolver.ErrMalformedURI, "invalid internationalised host name"},
	{"tcp://\u0661\u0041.test:1", resolver.ErrMalformedURI, "invalid internationalised host name"},
	{"tcp://1.2.3.256:1", resolver.ErrMalformedURI, "invalid IP address"},
	{"tcp://127.1:1", resolver.ErrMalformedURI, "invalid IP address"},
	{"tcp://01.2.3.4:1", resolver.ErrMalformedURI, "invalid IP address"},
	{"tcp://0x7f.0.0.1:1", resolver.ErrMalformedURI, "invalid IP address"},
	{"tcp://123:1", resolver.ErrMalformedURI, "invalid IP address"},
	{"tcp://1.2.3.4.:1", resolver.ErrMalformedURI, "invalid IP address"},
	{"tcp://user@h:1", resolver.ErrMalformedURI, "userinfo"},
	{"tcp://user:pw@h:1", resolver.ErrMalformedURI, "userinfo"},
	{"tcp://@h:1", resolver.ErrMalformedURI, "userinfo"},
	{"https://u@example.com/", resolver.ErrMalformedURI, "userinfo"},
	{"tcp://h:1#", resolver.ErrMalformedURI, "fragment"},
	{"tcp://h:1#x", resolver.ErrMalformedURI, "fragment"},
	{"https://example.com/#x", resolver.ErrMalformedURI, "fragment"},
	{"tcp://h:1/x", resolver.ErrMalformedURI, "path"},
	{"tcp://h:1//", resolver.ErrMalformedURI, "path"},
	{"tcp://h:1?x=1", resolver.ErrMalformedURI, `unknown query parameter "x"`},
	{"tcp://h:1?sni=a", resolver.ErrMalformedURI, "only allowed with TLS"},
	{"tls://h:1?sni=a&sni=b", resolver.ErrMalformedURI, "sni given 2 times"},
	{"tls://h:1?sni", resolver.ErrMalformedURI, "empty sni"},
	{"tls://h:1?sni=a&x=", resolver.ErrMalformedURI, "unknown query parameter"},
	{"tls://h:1?sni=%ZZ", resolver.ErrMalformedURI, "invalid query"},
	{"tls://h:1?sni=a;b", resolver.ErrMalformedURI, "invalid query"},
	{"tls://h:1?sni=bad%20name", resolver.ErrMalformedURI, "invalid character"},
	{"tls://h:1?sni=fe80::1%25eth0", resolver.ErrMalformedURI, "zone"},
	{"tls://h:1?sni=127.1", resolver.ErrMalformedURI, "invalid IP address"},
	{"unix://", resolver.ErrMalformedURI, "missing socket path"},
	{"unix://h/x", resolver.ErrMalformedURI, "empty host"},
	{"unix://:1/x", resolver.ErrMalformedURI, "empty host"},
	{"unix://[::1]/x", resolver.ErrMalformedURI, "empty host"},
	{"unix://@abstract", resolver.ErrMalformedURI, "userinfo"},
	{"unix:///tmp/x/", resolver.ErrMalformedURI, "ends in '/'"},
	{"unix:///tmp/%00x", resolver.ErrMalformedURI, "NUL"},
	{"unix:///x?y=1", resolver.ErrMalformedURI, "unknown query parameter"},
	{"tls+unix:///x?sni=", resolver.ErrMalformedURI, "empty sni"},
	{"vchan://", resolver.ErrMalformedURI, "missing domain id or name"},
	{"vchan:///p", resolver.ErrMalformedURI, "missing domain id or name"},
	{"vchan://1", resolver.ErrMalformedURI, "missing vchan port"},
	{"vchan://1/", resolver.ErrMalformedURI, "missing vchan port"},
	{"vchan://1/a/b", resolver.ErrMalformedURI, "invalid vchan port"},
	{"vchan://1/a%20b", resolver.ErrMalformedURI, "invalid vchan port"},
	{"vchan://1:2/p", resolver.ErrMalformedURI, "port not allowed"},
	{"vchan://[::1]/p", resolver.ErrMalformedURI, "not an IP address"},
	{"vchan://32752/p", resolver.ErrMalformedURI, "domain id 32752 out of range (0-32751)"},
	{"vchan://32753/p", resolver.ErrMalformedURI, "out of range"},
	{"vchan://65536/p", resolver.ErrMalformedURI, "out of range"},
	{"vchan://0/p", resolver.ErrMalformedURI, "domain id 0 is only valid to listen on"},
	{"vchan://000/p", resolver.ErrMalformedURI, "domain id 0 is only valid to listen on"},
	{"tls+vchan://0/p?sni=x", resolver.ErrMalformedURI, "domain id 0 is only valid to listen on"},
	{"vchan://99999999999999999999/p", resolver.ErrMalformedURI, "out of range"},
	{"vchan://-dom/p", resolver.ErrMalformedURI, "starts or ends with '-'"},
	{"vchan://a!b/p", resolver.ErrMalformedURI, "invalid character"},
	{"vchan://1/p?sni=x", resolver.ErrMalformedURI, "only allowed with TLS"},
	{"tls+vchan://1/p?x=1", resolver.ErrMalformedURI, "unknown query parameter"},
	{"udp://h:1", resolver.ErrUnknownScheme, `unknown scheme "udp"`},
	{"UDP://h:1", resolver.ErrUnknownScheme, `unknown scheme "udp"`},
	{"file:///etc/passwd", resolver.ErrUnknownScheme, `unknown scheme "file"`},
	{"mailto:x@example.com", resolver.ErrUnknownScheme, `unknown scheme "mailto"`},
	{"localhost:80", resolver.ErrUnknownScheme, `unknown scheme "localhost"`},
	{"grpc://h:1", resolver.ErrUnknownScheme, `unknown scheme "grpc"`},
	{"tcp://empty.example:1", resolver.ErrNotFound, "lookup empty.example: no such host"},
	{"tls://nxdomain.example:1", resolver.ErrNotFound, "lookup nxdomain.example on 192.0.2.53:53: no such host"},
}

func TestResolveGood(t *testing.T) {
	r := newTestResolver(t, nil)
	for _, tc := range goodURIs {
		t.Run(tc.uri, func(t *testing.T) {
			eps, err := r.Resolve(context.Background(), tc.uri)
			require.NoError(t, err)
			assert.Equal(t, tc.want, strs(eps))
			for _, e := range eps {
				assert.NoError(t, endpoint.Validate(e))
			}
			_, err = resolver.ParseURI(tc.uri)
			assert.NoError(t, err)
			// What resolves to dial also resolves to listen on.
			leps, err := r.ResolveListen(context.Background(), tc.uri)
			require.NoError(t, err)
			assert.Equal(t, eps, leps)
		})
	}
}

func TestResolveBad(t *testing.T) {
	r := newTestResolver(t, nil)
	for _, tc := range badURIs {
		t.Run(tc.uri, func(t *testing.T) {
			eps, err := r.Resolve(context.Background(), tc.uri)
			require.Error(t, err)
			assert.Nil(t, eps)
			assert.ErrorIs(t, err, tc.err)
			for _, other := range []error{resolver.ErrMalformedURI, resolver.ErrUnknownScheme, resolver.ErrNotFound} {
				if other != tc.err {
					assert.NotErrorIs(t, err, other)
				}
			}
			var ue *resolver.URIError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, tc.uri, ue.URI)
			assert.True(t, strings.HasPrefix(err.Error(), "resolver: URI "+strconv.Quote(tc.uri)+": "), "%v", err)
			assert.Contains(t, err.Error(), tc.what)
		})
	}
}

// TestQueryErrorDeterministic: several bad query parameters give the same
// message every time.
func TestQueryErrorDeterministic(t *testing.T) {
	r := newTestResolver(t, nil)
	var first string
	for i := range 20 {
		_, err := r.Resolve(context.Background(), "tcp://h.test:1?sni=a&b=1&c=2&a=3")
		require.ErrorIs(t, err, resolver.ErrMalformedURI)
		if i == 0 {
			first = err.Error()
			assert.Contains(t, first, `unknown query parameter "a"`)
		}
		assert.Equal(t, first, err.Error())
	}
}
