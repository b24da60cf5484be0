package testutil

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Dnsmasq starts dnsmasq authoritative for *.test on a free loopback
// port, with the given extra options (such as
// "--host-record=web.test,127.0.0.5" or
// "--srv-host=_echo._tcp.web.test,web.test,8080"), and returns its
// address once it answers an A query for probe. It asks no upstream
// server and reads no system file. Local records have a TTL of 60 s
// unless records set --local-ttl (dnsmasq refuses it twice).
func Dnsmasq(t testing.TB, probe string, records ...string) netip.AddrPort {
	t.Helper()
	path := RequirePeer(t, "dnsmasq", "dnsmasq-base")
	for try := 0; try < 5; try++ {
		port := FreeUDPPort(t)
		args := []string{
			"--no-daemon", fmt.Sprintf("--port=%d", port),
			"--listen-address=127.0.0.1", "--bind-interfaces",
			"--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
			"--log-facility=-", "--local=/test/",
		}
		if !slices.ContainsFunc(records, func(r string) bool { return strings.HasPrefix(r, "--local-ttl=") }) {
			args = append(args, "--local-ttl=60")
		}
		args = append(args, records...)
		p := StartProcess(t, path, args...)
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(probe), dns.TypeA)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			select {
			case <-p.Exited():
				t.Logf("dnsmasq exited (port %d taken?): %s", port, p.Stderr())
				goto next
			default:
			}
			if m, _, err := c.Exchange(q, addr.String()); err == nil && len(m.Answer) > 0 {
				return addr
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("dnsmasq did not answer: %s", p.Stderr())
	next:
	}
	t.Fatal("could not start dnsmasq")
	return netip.AddrPort{}
}
