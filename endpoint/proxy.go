package endpoint

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// KindProxy is the kind of proxy hops.
const KindProxy = "proxy"

// The proxy protocols of a Proxy hop.
const (
	// ProxySOCKS5 is SOCKS5 (RFC 1928) with the destination resolved by
	// the client: Target is an IP address and port.
	ProxySOCKS5 = "socks5"
	// ProxySOCKS5H is SOCKS5 with the destination's name sent to the
	// proxy, which resolves it (curl's socks5h).
	ProxySOCKS5H = "socks5h"
	// ProxyHTTP is HTTP CONNECT (RFC 9110 §9.3.6). An https:// proxy is
	// ProxyHTTP over a TLS endpoint.
	ProxyHTTP = "http"
)

// Proxy is one hop through a proxy: a connection to Target asked of the
// proxy reached by Via. Via is the proxy's own endpoint: TCP, TLS (an
// https:// proxy), Unix, vchan, or the previous hop of a chain, so a
// chain A then B is Proxy{Target: B's…, Via: Proxy{…, Via: A}} read from
// the outside in. TLS to the destination wraps the last hop:
// TLS{ServerName: "example.com", Inner: Proxy{Target: "example.com:443", …}}.
type Proxy struct {
	// Protocol is ProxySOCKS5, ProxySOCKS5H or ProxyHTTP.
	Protocol string
	// Target is the "host:port" asked of the proxy: an IP address and
	// port, or (socks5h, http) a host name and port.
	Target string
	// Host is the host name Target's address was resolved from (socks5,
	// which resolves locally), for display; empty otherwise.
	Host string
	// Username and Password authenticate to the proxy (RFC 1929, or HTTP
	// Basic); empty means none.
	Username, Password string
	// Via is the endpoint of the proxy.
	Via Endpoint
}

// Kind returns KindProxy.
func (Proxy) Kind() string { return KindProxy }

// String returns "PROTOCOL://[USER@]TARGET@VIA", for example
// socks5://example.com=192.0.2.1:443@tcp://10.0.0.1:1080: the hop asks
// for TARGET of the proxy at VIA. The password is never shown.
func (e Proxy) String() string {
	via := "<nil>"
	if e.Via != nil {
		via = e.Via.String()
	}
	target := e.Target
	if e.Host != "" {
		if h, _, err := net.SplitHostPort(e.Target); err == nil && h != e.Host {
			target = e.Host + "=" + e.Target
		}
	}
	user := ""
	if e.Username != "" {
		user = e.Username + "@"
	}
	return e.Protocol + "://" + user + target + "@" + via
}

// Unwrap returns Via.
func (e Proxy) Unwrap() Endpoint { return e.Via }

// Rewrap returns e over a new Via.
func (e Proxy) Rewrap(via Endpoint) Endpoint { e.Via = via; return e }

// Family returns the family of Target when it is an IP address, so the
// addresses of a destination resolved locally are raced as Happy
// Eyeballs races direct ones; the family of Via otherwise.
func (e Proxy) Family() string {
	if ap, err := netip.ParseAddrPort(e.Target); err == nil {
		if ap.Addr().Unmap().Is4() {
			return "4"
		}
		return "6"
	}
	if e.Via != nil {
		return Family(e.Via)
	}
	return KindProxy
}

// TargetAddr returns Target's address and port when it is an IP address.
func (e Proxy) TargetAddr() (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(e.Target)
	return ap, err == nil
}

// Validate checks the protocol, Target (a host and a port 1-65535; an IP
// address for socks5) and Via, and validates Via.
func (e Proxy) Validate() error {
	switch e.Protocol {
	case ProxySOCKS5, ProxySOCKS5H, ProxyHTTP:
	default:
		return invalid(fmt.Sprintf("%s: unknown proxy protocol %q", e, e.Protocol))
	}
	host, port, err := net.SplitHostPort(e.Target)
	if err != nil || host == "" {
		return invalid(fmt.Sprintf("%s: proxy target %q is not HOST:PORT", e, e.Target))
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return invalid(fmt.Sprintf("%s: proxy target %q: port must be 1-65535", e, e.Target))
	}
	if e.Protocol == ProxySOCKS5 {
		if _, err := netip.ParseAddr(host); err != nil {
			return invalid(fmt.Sprintf("%s: a socks5 target is an IP address (socks5h sends names)", e))
		}
	}
	if len(host) > 255 {
		return invalid(fmt.Sprintf("%s: proxy target host is longer than 255 bytes", e))
	}
	if e.Via == nil {
		return invalid(fmt.Sprintf("%s: proxy hop without the proxy's endpoint", e))
	}
	return Validate(e.Via)
}

// MarshalJSON returns {"transport":"proxy","address":TARGET,
// "protocol":…,"host":…,"username":…,"inner":{the proxy's endpoint}}.
func (e Proxy) MarshalJSON() ([]byte, error) {
	f := struct {
		Transport string          `json:"transport"`
		Address   string          `json:"address"`
		Protocol  string          `json:"protocol"`
		Host      string          `json:"host,omitempty"`
		Username  string          `json:"username,omitempty"`
		Inner     json.RawMessage `json:"inner,omitempty"`
	}{Transport: KindProxy, Address: e.Target, Protocol: e.Protocol, Host: e.Host, Username: e.Username}
	if e.Via != nil {
		via, err := MarshalJSON(e.Via)
		if err != nil {
			return nil, err
		}
		f.Inner = via
	}
	return json.Marshal(f)
}

// A Rewrapper is a Wrapper that can be rebuilt over another inner
// endpoint (TLS and Proxy are): what lets a chain of proxies be put under
// an endpoint's wrappers.
type Rewrapper interface {
	Wrapper
	Rewrap(inner Endpoint) Endpoint
}

// ReplaceInnermost returns ep with its innermost endpoint replaced by
// f(innermost), rebuilding each wrapper over the new inner endpoint. It
// returns false when a wrapper on the way cannot be rebuilt.
func ReplaceInnermost(ep Endpoint, f func(Endpoint) Endpoint) (Endpoint, bool) {
	in := Unwrap(ep)
	if in == nil {
		return f(ep), true
	}
	rw, ok := ep.(Rewrapper)
	if !ok {
		return ep, false
	}
	newIn, ok := ReplaceInnermost(in, f)
	if !ok {
		return ep, false
	}
	return rw.Rewrap(newIn), true
}
