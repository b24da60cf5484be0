package resolver

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// An Endpoint is one concrete place to connect to: what a URI resolves to
// and what a transport dials or listens on. Endpoints are values: compare
// them with ==.
//
// The built-in kinds are TCP, Unix, VchanDirect, VchanNamed and TLS (which
// wraps any other endpoint). A custom transport defines its own endpoint
// type implementing this interface and registers a transport for its Kind.
type Endpoint interface {
	// Kind names the transport that handles the endpoint: "tcp", "unix",
	// "vchan", "vchan-name", "tls", or a custom kind.
	Kind() string
	// String is the endpoint in URI form; see docs/uris.md.
	String() string
}

// Kinds of the built-in endpoints.
const (
	KindTCP        = "tcp"
	KindUnix       = "unix"
	KindVchan      = "vchan"
	KindVchanNamed = "vchan-name"
	KindTLS        = "tls"
)

// TCP is a TCP endpoint: an IP address and port, with the logical host
// name it was resolved from (empty for an IP literal).
type TCP struct {
	Host string
	Addr netip.AddrPort
}

func (TCP) Kind() string { return KindTCP }

// String returns "tcp://ADDR:PORT", with "HOST=" before the address when
// the endpoint came from a host name: tcp://example.com=192.0.2.1:80.
func (e TCP) String() string {
	if e.Host == "" || e.Host == e.Addr.Addr().String() {
		return "tcp://" + e.Addr.String()
	}
	return "tcp://" + e.Host + "=" + e.Addr.String()
}

// Unix is a Unix-domain stream socket endpoint.
type Unix struct {
	Path string
}

func (Unix) Kind() string { return KindUnix }

func (e Unix) String() string { return "unix://" + (&url.URL{Path: e.Path}).EscapedPath() }

// VchanDirect is a vchan endpoint named by the server's domain id and a
// port (OCaml conduit's Vchan_direct).
type VchanDirect struct {
	Domid int
	Port  string
}

func (VchanDirect) Kind() string { return KindVchan }

func (e VchanDirect) String() string { return "vchan://" + strconv.Itoa(e.Domid) + "/" + e.Port }

// VchanNamed is a vchan endpoint named by the server's registered name and
// a port (OCaml conduit's Vchan_domain_socket).
type VchanNamed struct {
	Name string
	Port string
}

func (VchanNamed) Kind() string { return KindVchanNamed }

func (e VchanNamed) String() string { return "vchan://" + e.Name + "/" + e.Port }

// TLS is TLS over any inner endpoint. ServerName is the name sent in SNI
// and verified against the peer's certificate.
type TLS struct {
	ServerName string
	Inner      Endpoint
}

func (TLS) Kind() string { return KindTLS }

// String returns "tls://NAME@INNER", for example
// tls://example.com@tcp://example.com=192.0.2.1:443.
func (e TLS) String() string {
	inner := "<nil>"
	if e.Inner != nil {
		inner = e.Inner.String()
	}
	return "tls://" + e.ServerName + "@" + inner
}

var vchanPort = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ValidVchanPort reports whether p is a valid vchan port name:
// one or more of [A-Za-z0-9_-].
func ValidVchanPort(p string) bool { return vchanPort.MatchString(p) }

// Validate checks an endpoint's fields (an address with a port in range,
// an absolute socket path, a valid vchan port, a TLS endpoint with a
// server name and a valid inner endpoint). Custom kinds are accepted.
func Validate(e Endpoint) error {
	switch e := e.(type) {
	case nil:
		return fmt.Errorf("resolver: nil endpoint")
	case TCP:
		if !e.Addr.Addr().IsValid() {
			return fmt.Errorf("resolver: %s: invalid IP address", e)
		}
		if e.Addr.Port() == 0 {
			return fmt.Errorf("resolver: %s: port 0 is only valid to listen on", e)
		}
	case Unix:
		if e.Path == "" {
			return fmt.Errorf("resolver: unix endpoint without a socket path")
		}
		if !strings.HasPrefix(e.Path, "/") && !strings.HasPrefix(e.Path, "@") {
			return fmt.Errorf("resolver: unix socket path %q is not absolute", e.Path)
		}
	case VchanDirect:
		if e.Domid < 0 || e.Domid > 0x7FF0 {
			return fmt.Errorf("resolver: %s: domain id %d out of range", e, e.Domid)
		}
		if !ValidVchanPort(e.Port) {
			return fmt.Errorf("resolver: %s: invalid vchan port %q (want [A-Za-z0-9_-]+)", e, e.Port)
		}
	case VchanNamed:
		if e.Name == "" {
			return fmt.Errorf("resolver: %s: empty vchan name", e)
		}
		if !ValidVchanPort(e.Port) {
			return fmt.Errorf("resolver: %s: invalid vchan port %q (want [A-Za-z0-9_-]+)", e, e.Port)
		}
	case TLS:
		if e.Inner == nil {
			return fmt.Errorf("resolver: %s: TLS endpoint without an inner endpoint", e)
		}
		if _, ok := e.Inner.(TLS); ok {
			return fmt.Errorf("resolver: %s: TLS over TLS is not supported", e)
		}
		return Validate(e.Inner)
	}
	return nil
}
