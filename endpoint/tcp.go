package endpoint

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
)

// KindTCP is the kind of TCP endpoints.
const KindTCP = "tcp"

// TCP is a TCP endpoint: an IP address and port, with the logical host
// name it was resolved from (empty for an IP literal).
type TCP struct {
	Host string
	Addr netip.AddrPort
}

// Kind returns KindTCP.
func (TCP) Kind() string { return KindTCP }

// String returns "tcp://ADDR:PORT", with "HOST=" before the address when
// the endpoint came from a host name: tcp://example.com=192.0.2.1:80.
func (e TCP) String() string {
	if e.Host == "" || e.Host == e.Addr.Addr().String() {
		return "tcp://" + e.Addr.String()
	}
	return "tcp://" + e.Host + "=" + e.Addr.String()
}

// URI returns "tcp://ADDR:PORT".
func (e TCP) URI() string { return "tcp://" + e.Addr.String() }

// Family returns "4" or "6".
func (e TCP) Family() string {
	if e.Addr.Addr().Unmap().Is4() {
		return "4"
	}
	return "6"
}

// Validate checks that the address is valid and the port not 0 (port 0
// is only valid to listen on).
func (e TCP) Validate() error {
	if !e.Addr.Addr().IsValid() {
		return invalid(fmt.Sprintf("%s: invalid IP address", e))
	}
	if e.Addr.Port() == 0 {
		return invalid(fmt.Sprintf("%s: port 0 is only valid to listen on", e))
	}
	return nil
}

// Bind takes the port of a listener's address (any net.Addr with an
// AddrPort method, such as *net.TCPAddr), and its IP address too when e's
// address is unspecified.
func (e TCP) Bind(addr net.Addr) Endpoint {
	a, ok := addr.(interface{ AddrPort() netip.AddrPort })
	if !ok {
		return e
	}
	ap := a.AddrPort()
	if !ap.IsValid() {
		return e
	}
	if e.Addr.Addr().IsUnspecified() || !e.Addr.Addr().IsValid() {
		e.Addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	} else {
		e.Addr = netip.AddrPortFrom(e.Addr.Addr(), ap.Port())
	}
	return e
}

// MarshalJSON returns {"transport":"tcp","address":"ADDR:PORT","host":…}.
func (e TCP) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonForm{Transport: KindTCP, Address: e.Addr.String(), Host: e.Host})
}

// jsonForm is the JSON object of every built-in kind; docs/cli.md
// documents it as the output of `conduit resolve --json`.
type jsonForm struct {
	Transport  string          `json:"transport"`
	Address    string          `json:"address"`
	Host       string          `json:"host,omitempty"`
	ServerName string          `json:"server_name,omitempty"`
	Inner      json.RawMessage `json:"inner,omitempty"`
}

// MarshalJSON returns ep's JSON form: its own when it is a json.Marshaler
// (the built-in kinds are), else {"transport":KIND,"address":STRING}.
// Every form has at least "transport" and "address".
func MarshalJSON(ep Endpoint) ([]byte, error) {
	if m, ok := ep.(json.Marshaler); ok {
		return m.MarshalJSON()
	}
	return json.Marshal(jsonForm{Transport: ep.Kind(), Address: ep.String()})
}
