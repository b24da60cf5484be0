package dnsstub

import (
	"context"
	"net"
	"testing"
)

// BenchmarkLookupHost compares the stub with Go's net.Resolver (PreferGo,
// dialing the same in-process server) on web.test (A and AAAA). The
// net.Resolver has no cache, so it has only an uncached case; the stub's
// uncached case disables its cache. The -parallel32 cases run 32
// goroutines per GOMAXPROCS (b.SetParallelism(32)).
func BenchmarkLookupHost(b *testing.B) {
	srv := startFake(b, zoneHandler)
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
	goRes := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.addr.String())
	}}
	run := func(b *testing.B, parallel bool, f func() error) {
		b.ReportAllocs()
		if !parallel {
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
			return
		}
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := f(); err != nil {
					b.Error(err)
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
		b.Run("dnsstub/cached"+suffix, func(b *testing.B) {
			s := stub(b, true)
			run(b, parallel, func() error { _, err := s.LookupHost(ctx, "web.test."); return err })
		})
		b.Run("dnsstub/uncached"+suffix, func(b *testing.B) {
			s := stub(b, false)
			run(b, parallel, func() error { _, err := s.LookupHost(ctx, "web.test."); return err })
		})
		b.Run("net.Resolver/uncached"+suffix, func(b *testing.B) {
			run(b, parallel, func() error { _, err := goRes.LookupNetIP(ctx, "ip", "web.test."); return err })
		})
	}
}
