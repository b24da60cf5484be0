package endpoint

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
)

// Kinds of vchan endpoints.
const (
	KindVchan      = "vchan"
	KindVchanNamed = "vchan-name"
)

// MaxDomid is the largest domain id a vchan endpoint may name (Xen's
// DOMID_FIRST_RESERVED - 1).
const MaxDomid = 0x7FEF

// VchanDirect is a vchan endpoint named by the server's domain id and a
// port (OCaml conduit's Vchan_direct).
type VchanDirect struct {
	Domid int
	Port  string
}

// Kind returns KindVchan.
func (VchanDirect) Kind() string { return KindVchan }

// String returns "vchan://DOMID/PORT".
func (e VchanDirect) String() string { return "vchan://" + strconv.Itoa(e.Domid) + "/" + e.Port }

// URI is String.
func (e VchanDirect) URI() string { return e.String() }

// Validate checks the domain id's range and the port's characters.
// Domain id 0 is only valid to listen on (the listener allocates one).
func (e VchanDirect) Validate() error {
	if e.Domid == 0 {
		return invalid(fmt.Sprintf("%s: domain id 0 is only valid to listen on", e))
	}
	if e.Domid < 0 || e.Domid > MaxDomid {
		return invalid(fmt.Sprintf("%s: domain id %d out of range", e, e.Domid))
	}
	return validVchanPort(e, e.Port)
}

// Bind takes the domain id a listener was given (its address's Domain
// method, as *vchan.Addr has).
func (e VchanDirect) Bind(addr net.Addr) Endpoint {
	if d, ok := addr.(interface{ Domain() int }); ok {
		e.Domid = d.Domain()
	}
	return e
}

// MarshalJSON returns {"transport":"vchan","address":"DOMID/PORT"}.
func (e VchanDirect) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonForm{Transport: KindVchan, Address: strconv.Itoa(e.Domid) + "/" + e.Port})
}

// VchanNamed is a vchan endpoint named by the server's registered name and
// a port (OCaml conduit's Vchan_domain_socket).
type VchanNamed struct {
	Name string
	Port string
}

// Kind returns KindVchanNamed.
func (VchanNamed) Kind() string { return KindVchanNamed }

// String returns "vchan://NAME/PORT".
func (e VchanNamed) String() string { return "vchan://" + e.Name + "/" + e.Port }

// URI is String.
func (e VchanNamed) URI() string { return e.String() }

// Validate checks that the name is set and the port's characters.
func (e VchanNamed) Validate() error {
	if e.Name == "" {
		return invalid(fmt.Sprintf("%s: empty vchan name", e))
	}
	return validVchanPort(e, e.Port)
}

// MarshalJSON returns {"transport":"vchan-name","address":"NAME/PORT"}.
func (e VchanNamed) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonForm{Transport: KindVchanNamed, Address: e.Name + "/" + e.Port})
}

// ValidVchanPort reports whether p is a valid vchan port name: one or
// more of [A-Za-z0-9_-].
func ValidVchanPort(p string) bool {
	if p == "" {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validVchanPort(e Endpoint, p string) error {
	if !ValidVchanPort(p) {
		return invalid(fmt.Sprintf("%s: invalid vchan port %q (want [A-Za-z0-9_-]+)", e, p))
	}
	return nil
}

// A VchanAddress is what both vchan kinds name: a domain, by id or by
// registered name (Name set, Domid 0), and a port.
type VchanAddress struct {
	Domid int
	Name  string
	Port  string
}

// A Vchan is an endpoint of either vchan kind.
type Vchan interface {
	Endpoint
	VchanAddress() VchanAddress
}

// VchanAddress returns the domain id and port.
func (e VchanDirect) VchanAddress() VchanAddress { return VchanAddress{Domid: e.Domid, Port: e.Port} }

// VchanAddress returns the name and port.
func (e VchanNamed) VchanAddress() VchanAddress { return VchanAddress{Name: e.Name, Port: e.Port} }
