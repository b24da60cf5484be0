package resolver_test

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// scriptDNS is an in-process DNS server on a loopback port (UDP and
// TCP) answering from records the test sets, zone-file lines such as
// "web.test. 60 IN A 127.0.0.1": NODATA (with the SOA of test., minimum
// 30) for a name with records of other types, NXDOMAIN for any other.
// A (name, type) can be held: its queries are answered only once the
// test releases it. A raw answer can replace a name's records (for
// malformed records miekg/dns would not write).
type scriptDNS struct {
	addr netip.AddrPort

	mu      sync.Mutex
	rrs     map[string][]dns.RR // lower-case owner name → records
	raw     map[string]func(req *dns.Msg) []byte
	holds   map[string]chan struct{} // "name TYPE" → closed on release
	asked   map[string]int           // "name TYPE" → queries received
	arrived chan string              // "name TYPE" of each query (never blocks: buffered, dropped when full)
}

func startScriptDNS(t testing.TB, records ...string) *scriptDNS {
	t.Helper()
	s := &scriptDNS{
		rrs: map[string][]dns.RR{}, raw: map[string]func(*dns.Msg) []byte{},
		holds: map[string]chan struct{}{}, asked: map[string]int{}, arrived: make(chan string, 256),
	}
	s.add(t, records...)
	s.addr = testutil.ServeDNS(t, s)
	t.Cleanup(s.releaseAll) // first: no handler stays blocked in a Shutdown
	return s
}

// add adds records in zone-file syntax.
func (s *scriptDNS) add(t testing.TB, records ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range records {
		rr, err := dns.NewRR(line)
		require.NoError(t, err, line)
		k := strings.ToLower(rr.Header().Name)
		s.rrs[k] = append(s.rrs[k], rr)
	}
}

// setRaw makes the server answer queries for name with the bytes f
// returns.
func (s *scriptDNS) setRaw(name string, f func(req *dns.Msg) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw[strings.ToLower(dns.Fqdn(name))] = f
}

// hold holds the answers to (name, qtype) until the returned function is
// called.
func (s *scriptDNS) hold(name string, qtype uint16) (release func()) {
	k := strings.ToLower(dns.Fqdn(name)) + " " + dns.TypeToString[qtype]
	ch := make(chan struct{})
	s.mu.Lock()
	s.holds[k] = ch
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (s *scriptDNS) releaseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ch := range s.holds {
		select {
		case <-ch:
		default:
			close(ch)
		}
		delete(s.holds, k)
	}
}

// count returns how many queries for (name, qtype) arrived.
func (s *scriptDNS) count(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[strings.ToLower(dns.Fqdn(name))+" "+dns.TypeToString[qtype]]
}

// waitQuery waits for a query for (name, qtype) to arrive (hang guard:
// 10 s).
func (s *scriptDNS) waitQuery(t testing.TB, name string, qtype uint16) {
	t.Helper()
	want := strings.ToLower(dns.Fqdn(name)) + " " + dns.TypeToString[qtype]
	guard := time.After(10 * time.Second)
	for s.count(name, qtype) == 0 {
		select {
		case <-s.arrived:
		case <-guard:
			t.Fatalf("no query for %s", want)
		}
	}
}

func (s *scriptDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	k := name + " " + dns.TypeToString[q.Qtype]
	s.mu.Lock()
	s.asked[k]++
	hold := s.holds[k]
	raw := s.raw[name]
	rrs := s.rrs[name]
	s.mu.Unlock()
	select {
	case s.arrived <- k:
	default:
	}
	if hold != nil {
		<-hold
	}
	if raw != nil {
		w.Write(raw(req))
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if len(m.Answer) == 0 {
		if len(rrs) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		soa, _ := dns.NewRR("test. 3600 IN SOA ns.test. admin.test. 1 3600 600 86400 30")
		m.Ns = append(m.Ns, soa)
	}
	w.WriteMsg(m)
}

// newScriptResolver returns a resolver whose DNS stub asks s, timed by
// clk (nil: real time), configure applied to its Config.
func newScriptResolver(t testing.TB, s *scriptDNS, clk *fakeClock, configure func(*resolver.Config)) *resolver.URIResolver {
	t.Helper()
	cfg := &resolver.Config{
		HostsFile: "-", ServicesFile: "-",
		DNS: &dnsstub.Config{Nameservers: []netip.AddrPort{s.addr}, Timeout: time.Minute, Attempts: 1},
	}
	if clk != nil {
		cfg.Clock = clk
	}
	if configure != nil {
		configure(cfg)
	}
	r, err := resolver.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r
}

// streamRun is a ResolveStream call on its own goroutine, its batches on
// a channel.
type streamRun struct {
	batches chan resolver.Batch
	done    chan struct{}
	err     error
}

// stream starts r.ResolveStream(ctx, uri) on its own goroutine.
func stream(t testing.TB, r resolver.Streamer, uri string) *streamRun {
	t.Helper()
	return streamCtx(t, hangGuard(t), r, uri)
}

func streamCtx(t testing.TB, ctx context.Context, r resolver.Streamer, uri string) *streamRun {
	run := &streamRun{batches: make(chan resolver.Batch, 64), done: make(chan struct{})}
	go func() {
		defer close(run.done)
		run.err = r.ResolveStream(ctx, uri, func(b resolver.Batch) { run.batches <- b })
	}()
	t.Cleanup(func() { <-run.done })
	return run
}

// next returns the next batch (hang guard: 10 s).
func (run *streamRun) next(t testing.TB) resolver.Batch {
	t.Helper()
	select {
	case b := <-run.batches:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no batch")
		return resolver.Batch{}
	}
}

// wait waits for ResolveStream to return and returns the batches not yet
// taken.
func (run *streamRun) wait(t testing.TB) []resolver.Batch {
	t.Helper()
	select {
	case <-run.done:
	case <-time.After(10 * time.Second):
		t.Fatal("ResolveStream did not return")
	}
	var rest []resolver.Batch
	for {
		select {
		case b := <-run.batches:
			rest = append(rest, b)
		default:
			return rest
		}
	}
}

// returned reports whether ResolveStream has returned.
func (run *streamRun) returned() bool {
	select {
	case <-run.done:
		return true
	default:
		return false
	}
}

// batchStr is a batch in short form: "group[+replaces]: endpoints".
func batchStr(b resolver.Batch) string {
	var sb strings.Builder
	sb.WriteString(itoa(b.Group))
	if b.Replaces {
		sb.WriteString(" replaces")
	}
	sb.WriteString(":")
	for _, ep := range b.Endpoints {
		sb.WriteString(" " + epStr(ep))
	}
	return sb.String()
}

// epStr is an endpoint's string, with its SVC params when it has them.
func epStr(ep endpoint.Endpoint) string {
	s := ep.String()
	if t, ok := ep.(endpoint.TLS); ok && t.SVC != nil {
		s += "{" + itoa(int(t.SVC.Priority)) + " " + strings.Join(t.SVC.ALPN, ",")
		if t.SVC.Hint {
			s += " hint"
		}
		if len(t.SVC.ECH) > 0 {
			s += " ech"
		}
		s += "}"
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
