package proxy

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// The SOCKS5 wire constants (RFC 1928, RFC 1929).
const (
	socks5Version     = 5
	socks5AuthVersion = 1 // RFC 1929's subnegotiation version

	socks5MethodNone     = 0x00
	socks5MethodPassword = 0x02
	socks5MethodNoneOK   = 0xff // "no acceptable methods"

	socks5CmdConnect = 1

	socks5AtypIPv4   = 1
	socks5AtypDomain = 3
	socks5AtypIPv6   = 4

	// socks5MaxAddr is the longest DST or BND field with its port: a
	// length byte, a 255-byte name and two port bytes.
	socks5MaxAddr = 1 + 255 + 2
)

// socks5Addr is a SOCKS5 address: an IP address (ATYP 1 or 4) or a
// domain name (ATYP 3), and a port.
type socks5Addr struct {
	ip   netip.Addr // valid for ATYP 1 and 4
	name string     // for ATYP 3
	port uint16
}

// socks5ParseTarget parses a client's target, "host:port": an IP literal
// becomes ATYP 1 (IPv4, and IPv4-mapped IPv6, unmapped) or 4, anything
// else a name of 1 to 255 bytes.
func socks5ParseTarget(target string) (socks5Addr, error) {
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return socks5Addr{}, socks5TargetError(target, "not host:port")
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return socks5Addr{}, socks5TargetError(target, "bad port")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return socks5Addr{}, socks5TargetError(target, "an IPv6 zone cannot be sent")
		}
		return socks5Addr{ip: ip.Unmap(), port: uint16(port)}, nil
	}
	switch {
	case host == "":
		return socks5Addr{}, socks5TargetError(target, "empty host")
	case len(host) > 255:
		return socks5Addr{}, socks5TargetError(target, "host name longer than 255 bytes")
	}
	return socks5Addr{name: host, port: uint16(port)}, nil
}

func socks5TargetError(target, why string) error {
	return &socks5Error{msg: "invalid target " + strconv.Quote(target) + ": " + why}
}

// appendTo appends ATYP, the address and the port to b.
func (a socks5Addr) appendTo(b []byte) []byte {
	switch {
	case a.ip.Is4():
		ip := a.ip.As4()
		b = append(b, socks5AtypIPv4)
		b = append(b, ip[:]...)
	case a.ip.Is6():
		ip := a.ip.As16()
		b = append(b, socks5AtypIPv6)
		b = append(b, ip[:]...)
	default:
		b = append(b, socks5AtypDomain, byte(len(a.name)))
		b = append(b, a.name...)
	}
	return binary.BigEndian.AppendUint16(b, a.port)
}

// host is the address or name as text, for Allow, Dial and logs.
func (a socks5Addr) host() string {
	if a.ip.IsValid() {
		return a.ip.String()
	}
	return a.name
}

// String is "host:port" (an IPv6 address in brackets).
func (a socks5Addr) String() string {
	return net.JoinHostPort(a.host(), strconv.Itoa(int(a.port)))
}

// errSOCKS5Atyp is returned by socks5ReadAddr for an unknown ATYP.
var errSOCKS5Atyp = errors.New("unknown address type")

// socks5ReadAddr reads the address of type atyp and its port from r,
// exactly (no byte beyond the port), using buf (at least socks5MaxAddr
// bytes) as scratch. An unknown atyp gives errSOCKS5Atyp before any
// byte is read.
func socks5ReadAddr(r io.Reader, atyp byte, buf []byte) (socks5Addr, error) {
	var n int
	switch atyp {
	case socks5AtypIPv4:
		n = 4 + 2
	case socks5AtypIPv6:
		n = 16 + 2
	case socks5AtypDomain:
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			return socks5Addr{}, err
		}
		n = int(buf[0]) + 2
	default:
		return socks5Addr{}, errSOCKS5Atyp
	}
	b := buf[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return socks5Addr{}, err
	}
	port := binary.BigEndian.Uint16(b[n-2:])
	switch atyp {
	case socks5AtypIPv4:
		return socks5Addr{ip: netip.AddrFrom4([4]byte(b[:4])), port: port}, nil
	case socks5AtypIPv6:
		return socks5Addr{ip: netip.AddrFrom16([16]byte(b[:16])), port: port}, nil
	}
	return socks5Addr{name: string(b[:n-2]), port: port}, nil
}

// socks5ValidName reports whether a destination name a client sent is a
// host name a dialer can be given: 1 to 253 bytes (one more for a
// trailing dot) of letters, digits, '-', '_' and '.', with no empty
// label.
func socks5ValidName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return true
}
