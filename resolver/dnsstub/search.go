package dnsstub

import (
	"strings"

	"github.com/miekg/dns"
)

// checkName rejects names that cannot be asked.
func checkName(name string) error {
	if name == "" || name == "." {
		return ErrInvalidName
	}
	if _, ok := dns.IsDomainName(name); !ok || len(strings.TrimSuffix(name, ".")) > 253 {
		return ErrInvalidName
	}
	return nil
}

// ErrInvalidName: the name is not a valid domain name. It matches
// ErrNotFound, as no such name can exist.
var ErrInvalidName error = &notFoundError{"invalid domain name"}

// candidate returns the i-th fully qualified name to try for name: name
// itself when it ends in a dot; otherwise name then the search list
// when it has at least ndots dots, the search list then name if not.
func (s *Stub) candidate(name string, i int) (string, bool) {
	if strings.HasSuffix(name, ".") {
		return name, i == 0
	}
	n := len(s.search)
	if strings.Count(name, ".") >= s.ndots {
		switch {
		case i == 0:
			return name + ".", true
		case i <= n:
			return name + "." + s.search[i-1] + ".", true
		}
		return "", false
	}
	switch {
	case i < n:
		return name + "." + s.search[i] + ".", true
	case i == n:
		return name + ".", true
	}
	return "", false
}
