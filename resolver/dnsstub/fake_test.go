package dnsstub

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/internal/testutil"
)

// fakeServer is an in-process DNS server on 127.0.0.1, UDP and TCP on the
// same port, answering with a handler the test chooses.
type fakeServer struct {
	addr    netip.AddrPort
	queries atomic.Int64 // UDP and TCP queries received
	tcp     atomic.Int64 // TCP queries received

	mu      sync.Mutex
	handler func(w dns.ResponseWriter, r *dns.Msg)
}

// setHandler replaces the handler.
func (f *fakeServer) setHandler(h func(w dns.ResponseWriter, r *dns.Msg)) {
	f.mu.Lock()
	f.handler = h
	f.mu.Unlock()
}

func (f *fakeServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	f.queries.Add(1)
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		f.tcp.Add(1)
	}
	f.mu.Lock()
	h := f.handler
	f.mu.Unlock()
	h(w, r)
}

// startFake starts a fake server serving zone (see zoneHandler) unless h
// is given, and stops it when the test ends.
func startFake(t testing.TB, h func(w dns.ResponseWriter, r *dns.Msg)) *fakeServer {
	t.Helper()
	f := &fakeServer{handler: h}
	f.addr = testutil.ServeDNS(t, f)
	return f
}

// zone is a small zone for the fake server.
var zone = map[string]string{
	"web.test.":    "web.test. 300 IN A 192.0.2.5\nweb.test. 300 IN AAAA 2001:db8::5",
	"short.test.":  "short.test. 10 IN A 192.0.2.6",
	"alias.test.":  "alias.test. 60 IN CNAME web.test.",
	"alias2.test.": "alias2.test. 60 IN CNAME alias.test.",
	"loop1.test.":  "loop1.test. 60 IN CNAME loop2.test.",
	"loop2.test.":  "loop2.test. 60 IN CNAME loop1.test.",
	"v4only.test.": "v4only.test. 300 IN A 192.0.2.7",
	"_http._tcp.svc.test.": "_http._tcp.svc.test. 120 IN SRV 10 5 8080 web.test.\n" +
		"_http._tcp.svc.test. 120 IN SRV 20 0 8081 v4only.test.",
	"web.corp.example.": "web.corp.example. 300 IN A 192.0.2.8",
}

// zoneHandler answers from zone, following CNAMEs inside it as a
// recursive server does; other names are NXDOMAIN with a SOA (minimum 30).
func zoneHandler(w dns.ResponseWriter, r *dns.Msg) {
	w.WriteMsg(zoneReply(r))
}

// zoneReply is zoneHandler's answer to r.
func zoneReply(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	for hops := 0; hops < 20; hops++ {
		text, ok := zone[name]
		if !ok {
			if hops == 0 {
				m.Rcode = dns.RcodeNameError
			}
			break
		}
		next := ""
		for _, line := range strings.Split(text, "\n") {
			rr, err := dns.NewRR(line)
			if err != nil {
				panic(err)
			}
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				m.Answer = append(m.Answer, rr)
				next = c.Target
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	if len(m.Answer) == 0 || m.Rcode == dns.RcodeNameError {
		soa, _ := dns.NewRR("test. 3600 IN SOA ns.test. admin.test. 1 3600 600 86400 30")
		m.Ns = append(m.Ns, soa)
	}
	return m
}

// newClock returns a clock the test advances.
func newClock() *clock.Manual { return clock.NewManual(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) }

// newStub returns a Stub asking servers, with a short timeout and the
// fake clock, closed when the test ends.
func newStub(t testing.TB, clk *clock.Manual, servers ...*fakeServer) *Stub {
	t.Helper()
	cfg := &Config{Timeout: 300 * time.Millisecond, Attempts: 1}
	if clk != nil {
		cfg.Clock = clk
	}
	for _, s := range servers {
		cfg.Nameservers = append(cfg.Nameservers, s.addr)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}
