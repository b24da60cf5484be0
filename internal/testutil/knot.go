package testutil

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Knot starts knotd on a loopback port serving zone with the records
// (zone-file syntax, relative to the zone; the zone's TTL is ttl
// seconds) and returns its address once it answers the zone's SOA. A
// port taken meanwhile is retried on another, up to 5 times.
func Knot(t testing.TB, zone string, ttl int, records ...string) netip.AddrPort {
	t.Helper()
	path := RequirePeer(t, "knotd", "knot")
	dir := t.TempDir()
	zoneFile := filepath.Join(dir, zone+".zone")
	body := fmt.Sprintf("$ORIGIN %s.\n$TTL %d\n@ SOA ns admin 1 3600 900 604800 30\n@ NS ns\nns A 127.0.0.1\n%s\n",
		zone, ttl, strings.Join(records, "\n"))
	if err := os.WriteFile(zoneFile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for try := 0; try < 5; try++ {
		port := FreeUDPPort(t)
		conf := fmt.Sprintf("server:\n    rundir: %q\n    listen: 127.0.0.1@%d\nlog:\n  - target: stderr\n    any: info\n"+
			"database:\n    storage: %q\nzone:\n  - domain: %s\n    file: %q\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n",
			dir, port, dir, zone, zoneFile)
		confFile := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		p := StartProcess(t, path, "-c", confFile)
		if WaitDNS(t, p, addr, dns.Fqdn(zone), dns.TypeSOA) {
			return addr
		}
	}
	t.Fatal("could not start knotd")
	return netip.AddrPort{}
}

// WaitDNS waits up to 10 s for the server p at addr to answer a query of
// qtype for name; false when p exited first (its port taken, say).
func WaitDNS(t testing.TB, p *Process, addr netip.AddrPort, name string, qtype uint16) bool {
	t.Helper()
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-p.Exited():
			t.Logf("DNS server exited: %s", p.Stderr())
			return false
		default:
		}
		if m, _, err := c.Exchange(q, addr.String()); err == nil && len(m.Answer) > 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond) // polling for readiness; decides nothing
	}
	t.Fatalf("DNS server at %s did not answer: %s", addr, p.Stderr())
	return false
}
