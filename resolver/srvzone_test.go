package resolver_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/miekg/dns"
)

// srvZone is an in-process DNS server (UDP and TCP on one loopback port)
// serving one SRV set, counting what it is asked:
//
//   - the SRV records of its name (truncated over UDP when they do not fit
//     the client's EDNS0 size, as a real server does, so the client retries
//     over TCP);
//   - one A record per target that has an address, NODATA for its AAAA;
//   - NXDOMAIN for any other name (negative answers with the zone's SOA,
//     whose minimum is the TTL, RFC 2308);
//   - no response at all, ever, to a query for a name in hang.
//
// With a gate (holdUntil), address queries are held unanswered until
// enough of them are outstanding at once, which makes the largest number
// of concurrent outstanding queries a deterministic count.
type srvZone struct {
	addr netip.AddrPort

	name    string              // the SRV owner, lower case, fully qualified
	srvs    []dns.RR            // its records
	addrs   map[string]net.IP   // target → its A record
	targets map[string]struct{} // every target
	hang    map[string]struct{} // names never answered
	ttl     uint32              // TTL of every record

	mu       sync.Mutex
	cond     *sync.Cond
	queries  map[string]int // "name TYPE" → queries received
	total    int            // every query received (UDP and TCP)
	srvQ     int            // SRV queries received
	addrQ    int            // A and AAAA queries received, but for hang
	hungQ    int            // queries for the names in hang
	inFlight int            // address queries received and not yet answered
	maxIn    int            // the largest inFlight seen
	gate     int            // > 0: hold address queries until gate (or expect) are held
	expect   int            // address queries still expected (with a gate)
	held     int            // address queries held in the current batch
	gen      int            // incremented when the held queries are released
	closed   bool
	changed  chan struct{} // signalled (without blocking) on each query
	delay    time.Duration // before each answer (benchmarks: a server's RTT)
}

// srvTarget is one SRV record of a zone: its target (relative to the
// zone, "t1" for "t1.<zone>") and whether it has an address.
type srvTarget struct {
	host         string
	prio, weight uint16
	port         uint16
	noAddr       bool // NODATA for its A and AAAA
	nxdomain     bool // NXDOMAIN: the name does not exist
	hangIt       bool // never answered
}

// startSRVZone serves the SRV set of name ("_x._tcp.big.test") with the
// given targets, each under name's parent domain, the n-th target with
// the address 127.1.X.Y. TTL is ttl seconds.
func startSRVZone(t testing.TB, name string, ttl uint32, targets []srvTarget) *srvZone {
	t.Helper()
	z := &srvZone{
		name:    dns.CanonicalName(name),
		addrs:   map[string]net.IP{},
		targets: map[string]struct{}{},
		hang:    map[string]struct{}{},
		ttl:     ttl,
		queries: map[string]int{},
		changed: make(chan struct{}, 1),
	}
	z.cond = sync.NewCond(&z.mu)
	for i, tg := range targets {
		fq := z.target(tg.host)
		z.srvs = append(z.srvs, &dns.SRV{
			Hdr:    dns.RR_Header{Name: z.name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
			Target: fq, Port: tg.port, Priority: tg.prio, Weight: tg.weight,
		})
		if tg.nxdomain {
			continue
		}
		z.targets[fq] = struct{}{}
		if tg.hangIt {
			z.hang[fq] = struct{}{}
		}
		if !tg.noAddr {
			z.addrs[fq] = net.IPv4(127, 1, byte(i>>8), byte(i))
		}
	}

	z.addr = testutil.ServeDNS(t, z)
	t.Cleanup(func() { // release held handlers, so that Shutdown can end
		z.mu.Lock()
		z.closed = true
		z.cond.Broadcast()
		z.mu.Unlock()
	})
	return z
}

// target returns the fully qualified name of a target host.
func (z *srvZone) target(host string) string {
	_, parent, _ := strings.Cut(z.name, "._tcp.")
	return dns.CanonicalName(host + "." + parent)
}

// holdUntil installs the gate: address queries are held until gate of
// them are outstanding at once, or all the expect still to come.
func (z *srvZone) holdUntil(gate, expect int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.gate, z.expect = gate, expect
}

// setDelay makes the server wait d before each answer.
func (z *srvZone) setDelay(d time.Duration) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.delay = d
}

