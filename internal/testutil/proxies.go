package testutil

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago, for a
// peer that cannot be told to pick one itself and report it.
func FreePort(t testing.TB) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// WaitListening waits until something accepts TCP connections at addr,
// or p exits, for at most 20 s.
func WaitListening(t testing.TB, p *Process, addr netip.AddrPort, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.Exited():
			t.Fatalf("%s exited before listening on %s: %s", what, addr, p.Stderr())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not listening on %s after 20 s: %s", what, addr, p.Stderr())
		}
	}
}

// Danted starts Dante's SOCKS5 server (danted) on a loopback port, with
// no authentication, passing connections from 127.0.0.0/8 to any
// destination except those of the extra rules, which come first (such as
// "socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 port = 9 }"). It skips (or
// fails in CI) when dante-server is not installed.
func Danted(t testing.TB, rules ...string) netip.AddrPort {
	t.Helper()
	path := RequirePeer(t, "danted", "dante-server")
	dir := t.TempDir()
	port := FreePort(t)
	conf := fmt.Sprintf(`logoutput: %s
internal: 127.0.0.1 port = %d
external: lo
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
%s
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
`, filepath.Join(dir, "danted.log"), port, strings.Join(rules, "\n"))
	cf := filepath.Join(dir, "danted.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := StartProcess(t, path, "-f", cf, "-N", "1", "-p", filepath.Join(dir, "danted.pid"))
	t.Cleanup(func() {
		// SIGTERM before StartProcess's SIGKILL: danted then ends its
		// child processes too, which a SIGKILL would leave running,
		// holding its standard error open.
		p.Signal(syscall.SIGTERM)
		select {
		case <-p.Exited():
		case <-time.After(10 * time.Second):
		}
	})
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	WaitListening(t, p, addr, "danted")
	return addr
}

// TinyproxyConfig is the part of tinyproxy's configuration a test sets.
type TinyproxyConfig struct {
	// ConnectPorts are the destination ports CONNECT may reach (none:
	// any).
	ConnectPorts []uint16
	// User and Password, when set, are required (BasicAuth).
	User, Password string
}

// Tinyproxy starts tinyproxy on a loopback port, allowing clients from
// 127.0.0.1. It skips (or fails in CI) when tinyproxy is not installed.
func Tinyproxy(t testing.TB, cfg TinyproxyConfig) netip.AddrPort {
	t.Helper()
	path := RequirePeer(t, "tinyproxy", "tinyproxy")
	dir := t.TempDir()
	port := FreePort(t)
	var b strings.Builder
	fmt.Fprintf(&b, "Port %d\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 200\n", port)
	fmt.Fprintf(&b, "PidFile %q\nLogFile %q\nLogLevel Info\n", filepath.Join(dir, "tp.pid"), filepath.Join(dir, "tp.log"))
	for _, p := range cfg.ConnectPorts {
		fmt.Fprintf(&b, "ConnectPort %d\n", p)
	}
	if cfg.User != "" {
		fmt.Fprintf(&b, "BasicAuth %s %s\n", cfg.User, cfg.Password)
	}
	cf := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(cf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := StartProcess(t, path, "-d", "-c", cf)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	WaitListening(t, p, addr, "tinyproxy")
	return addr
}
