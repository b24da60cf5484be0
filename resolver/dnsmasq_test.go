package resolver_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// dnsmasqPath finds dnsmasq, also in /usr/sbin (often not in PATH), or
// skips (fails with CONDUIT_REQUIRE_PEERS=1).
func dnsmasqPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("dnsmasq"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/dnsmasq"); err == nil {
		return "/usr/sbin/dnsmasq"
	}
	return testutil.RequirePeer(t, "dnsmasq", "dnsmasq-base")
}

// startDnsmasq starts dnsmasq on a free loopback port with a small zone
// and returns its address once it answers.
func startDnsmasq(t *testing.T) netip.AddrPort {
	t.Helper()
	path := dnsmasqPath(t)
	for try := 0; try < 5; try++ {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		p := testutil.StartProcess(t, path,
			"--no-daemon", fmt.Sprintf("--port=%d", port),
			"--listen-address=127.0.0.1", "--bind-interfaces",
			"--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
			"--log-facility=-", "--local=/test/", "--local-ttl=60",
			"--host-record=web.test,127.0.0.5", "--host-record=web.test,::5",
			"--host-record=web2.test,127.0.0.6",
			"--srv-host=_http._tcp.svc.test,web.test,8080,10,5",
			"--srv-host=_http._tcp.svc.test,web2.test,8081,20,5",
			"--srv-host=_https._tcp.svc.test,web.test,8443,1,1",
			"--cname=alias.test,web.test",
		)
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		q := new(dns.Msg)
		q.SetQuestion("web.test.", dns.TypeA)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
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

func TestDnsmasq(t *testing.T) {
	addr := startDnsmasq(t)
	stub, err := dnsstub.New(&dnsstub.Config{Nameservers: []netip.AddrPort{addr}, Timeout: time.Second})
	require.NoError(t, err)
	defer stub.Close()
	ctx := context.Background()

	t.Run("A and AAAA", func(t *testing.T) {
		got, ttl, err := stub.LookupHostTTL(ctx, "web.test")
		require.NoError(t, err)
		assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("::5")}, got)
		assert.InDelta(t, 60*time.Second, ttl, float64(2*time.Second), "--local-ttl=60")
	})
	t.Run("CNAME", func(t *testing.T) {
		got, err := stub.LookupHost(ctx, "alias.test")
		require.NoError(t, err)
		assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("::5")}, got)
	})
	t.Run("SRV", func(t *testing.T) {
		got, err := stub.LookupSRV(ctx, "_http._tcp.svc.test")
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.ElementsMatch(t, []string{"web.test.", "web2.test."}, []string{got[0].Target, got[1].Target})
	})
	t.Run("NXDOMAIN", func(t *testing.T) {
		_, err := stub.LookupHost(ctx, "nope.test")
		require.ErrorIs(t, err, dnsstub.ErrNXDomain)
		require.ErrorIs(t, err, dnsstub.ErrNotFound)
	})

	t.Run("resolver", func(t *testing.T) {
		r, err := resolver.New(&resolver.Config{HostsFile: "-", DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{addr}, Timeout: time.Second}})
		require.NoError(t, err)
		defer r.Close()
		for _, tc := range []struct {
			uri  string
			want []string
		}{
			{"https+srv://svc.test", []string{
				"tls://svc.test@tcp://web.test=127.0.0.5:8443", "tls://svc.test@tcp://web.test=[::5]:8443"}},
			{"srv://_http._tcp.svc.test", []string{
				"tcp://web.test=127.0.0.5:8080", "tcp://web.test=[::5]:8080", "tcp://web2.test=127.0.0.6:8081"}},
			{"http+srv://web.test", []string{"tcp://web.test=127.0.0.5:80", "tcp://web.test=[::5]:80"}},
			{"tcp://alias.test:1", []string{"tcp://alias.test=127.0.0.5:1", "tcp://alias.test=[::5]:1"}},
		} {
			eps, err := r.Resolve(ctx, tc.uri)
			require.NoError(t, err, tc.uri)
			assert.Equal(t, tc.want, strs(eps), tc.uri)
		}
		_, err = r.Resolve(ctx, "tcp://nope.test:1")
		assert.ErrorIs(t, err, resolver.ErrNotFound)
		t.Log(err)

		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := r.Watch(wctx, "https+srv://svc.test")
		require.NoError(t, err)
		u := <-ch
		require.NoError(t, u.Err)
		assert.Len(t, u.Endpoints, 2)
	})
}
