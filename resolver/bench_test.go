package resolver_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// dnsServer is an in-process UDP DNS server: every name has the A record
// 192.0.2.1 and the AAAA record 2001:db8::1, with TTL ttl.
type dnsServer struct {
	addr    netip.AddrPort
	queries atomic.Int64
	ttl     uint32
}

func startDNS(tb testing.TB, ttl uint32) *dnsServer {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(tb, err)
	s := &dnsServer{addr: netip.MustParseAddrPort(pc.LocalAddr().String()), ttl: ttl}
	srv := &dns.Server{PacketConn: pc, Handler: s}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.ActivateAndServe()
	}()
	<-started
	tb.Cleanup(func() { srv.Shutdown(); wg.Wait() })
	return s
}

func (s *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: s.ttl}
	switch q.Qtype {
	case dns.TypeA:
		m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.IPv4(192, 0, 2, 1)}}
	case dns.TypeAAAA:
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("2001:db8::1")}}
	}
	w.WriteMsg(m)
}

// newDNSResolver returns a resolver whose DNS stub asks srv, with
// configure applied to the stub's Config.
func newDNSResolver(tb testing.TB, srv *dnsServer, configure func(*dnsstub.Config)) *resolver.URIResolver {
	tb.Helper()
	dcfg := &dnsstub.Config{Nameservers: []netip.AddrPort{srv.addr}}
	if configure != nil {
		configure(dcfg)
	}
	r, err := resolver.New(&resolver.Config{HostsFile: "-", DNS: dcfg})
	require.NoError(tb, err)
	tb.Cleanup(func() { r.Close() })
	return r
}

// BenchmarkResolve measures URIResolver.Resolve with its DNS stub against
// an in-process server: a cached name, an IP literal, and an uncached
// name (both caches off), the last beside Go's net.Resolver (PreferGo)
// doing the same work (split, look up, build endpoints) against the same
// server.
func BenchmarkResolve(b *testing.B) {
	srv := startDNS(b, 300)
	ctx := context.Background()
	run := func(b *testing.B, resolve func() ([]endpoint.Endpoint, error)) {
		b.ReportAllocs()
		for b.Loop() {
			eps, err := resolve()
			if err != nil || len(eps) == 0 {
				b.Fatal(eps, err)
			}
		}
	}
	b.Run("cached/URIResolver", func(b *testing.B) {
		r := newDNSResolver(b, srv, nil)
		run(b, func() ([]endpoint.Endpoint, error) { return r.Resolve(ctx, "tcp://cached.name:80") })
	})
	b.Run("ip-literal/URIResolver", func(b *testing.B) {
		r := newDNSResolver(b, srv, nil)
		run(b, func() ([]endpoint.Endpoint, error) { return r.Resolve(ctx, "tcp://192.0.2.1:80") })
	})
	b.Run("uncached/URIResolver", func(b *testing.B) {
		r := newDNSResolver(b, srv, func(c *dnsstub.Config) { c.Cache.MaxEntries = -1 })
		run(b, func() ([]endpoint.Endpoint, error) { return r.Resolve(ctx, "tcp://uncached.name:80") })
	})
	b.Run("uncached/net.Resolver", func(b *testing.B) {
		server := srv.addr.String()
		goRes := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
		run(b, func() ([]endpoint.Endpoint, error) {
			host, port, err := net.SplitHostPort("uncached.name:80")
			if err != nil {
				return nil, err
			}
			p, err := strconv.ParseUint(port, 10, 16)
			if err != nil {
				return nil, err
			}
			addrs, err := goRes.LookupNetIP(ctx, "ip", host+".")
			if err != nil {
				return nil, err
			}
			eps := make([]endpoint.Endpoint, len(addrs))
			for i, a := range addrs {
				eps[i] = endpoint.TCP{Host: host, Addr: netip.AddrPortFrom(a.Unmap(), uint16(p))}
			}
			return eps, nil
		})
	})
}
