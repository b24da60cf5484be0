package endpoint

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// KindTLS is the kind of TLS endpoints.
const KindTLS = "tls"

// TLS is TLS over any inner endpoint. ServerName is the name sent in SNI
// and verified against the peer's certificate.
type TLS struct {
	ServerName string
	Inner      Endpoint
	// SVC, when non-nil, is what an HTTPS or SVCB record said of the
	// endpoint (ALPN protocols, ECH configuration): the TLS transport
	// offers its ALPN protocols and encrypts the ClientHello with its ECH
	// configuration.
	SVC *SVCParams
}

// Kind returns KindTLS.
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

// URI returns the TLS scheme of the inner endpoint's URI (tls://ADDR:PORT,
// tls+unix://PATH, tls+vchan://…) with ?sni=NAME when the server name is
// not the inner address itself; String for an inner endpoint whose scheme
// has no TLS form.
func (e TLS) URI() string {
	if e.Inner == nil {
		return e.String()
	}
	inner := URI(e.Inner)
	scheme, rest, ok := strings.Cut(inner, "://")
	s, found := lookupScheme(scheme)
	if !ok || !found || s.TLS {
		return e.String()
	}
	tlsScheme, _ := tlsSchemeOf(s.Base)
	u := tlsScheme.Name + "://" + rest
	host := ""
	if t, ok := e.Inner.(TCP); ok {
		host = t.Addr.Addr().String()
	}
	if e.ServerName != "" && e.ServerName != host {
		u += "?sni=" + e.ServerName
	}
	return u
}

// Bind binds the inner endpoint.
func (e TLS) Bind(addr net.Addr) Endpoint {
	if e.Inner != nil {
		e.Inner = Bind(e.Inner, addr)
	}
	return e
}

// Unwrap returns the inner endpoint.
func (e TLS) Unwrap() Endpoint { return e.Inner }

// Validate checks that there is an inner endpoint, not itself TLS, and
// validates it.
func (e TLS) Validate() error {
	if e.Inner == nil {
		return invalid(fmt.Sprintf("%s: TLS endpoint without an inner endpoint", e))
	}
	if _, ok := e.Inner.(TLS); ok {
		return invalid(fmt.Sprintf("%s: TLS over TLS is not supported", e))
	}
	return Validate(e.Inner)
}

// tlsJSONForm is the JSON form of a TLS endpoint: the common form and
// what an HTTPS or SVCB record said (SVC).
type tlsJSONForm struct {
	jsonForm
	ALPN []string `json:"alpn,omitempty"`
	ECH  bool     `json:"ech,omitempty"`
	Hint bool     `json:"hint,omitempty"`
}

// MarshalJSON returns {"transport":"tls","address":…,"server_name":…,
// "inner":{…}} with the inner endpoint's address, and, when an HTTPS or
// SVCB record gave SVC, "alpn":[…] (the protocols offered), "ech":true
// (an ECH configuration is used) and "hint":true (the address is an
// ipv4hint/ipv6hint).
func (e TLS) MarshalJSON() ([]byte, error) {
	var full tlsJSONForm
	if e.SVC != nil {
		full.ALPN, full.ECH, full.Hint = e.SVC.ALPN, len(e.SVC.ECH) > 0, e.SVC.Hint
	}
	f := &full.jsonForm
	*f = jsonForm{Transport: KindTLS, ServerName: e.ServerName}
	if e.Inner != nil {
		inner, err := MarshalJSON(e.Inner)
		if err != nil {
			return nil, err
		}
		var in struct {
			Address string `json:"address"`
		}
		if json.Unmarshal(inner, &in) == nil {
			f.Address = in.Address
		}
		f.Inner = inner
	}
	return json.Marshal(full)
}
