package conduithttp

import (
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrURL is matched by the errors of URLs this package cannot handle.
var ErrURL = errors.New("conduithttp: bad URL")

type urlError struct{ url, msg string }

func (e *urlError) Error() string { return "conduithttp: URL " + e.url + ": " + e.msg }
func (e *urlError) Unwrap() error { return ErrURL }

// ParseURL parses a request URL. It is url.Parse, except for http+unix
// and https+unix URLs, whose host is a percent-encoded socket path
// ("http+unix://%2Frun%2Fapp.sock/health"), which url.Parse refuses:
// for them the Host of the result holds the decoded path, and its
// String gives the URL back.
func ParseURL(raw string) (*url.URL, error) {
	scheme, after, _ := strings.Cut(raw, ":")
	switch strings.ToLower(scheme) {
	case "http+unix", "https+unix":
	default:
		return url.Parse(raw)
	}
	rest, ok := strings.CutPrefix(after, "//")
	if !ok {
		return nil, &urlError{raw, "want " + scheme + "://%2FPATH%2FTO%2FSOCKET/…"}
	}
	authority := rest
	tail := ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	path, err := url.PathUnescape(authority)
	if err != nil {
		return nil, &urlError{raw, "socket path: " + err.Error()}
	}
	if !strings.HasPrefix(path, "/") {
		return nil, &urlError{raw, fmt.Sprintf("socket path %q is not absolute (write / as %%2F)", path)}
	}
	if strings.IndexByte(path, 0) >= 0 {
		return nil, &urlError{raw, "NUL in the socket path"}
	}
	u, err := url.Parse("http://localhost" + tail)
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Host = strings.ToLower(scheme), path
	return u, nil
}

// The host of a request the transport rewrote: the conduit URI to dial,
// base32-encoded (RFC 4648 "extended hex", lower case: letters and
// digits only) in labels under keySuffix, a domain reserved never to
// resolve (RFC 6761), so that a key that escaped to DNS finds nothing.
const keySuffix = ".conduit.invalid"

var keyEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// maxLabel is the longest DNS label.
const maxLabel = 63

// encodeKey returns the host that stands for a conduit URI.
func encodeKey(uri string) string {
	enc := strings.ToLower(keyEncoding.EncodeToString([]byte(uri)))
	var b strings.Builder
	for len(enc) > maxLabel {
		b.WriteString(enc[:maxLabel])
		b.WriteByte('.')
		enc = enc[maxLabel:]
	}
	b.WriteString(enc)
	b.WriteString(keySuffix)
	return b.String()
}

// decodeKey returns the conduit URI a host stands for, and false when
// the host is not one.
func decodeKey(host string) (string, bool) {
	enc, ok := strings.CutSuffix(strings.ToLower(host), keySuffix)
	if !ok || enc == "" {
		return "", false
	}
	b, err := keyEncoding.DecodeString(strings.ToUpper(strings.ReplaceAll(enc, ".", "")))
	if err != nil || len(b) == 0 || encodeKey(string(b)) != strings.ToLower(host) {
		return "", false // not a key encodeKey made
	}
	return string(b), true
}
