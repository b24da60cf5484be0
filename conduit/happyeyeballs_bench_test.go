package conduit

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// aaaaDelay is how long the benchmark's DNS server holds its AAAA
// answers.
const aaaaDelay = time.Second

// delayedAAAAServer is a DNS server on 127.0.0.1 (UDP and TCP, one port)
// for one name: its A query is answered with 127.0.0.1, its AAAA query
// with ::1, both with TTL 0 (nothing may be cached), each when the
// channel hold returns for its type is ready (nil: at once); other names
// get NXDOMAIN.
type delayedAAAAServer struct {
	name     string // FQDN
	addr     netip.AddrPort
	hold     func(qtype uint16) <-chan struct{}
	aQueries atomic.Int64
	mu       sync.Mutex
	stopped  bool           // under mu: no handler may hold an answer
	stop     chan struct{}  // closed with stopped set
	wg       sync.WaitGroup // the handlers holding an answer
}

// holdAAAA holds every AAAA answer for aaaaDelay.
func holdAAAA(qtype uint16) <-chan struct{} {
	if qtype != dns.TypeAAAA {
		return nil
	}
	ch := make(chan struct{})
	time.AfterFunc(aaaaDelay, func() { close(ch) })
	return ch
}

func startDelayedAAAAServer(tb testing.TB, name string, hold func(qtype uint16) <-chan struct{}) *delayedAAAAServer {
	s := &delayedAAAAServer{name: dns.Fqdn(name), hold: hold, stop: make(chan struct{})}
	s.addr = testutil.ServeDNS(tb, dns.HandlerFunc(s.serve))
	tb.Cleanup(func() { // before the servers' Shutdown: the answers held are dropped
		s.mu.Lock()
		s.stopped = true
		close(s.stop)
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *delayedAAAAServer) serve(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	if len(q.Question) != 1 || q.Question[0].Name != s.name {
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	}
	qtype := q.Question[0].Qtype
	if qtype == dns.TypeA {
		s.aQueries.Add(1)
	}
	if ch := s.hold(qtype); ch != nil {
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		select {
		case <-ch:
		case <-s.stop:
			return
		}
	}
	hdr := dns.RR_Header{Name: s.name, Class: dns.ClassINET, Ttl: 0}
	switch qtype {
	case dns.TypeA:
		hdr.Rrtype = dns.TypeA
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
	case dns.TypeAAAA:
		hdr.Rrtype = dns.TypeAAAA
		m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IPv6loopback})
	}
	w.WriteMsg(m)
}

// dualLoopbackListeners listens on one port of both 127.0.0.1 and ::1,
// closing every connection accepted, until the benchmark ends; it returns
// the port.
func dualLoopbackListeners(tb testing.TB) int {
	for range 20 {
		l4, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l4.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp6", "[::1]:"+strconv.Itoa(port))
		if err != nil {
			l4.Close() // the port is taken on ::1: another
			continue
		}
		var wg sync.WaitGroup
		for _, l := range []net.Listener{l4, l6} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		tb.Cleanup(func() { l4.Close(); l6.Close(); wg.Wait() })
		return port
	}
	tb.Skip("no port free on both 127.0.0.1 and ::1")
	return 0
}

// BenchmarkDialDelayedAAAA is the time to an established flow to a name
// whose AAAA answer comes aaaaDelay after its A answer (RFC 8305 §3):
// conduit starts on the A answer after the resolution delay (50 ms),
// net.Dialer waits for both answers. Each op resolves again (TTL 0, no
// cache) and dials a loopback listener, on 127.0.0.1 and ::1.
func BenchmarkDialDelayedAAAA(b *testing.B) {
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		b.Skip("no IPv6 loopback")
	} else {
		l.Close()
	}
	const name = "delayed-aaaa.test"
	ctx := context.Background()
	b.Run("conduit", func(b *testing.B) {
		srv := startDelayedAAAAServer(b, name, holdAAAA)
		port := dualLoopbackListeners(b)
		c := New(&Config{Resolver: dnsResolver(b, srv.addr, 5*time.Second)})
		defer c.Close()
		uri := "tcp://" + name + ":" + strconv.Itoa(port)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f, err := c.Dial(ctx, uri)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		b.StopTimer()
		if q := srv.aQueries.Load(); q < int64(b.N) {
			b.Fatalf("%d A queries for %d dials: an answer was cached", q, b.N)
		}
	})
	b.Run("netdialer", func(b *testing.B) {
		srv := startDelayedAAAAServer(b, name, holdAAAA)
		port := dualLoopbackListeners(b)
		d := net.Dialer{Resolver: &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var nd net.Dialer
				return nd.DialContext(ctx, network, srv.addr.String())
			},
		}}
		addr := net.JoinHostPort(name, strconv.Itoa(port))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		b.StopTimer()
		if q := srv.aQueries.Load(); q < int64(b.N) {
			b.Fatalf("%d A queries for %d dials: an answer was cached", q, b.N)
		}
	})
}

// dnsResolver is a resolver asking only the DNS server at addr, waiting
// up to timeout for each answer, without hosts or services files and
// without a cache, closed when the test ends.
func dnsResolver(tb testing.TB, addr netip.AddrPort, timeout time.Duration) *resolver.URIResolver {
	res, err := resolver.New(&resolver.Config{
		HostsFile:    "-",
		ServicesFile: "-",
		DNS: &dnsstub.Config{
			Nameservers: []netip.AddrPort{addr},
			Timeout:     timeout,
			Attempts:    1,
			Cache:       dnsstub.CacheConfig{MaxEntries: -1},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { res.Close() })
	return res
}
