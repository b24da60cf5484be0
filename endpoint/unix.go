package endpoint

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// KindUnix is the kind of Unix-domain socket endpoints.
const KindUnix = "unix"

// Unix is a Unix-domain stream socket endpoint: an absolute path in the
// file system (abstract sockets have no URI form and are refused).
type Unix struct {
	Path string
}

// Kind returns KindUnix.
func (Unix) Kind() string { return KindUnix }

// String returns "unix://PATH" with the path percent-encoded as needed.
func (e Unix) String() string { return "unix://" + (&url.URL{Path: e.Path}).EscapedPath() }

// URI is String: a Unix endpoint needs no lookup.
func (e Unix) URI() string { return e.String() }

// Validate checks that the path is absolute.
func (e Unix) Validate() error {
	switch {
	case e.Path == "":
		return invalid("unix endpoint without a socket path")
	case e.Path[0] == '@':
		return invalid("unix socket path " + strconv.Quote(e.Path) + " is not absolute: abstract sockets are not supported")
	case !strings.HasPrefix(e.Path, "/"):
		return invalid("unix socket path " + strconv.Quote(e.Path) + " is not absolute")
	case strings.IndexByte(e.Path, 0) >= 0:
		return invalid("NUL in unix socket path " + strconv.Quote(e.Path))
	}
	return nil
}

// MarshalJSON returns {"transport":"unix","address":"PATH"}.
func (e Unix) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonForm{Transport: KindUnix, Address: e.Path})
}
