package resolver_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// svcbZone is the zone both real servers serve, relative to svc.test.
var svcbZone = []string{
	// ServiceMode at the origin: alpn, ech, hints; its own addresses.
	"web HTTPS 1 . alpn=h2,h3 ech=AQID ipv4hint=127.0.0.9 ipv6hint=::9",
	"web A 127.0.0.1",
	"web AAAA ::1",
	// AliasMode to a name with two ServiceMode records, listed out of
	// SvcPriority order: port, no-default-alpn.
	"alias HTTPS 0 pool.svc.test.",
	"pool HTTPS 2 b.svc.test. port=8443 alpn=h3 no-default-alpn",
	"pool HTTPS 1 a.svc.test. alpn=h2",
	"a A 127.0.0.2",
	"b AAAA ::3",
	"alias A 127.0.0.1",
	// An opt-in scheme's SVCB record (RFC 9460 §2.3).
	"_8443._foo.web SVCB 1 web.svc.test. port=9443 alpn=foo/1",
}

// checkSVCBZone resolves the zone's names through a resolver asking
// server, and checks every rule.
func checkSVCBZone(t *testing.T, server netip.AddrPort) {
	r, err := resolver.New(&resolver.Config{
		HostsFile: "-", ServicesFile: "-",
		DNS:      &dnsstub.Config{Nameservers: []netip.AddrPort{server}, Timeout: 5 * time.Second},
		Services: map[string]resolver.Service{"foo": {Port: 8443, TLS: true, SVCB: true}},
	})
	require.NoError(t, err)
	defer r.Close()
	resolve := func(uri string) []string {
		t.Helper()
		eps, err := r.Resolve(hangGuard(t), uri)
		require.NoError(t, err, uri)
		var got []string
		for _, ep := range eps {
			got = append(got, epStr(ep))
		}
		return got
	}
	assert.Equal(t, []string{
		"tls://web.svc.test@tcp://web.svc.test=127.0.0.1:443{1 h2,h3,http/1.1 ech}",
		"tls://web.svc.test@tcp://web.svc.test=[::1]:443{1 h2,h3,http/1.1 ech}",
	}, resolve("https://web.svc.test/"))
	assert.Equal(t, []string{
		"tls://alias.svc.test@tcp://a.svc.test=127.0.0.2:443{1 h2,http/1.1}",
		"tls://alias.svc.test@tcp://b.svc.test=[::3]:8443{2 h3}",
		"tls://alias.svc.test@tcp://alias.svc.test=127.0.0.1:443",
	}, resolve("https://alias.svc.test/"))
	assert.Equal(t, []string{
		"tls://web.svc.test@tcp://web.svc.test=127.0.0.1:9443{1 foo/1}",
		"tls://web.svc.test@tcp://web.svc.test=[::1]:9443{1 foo/1}",
	}, resolve("foo://web.svc.test"))

	// The ECH bytes as published.
	eps, err := r.Resolve(hangGuard(t), "https://web.svc.test/")
	require.NoError(t, err)
	require.IsType(t, endpoint.TLS{}, eps[0])
	assert.Equal(t, []byte{1, 2, 3}, eps[0].(endpoint.TLS).SVC.ECH)
	assert.Zero(t, r.Stats().SVCBRecordsDropped)
}

// TestSVCBKnot: Knot DNS serving HTTPS and SVCB records.
func TestSVCBKnot(t *testing.T) {
	addr := startKnotZone(t, "svc.test", svcbZone...)
	checkSVCBZone(t, addr)
}

// TestSVCBUnbound: unbound serving the same records as local-data.
func TestSVCBUnbound(t *testing.T) {
	path := "/usr/sbin/unbound"
	if _, err := os.Stat(path); err != nil {
		path = testutil.RequirePeer(t, "unbound", "unbound")
	}
	dir := t.TempDir()
	var data strings.Builder
	for _, rr := range svcbZone {
		name, rest, _ := strings.Cut(rr, " ")
		fmt.Fprintf(&data, "    local-data: \"%s.svc.test. 60 IN %s\"\n", name, rest)
	}
	for try := 0; try < 5; try++ {
		port := freePort(t)
		conf := fmt.Sprintf(`server:
    interface: 127.0.0.1@%d
    port: %d
    do-daemonize: no
    use-syslog: no
    logfile: ""
    chroot: ""
    username: ""
    directory: "%s"
    pidfile: ""
    do-not-query-localhost: yes
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    local-zone: "svc.test." static
%s
remote-control:
    control-enable: no
`, port, port, dir, data.String())
		confFile := filepath.Join(dir, "unbound.conf")
		require.NoError(t, os.WriteFile(confFile, []byte(conf), 0o644))
		if out, err := exec.Command(path+"-checkconf", confFile).CombinedOutput(); err != nil {
			t.Fatalf("unbound-checkconf: %v\n%s", err, out)
		}
		p := testutil.StartProcess(t, path, "-d", "-c", confFile)
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		if waitDNS(t, p, addr, "web.svc.test.") {
			checkSVCBZone(t, addr)
			return
		}
	}
	t.Fatal("could not start unbound")
}

// startKnotZone starts knotd serving zone with the records (zone-file
// syntax, relative to the zone, TTL 60) on a free loopback port.
func startKnotZone(t *testing.T, zone string, records ...string) netip.AddrPort {
	t.Helper()
	path := "/usr/sbin/knotd"
	if _, err := os.Stat(path); err != nil {
		path = testutil.RequirePeer(t, "knotd", "knot")
	}
	dir := t.TempDir()
	zoneFile := filepath.Join(dir, zone+".zone")
	body := fmt.Sprintf("$ORIGIN %s.\n$TTL 60\n@ SOA ns admin 1 3600 900 604800 30\n@ NS ns\nns A 127.0.0.1\n%s\n", zone, strings.Join(records, "\n"))
	require.NoError(t, os.WriteFile(zoneFile, []byte(body), 0o644))
	for try := 0; try < 5; try++ {
		port := freePort(t)
		conf := fmt.Sprintf("server:\n    rundir: %q\n    listen: 127.0.0.1@%d\nlog:\n  - target: stderr\n    any: info\ndatabase:\n    storage: %q\nzone:\n  - domain: %s\n    file: %q\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n",
			dir, port, dir, zone, zoneFile)
		confFile := filepath.Join(dir, "knot.conf")
		require.NoError(t, os.WriteFile(confFile, []byte(conf), 0o644))
		p := testutil.StartProcess(t, path, "-c", confFile)
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		if waitDNS(t, p, addr, "ns."+zone+".") {
			return addr
		}
	}
	t.Fatal("could not start knotd")
	return netip.AddrPort{}
}

// waitDNS waits for a server to answer an A query for name; false when
// it exited first (its port taken).
func waitDNS(t *testing.T, p *testutil.Process, addr netip.AddrPort, name string) bool {
	t.Helper()
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-p.Exited():
			t.Logf("server exited: %s", p.Stderr())
			return false
		default:
		}
		if m, _, err := c.Exchange(q, addr.String()); err == nil && len(m.Answer) > 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond) // polling for readiness; decides nothing
	}
	t.Fatalf("server did not answer: %s", p.Stderr())
	return false
}

func freePort(t testing.TB) uint16 {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}
