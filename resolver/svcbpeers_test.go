package resolver_test

import (
	"fmt"
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
	addr := testutil.Knot(t, "svc.test", 60, svcbZone...)
	checkSVCBZone(t, addr)
}

// TestSVCBUnbound: unbound serving the same records as local-data.
func TestSVCBUnbound(t *testing.T) {
	path := testutil.RequirePeer(t, "unbound", "unbound")
	dir := t.TempDir()
	var data strings.Builder
	for _, rr := range svcbZone {
		name, rest, _ := strings.Cut(rr, " ")
		fmt.Fprintf(&data, "    local-data: \"%s.svc.test. 60 IN %s\"\n", name, rest)
	}
	for try := 0; try < 5; try++ {
		port := testutil.FreeUDPPort(t)
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
		if testutil.WaitDNS(t, p, addr, "web.svc.test.", dns.TypeA) {
			checkSVCBZone(t, addr)
			return
		}
	}
	t.Fatal("could not start unbound")
}
