package resolver_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// aaaaDelay is how late the benchmark's server answers AAAA queries.
const aaaaDelay = 20 * time.Millisecond

// BenchmarkFirstAddress: the time from asking a host name to the first
// usable address, with a server that answers A at once and AAAA
// aaaaDelay late, no cache. Ours is ResolveStream's first batch; the
// peer is net.Resolver (pure Go, asking the same server), whose
// LookupNetIP waits for both answers. Compare with
//
//	go test -run '^$' -bench FirstAddress -count 5 ./resolver | go run ./internal/benchratio
func BenchmarkFirstAddress(b *testing.B) {
	z := startScriptDNS(b, "web.test. 60 IN A 127.0.0.1", "web.test. 60 IN AAAA ::1")
	z.setRaw("web.test", func(req *dns.Msg) []byte {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		switch q.Qtype {
		case dns.TypeA:
			rr, _ := dns.NewRR("web.test. 60 IN A 127.0.0.1")
			m.Answer = append(m.Answer, rr)
		case dns.TypeAAAA:
			time.Sleep(aaaaDelay) // the server's delay (a benchmark, no assertion)
			rr, _ := dns.NewRR("web.test. 60 IN AAAA ::1")
			m.Answer = append(m.Answer, rr)
		}
		out, _ := m.Pack()
		return out
	})
	b.Run("ours", func(b *testing.B) {
		r, err := resolver.New(&resolver.Config{HostsFile: "-", ServicesFile: "-",
			DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{z.addr}, Cache: dnsstub.CacheConfig{MaxEntries: -1}}})
		require.NoError(b, err)
		defer r.Close()
		for b.Loop() {
			ctx, cancel := context.WithCancel(context.Background())
			got := make(chan struct{}, 1)
			done := make(chan error, 1)
			go func() {
				done <- r.ResolveStream(ctx, "tcp://web.test:80", func(resolver.Batch) {
					select {
					case got <- struct{}{}:
					default:
					}
				})
			}()
			<-got
			b.StopTimer()
			cancel()
			<-done
			b.StartTimer()
		}
	})
	b.Run("net.Resolver", func(b *testing.B) {
		var d net.Dialer
		nr := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, z.addr.String())
		}}
		for b.Loop() {
			addrs, err := nr.LookupNetIP(context.Background(), "ip", "web.test")
			if err != nil || len(addrs) == 0 {
				b.Fatal(err)
			}
		}
	})
}
