package vchan

import (
	"fmt"
	"regexp"
	"strconv"
)

// Addr is a vchan endpoint address: vchan://DOMID/PORT or
// vchan://NAME/PORT. It implements net.Addr.
type Addr struct {
	// Domid is the domain id, 1..32751 (0 when only the name is known).
	Domid int
	// Name is the registered name, if the endpoint was reached by name.
	Name string
	// Port is the port name.
	Port string
}

// Domain returns a.Domid (for endpoint.VchanDirect.Bind, which takes a
// listener's allocated domid from it).
func (a *Addr) Domain() int { return a.Domid }

// Network returns "vchan".
func (a *Addr) Network() string { return "vchan" }

// String returns vchan://NAME/PORT when Name is set, else
// vchan://DOMID/PORT.
func (a *Addr) String() string {
	if a == nil {
		return "<nil>"
	}
	host := strconv.Itoa(a.Domid)
	if a.Name != "" {
		host = a.Name
	}
	return fmt.Sprintf("vchan://%s/%s", host, a.Port)
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// maxDomid is the last domid below Xen's DOMID_FIRST_RESERVED (0x7ff0).
// A domain is 1..maxDomid here: 0 (Xen's dom0) is never registered,
// since every domain of this backend is a process; as Config.Domid and in
// a vchan://0/PORT URI to listen on, 0 asks for a free domid.
const maxDomid = 0x7fef

func checkPort(port string) error {
	if len(port) > 128 || !namePattern.MatchString(port) {
		return fmt.Errorf("vchan: invalid port %q (want [A-Za-z0-9_-]+)", port)
	}
	return nil
}

func checkName(name string) error {
	if len(name) > 128 || !namePattern.MatchString(name) {
		return fmt.Errorf("vchan: invalid name %q (want [A-Za-z0-9_-]+)", name)
	}
	if _, err := strconv.Atoi(name); err == nil {
		return fmt.Errorf("vchan: invalid name %q (all digits: looks like a domid)", name)
	}
	return nil
}

func checkDomid(d int) error {
	if d == 0 {
		return fmt.Errorf("vchan: invalid domid 0 (0 only allocates a domid to listen on; dial the domid the listener reports, 1..%d)", maxDomid)
	}
	if d < 1 || d > maxDomid {
		return fmt.Errorf("vchan: invalid domid %d (want 1..%d)", d, maxDomid)
	}
	return nil
}
