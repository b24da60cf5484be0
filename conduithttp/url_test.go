package conduithttp

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseURL(t *testing.T) {
	u, err := ParseURL("http+unix://%2Frun%2Fmy%20app.sock/health?x=1#f")
	require.NoError(t, err)
	assert.Equal(t, "http+unix", u.Scheme)
	assert.Equal(t, "/run/my app.sock", u.Host)
	assert.Equal(t, "/health", u.Path)
	assert.Equal(t, "x=1", u.RawQuery)
	assert.Equal(t, "http+unix://%2Frun%2Fmy%20app.sock/health?x=1#f", u.String())
	u, err = ParseURL("HTTPS+UNIX://%2Frun%2Fapp.sock")
	require.NoError(t, err)
	assert.Equal(t, "https+unix", u.Scheme)
	assert.Equal(t, "", u.Path) // net/http asks for "/"
	_, err = ParseURL("http+unix:%2Frun")
	assert.ErrorIs(t, err, ErrURL)
	u, err = ParseURL("http://example.com/a")
	require.NoError(t, err)
	assert.Equal(t, "example.com", u.Host)
}

func TestRoute(t *testing.T) {
	for _, tc := range []struct {
		url, host string
		want      routed
	}{
		{"http+unix://%2Frun%2Fapp.sock/health", "", routed{uri: "unix:///run/app.sock", scheme: "http", host: "localhost", path: "/health"}},
		{"https+unix://%2Frun%2Fapp.sock/x", "api.internal:8443", routed{uri: "tls+unix:///run/app.sock?sni=api.internal", scheme: "https", host: "api.internal:8443", path: "/x"}},
		{"http+vchan://7/web/a/b", "7", routed{uri: "vchan://7/web", scheme: "http", host: "localhost", path: "/a/b"}},
		{"https+vchan://vm-a/web", "", routed{uri: "tls+vchan://vm-a/web?sni=localhost", scheme: "https", host: "localhost", path: "/"}},
		{"http+srv://api.example/v1", "api.example", routed{uri: "http+srv://api.example", scheme: "http", host: "api.example", path: "/v1"}},
		{"https+srv://api.example/v1", "", routed{uri: "https+srv://api.example", scheme: "https", host: "api.example", path: "/v1"}},
	} {
		u, err := ParseURL(tc.url)
		require.NoError(t, err)
		got, err := route(u, tc.host)
		require.NoError(t, err, tc.url)
		assert.Equal(t, tc.want, got, tc.url)
	}
}

func TestDialURI(t *testing.T) {
	assert.Equal(t, "tcp://example.com:80", uri("tcp", "example.com:80"))
	assert.Equal(t, "tls://[fe80::1%25eth0]:443", uri("tls", "[fe80::1%eth0]:443"))
	assert.Equal(t, "unix:///run/app.sock", uri("tls", encodeKey("unix:///run/app.sock")+":443"))
}

func TestKey(t *testing.T) {
	for _, uri := range []string{"unix:///run/app.sock", "tls+vchan://7/web?sni=localhost", "https+srv://" + strings.Repeat("a", 300)} {
		k := encodeKey(uri)
		for _, label := range strings.Split(k, ".") {
			assert.LessOrEqual(t, len(label), maxLabel)
		}
		u := url.URL{Scheme: "http", Host: k}
		parsed, err := url.Parse(u.String())
		require.NoError(t, err)
		got, ok := decodeKey(parsed.Hostname())
		assert.True(t, ok)
		assert.Equal(t, uri, got)
	}
	for _, h := range []string{"example.com", ".conduit.invalid", "zz!.conduit.invalid", "w.conduit.invalid"} {
		_, ok := decodeKey(h)
		assert.False(t, ok, h)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"http+unix://%2Frun%2Fapp.sock/health", "https+unix://%2Fa/b?c#d", "http+vchan://7/web/x", "http+srv://a.example/", "http+unix://%zz/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		if u.Scheme == "http+unix" || u.Scheme == "https+unix" {
			back, err := ParseURL(u.String())
			if err != nil || back.Host != u.Host || back.Path != u.Path {
				t.Fatalf("%q → %q → %v, %v", s, u.String(), back, err)
			}
		}
		if r, err := route(u, ""); err == nil {
			k := encodeKey(r.uri)
			if got, ok := decodeKey(k); !ok || got != r.uri {
				t.Fatalf("key of %q gives %q", r.uri, got)
			}
		}
	})
}

func FuzzDecodeKey(f *testing.F) {
	f.Add(encodeKey("unix:///run/app.sock"))
	f.Add("x.conduit.invalid")
	f.Fuzz(func(t *testing.T, host string) {
		if uri, ok := decodeKey(host); ok {
			if again, ok := decodeKey(encodeKey(uri)); !ok || again != uri {
				t.Fatalf("%q: %q does not round-trip", host, uri)
			}
		}
	})
}