// count returns the queries received for name ("t1", relative to the
// zone, or the SRV name) of type qtype.
func (z *srvZone) count(host string, qtype uint16) int {
	name := z.target(host)
	if dns.CanonicalName(host) == z.name {
		name = z.name
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.queries[name+" "+dns.TypeToString[qtype]]
}

// stats returns the counters: every query, SRV queries, address queries
// answered, and the most of those outstanding at once.
func (z *srvZone) stats() (total, srv, addr, maxInFlight int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.total, z.srvQ, z.addrQ, z.maxIn
}

// waitFor waits until cond (called with z.mu held) is true, checking it
// after each query; it fails the test after a minute (a hang guard).
func (z *srvZone) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	guard := time.After(time.Minute)
	for {
		z.mu.Lock()
		ok := cond()
		z.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-z.changed:
		case <-guard:
			t.Fatalf("the server never saw %s: %s", what, z)
		}
	}
}

// countLocked is count with z.mu held.
func (z *srvZone) countLocked(host string, qtype uint16) int {
	return z.queries[z.target(host)+" "+dns.TypeToString[qtype]]
}

// hung returns the queries received for the names in hang.
func (z *srvZone) hung() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.hungQ
}

func (z *srvZone) String() string {
	total, srv, addr, maxIn := z.stats()
	return fmt.Sprintf("%d queries (%d SRV, %d A/AAAA answered, %d unanswered), at most %d A/AAAA outstanding",
		total, srv, addr, z.hung(), maxIn)
}

func (z *srvZone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	name := dns.CanonicalName(q.Name)
	z.mu.Lock()
	z.total++
	z.queries[name+" "+dns.TypeToString[q.Qtype]]++
	select {
	case z.changed <- struct{}{}:
	default:
	}
	if _, ok := z.hang[name]; ok {
		z.hungQ++
		z.mu.Unlock()
		return // never answered
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.Compress = true
	switch {
	case name == z.name && q.Qtype == dns.TypeSRV:
		z.srvQ++
		m.Answer = append([]dns.RR(nil), z.srvs...)
	case q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA:
		z.addrQ++
		z.inFlight++
		z.maxIn = max(z.maxIn, z.inFlight)
		if z.gate > 0 {
			// A batch is released at once, when complete: a client
			// with k lookups in flight has k held then, and each next
			// query comes after an answer, so inFlight counts exactly
			// the queries the client has outstanding.
			z.held++
			if z.held >= min(z.gate, z.expect) {
				z.expect -= z.held
				z.held = 0
				z.gen++
				z.cond.Broadcast()
			} else {
				for gen := z.gen; gen == z.gen && !z.closed; {
					z.cond.Wait()
				}
			}
		}
		z.inFlight-- // before the answer is written
		ip, ok := z.addrs[name]
		_, isTarget := z.targets[name]
		switch {
		case !isTarget && name != z.name:
			m.Rcode = dns.RcodeNameError
		case ok && q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: z.ttl}, A: ip}}
		}
	default:
		if name != z.name {
			m.Rcode = dns.RcodeNameError
		}
	}
	delay := z.delay
	z.mu.Unlock()
	if len(m.Answer) == 0 { // NODATA or NXDOMAIN: the SOA gives the negative TTL (RFC 2308)
		_, apex, _ := strings.Cut(z.name, "._tcp.")
		m.Ns = []dns.RR{&dns.SOA{
			Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.ttl},
			Ns:  "ns." + apex, Mbox: "hostmaster." + apex, Serial: 1,
			Refresh: 3600, Retry: 600, Expire: 86400, Minttl: z.ttl,
		}}
	}
	if delay > 0 {
		time.Sleep(delay) // a benchmark's simulated RTT, not a test's timing
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}
