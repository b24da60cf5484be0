package dnsstub

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// fastServer is a UDP DNS server for benchmarks that answers from
// prebuilt responses, patching in the ID, so that its cost per query is
// two system calls and a map lookup, the same for every client. Names
// under bench.test. have web.test.'s addresses; others are answered from
// zone.
type fastServer struct {
	addr netip.AddrPort
	mu   sync.RWMutex
	resp map[string][]byte // by question section (name, type, class)
}

func startFastServer(tb testing.TB) *fastServer {
	tb.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(tb, err)
	f := &fastServer{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort(), resp: map[string][]byte{}}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.serve(pc)
		}()
	}
	tb.Cleanup(func() { pc.Close(); wg.Wait() })
	return f
}

func (f *fastServer) serve(pc *net.UDPConn) {
	buf := make([]byte, 1500)
	out := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if strings.Contains(err.Error(), "closed") {
				return
			}
			continue
		}
		b := buf[:n]
		if n < 12 || b[2]&0x80 != 0 {
			continue
		}
		// The question: labels up to the root, then type and class.
		i := 12
		for i < n && b[i] != 0 {
			i += 1 + int(b[i])
		}
		if i+5 > n {
			continue
		}
		q := b[12 : i+5]
		f.mu.RLock()
		r, ok := f.resp[string(q)]
		f.mu.RUnlock()
		if !ok {
			if r, ok = f.build(b); !ok {
				continue
			}
		}
		out = append(out[:0], r...)
		out[0], out[1] = b[0], b[1]
		pc.WriteToUDPAddrPort(out, from)
	}
}

// build makes and stores the response to query b.
func (f *fastServer) build(b []byte) ([]byte, bool) {
	m := new(dns.Msg)
	if m.Unpack(b) != nil || len(m.Question) != 1 {
		return nil, false
	}
	m.Extra = nil // no EDNS0 in the answer
	q := m.Question[0]
	var r *dns.Msg
	if name := strings.ToLower(q.Name); strings.HasSuffix(name, ".bench.test.") {
		r = new(dns.Msg)
		r.SetReply(m)
		switch q.Qtype {
		case dns.TypeA:
			r.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 5)}}
		case dns.TypeAAAA:
			r.Answer = []dns.RR{&dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 300}, AAAA: net.ParseIP("2001:db8::5")}}
		}
	} else {
		r = zoneReply(m)
	}
	packed, err := r.Pack()
	if err != nil {
		return nil, false
	}
	i := 12
	for b[i] != 0 {
		i += 1 + int(b[i])
	}
	f.mu.Lock()
	f.resp[string(b[12:i+5])] = packed
	f.mu.Unlock()
	return packed, true
}

// BenchmarkLookupHost compares the stub with Go's net.Resolver (PreferGo,
// dialing the same in-process server) on A and AAAA lookups, as sibling
// sub-benchmarks. The net.Resolver has no cache, so it has only the
// uncached cases; the stub's uncached cases disable its cache
// (MaxEntries -1), so that every lookup asks the server. The -parallel32
// cases run 32 goroutines per GOMAXPROCS (b.SetParallelism(32)), each
// asking for a name of its own (gN.bench.test.), so that neither
// resolver can share a query in flight between callers.
func BenchmarkLookupHost(b *testing.B) {
	srv := startFastServer(b)
	ctx := context.Background()
	stub := func(b *testing.B, cache bool) *Stub {
		cfg := &Config{}
		cfg.Nameservers = append(cfg.Nameservers, srv.addr)
		if !cache {
			cfg.Cache.MaxEntries = -1
		}
		s, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	server := srv.addr.String()
	goRes := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
	// run calls lookup(name) b.N times, from one goroutine or in parallel.
	run := func(b *testing.B, parallel bool, lookup func(name string) ([]netip.Addr, error)) {
		b.ReportAllocs()
		check := func(addrs []netip.Addr, err error) bool {
			if err == nil && len(addrs) != 2 {
				b.Errorf("got %v", addrs)
				return false
			}
			if err != nil {
				b.Error(err)
				return false
			}
			return true
		}
		if !parallel {
			for b.Loop() {
				if !check(lookup("web.test.")) {
					return
				}
			}
			return
		}
		var id atomic.Int64
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			name := "g" + strconv.FormatInt(id.Add(1), 10) + ".bench.test."
			for pb.Next() {
				if !check(lookup(name)) {
					return
				}
			}
		})
	}
	for _, parallel := range []bool{false, true} {
		suffix := ""
		if parallel {
			suffix = "-parallel32"
		}
		b.Run("cached"+suffix+"/dnsstub", func(b *testing.B) {
			s := stub(b, true)
			run(b, parallel, func(name string) ([]netip.Addr, error) { return s.LookupHost(ctx, name) })
		})
		b.Run("uncached"+suffix+"/dnsstub", func(b *testing.B) {
			s := stub(b, false)
			run(b, parallel, func(name string) ([]netip.Addr, error) { return s.LookupHost(ctx, name) })
		})
		b.Run("uncached"+suffix+"/net.Resolver", func(b *testing.B) {
			run(b, parallel, func(name string) ([]netip.Addr, error) { return goRes.LookupNetIP(ctx, "ip", name) })
		})
	}
}
