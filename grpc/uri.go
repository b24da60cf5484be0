package conduitgrpc

import (
	"errors"
	"net/netip"
	"strings"

	gresolver "google.golang.org/grpc/resolver"

	cresolver "github.com/conduit-go/conduit/resolver"
)

// errTarget is the cause of a target that does not hold a conduit URI.
var errTarget = errors.New("conduitgrpc: malformed target")

// targetURI returns the conduit URI of a gRPC target: what follows
// "SCHEME:///" (or "SCHEME:"), with its query. A target with an
// authority (SCHEME://AUTHORITY/URI) is refused: conduit has no use for
// one, and silently ignoring it would hide a typo such as
// "conduit://https+srv://…" (two slashes).
func targetURI(t gresolver.Target) (string, error) {
	u := t.URL
	if u.Host != "" || u.User != nil {
		return "", targetError(t, "has an authority: write SCHEME:///URI, with three slashes")
	}
	uri := u.Opaque
	if uri == "" {
		// RawPath is the path as written when it differs from the
		// default encoding of Path; else that encoding is.
		raw := u.RawPath
		if raw == "" {
			raw = u.EscapedPath()
		}
		uri = strings.TrimPrefix(raw, "/")
	}
	if u.RawQuery != "" || u.ForceQuery {
		uri += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		uri += "#" + u.EscapedFragment()
	}
	if uri == "" {
		return "", targetError(t, "names no conduit URI")
	}
	return uri, nil
}

type targetErr struct {
	target, msg string
}

func targetError(t gresolver.Target, msg string) error {
	return &targetErr{target: t.URL.String(), msg: msg}
}

func (e *targetErr) Error() string { return "conduitgrpc: target " + e.target + " " + e.msg }
func (e *targetErr) Unwrap() error { return errTarget }

// uriNames returns the logical name of a conduit URI (see LogicalNameOf)
// and, for an SRV URI, the name whose SRV records it asks for.
func uriNames(uri string) (name, srvName string, err error) {
	u, err := cresolver.ParseURI(uri)
	if err != nil {
		return "", "", err
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	switch scheme := u.Scheme; {
	case scheme == "srv":
		srvName = host
		if labels := strings.SplitN(host, ".", 3); len(labels) == 3 {
			host = labels[2]
		}
	case strings.HasSuffix(scheme, "+srv"):
		srvName = "_" + strings.TrimSuffix(scheme, "+srv") + "._tcp." + host
	case scheme == "unix" || scheme == "tls+unix" || scheme == "vchan" || scheme == "tls+vchan":
		host = "localhost"
	}
	if sni := u.Query().Get("sni"); sni != "" {
		host = sni
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + a.String() + "]" // an :authority holds an IPv6 address in brackets
	}
	if host == "" {
		host = "localhost"
	}
	return host, srvName, nil
}

// authority returns the :authority of a target, "" when it has none.
func authority(t gresolver.Target) string {
	uri, err := targetURI(t)
	if err != nil {
		return ""
	}
	name, _, err := uriNames(uri)
	if err != nil {
		return ""
	}
	return name
}
