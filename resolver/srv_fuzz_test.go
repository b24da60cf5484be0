package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// FuzzSRVAnswer feeds hostile SRV answers (any count, priorities,
// weights, ports, "." targets, targets that fail) through Resolve and
// checks what comes out: no duplicate, every endpoint from a usable
// record of a target that resolves, at most MaxSRVTargets records used,
// the dial order by priority, and an error (a *URIError) only when no
// used target resolved.
//
// Each 6 bytes of the input are a record: priority (1 byte), weight (2),
// port (2), and a byte whose low bits pick the target: "." when 0, one
// that fails when 1 mod 4, else a healthy one named after the record.
func FuzzSRVAnswer(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 80, 2, 1, 0, 1, 0, 81, 3})
	f.Add([]byte{5, 0, 0, 0, 0, 2, 0, 255, 255, 255, 255, 1, 0, 0, 0, 0, 1, 0})
	more := make([]byte, 6*12) // more records than MaxSRVTargets
	for i := range 12 {
		copy(more[6*i:], []byte{byte(i % 3), 0, byte(i), 1, byte(i), byte(2 + i%5)})
	}
	f.Add(more)
	const limit = 7
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []dnsstub.SRV
		prio := map[string]uint16{} // healthy target → its record's priority
		// At most 40 records: small inputs minimise fast.
		for i := 0; i+6 <= len(data) && i < 6*40; i += 6 {
			rec := dnsstub.SRV{
				Priority: uint16(data[i]),
				Weight:   uint16(data[i+1])<<8 | uint16(data[i+2]),
				Port:     uint16(data[i+3])<<8 | uint16(data[i+4]),
				TTL:      time.Minute,
			}
			switch k := data[i+5]; {
			case k == 0:
				rec.Target = "."
			case k%4 == 1:
				rec.Target = fmt.Sprintf("bad%d.fuzz.test.", i/6)
			default:
				rec.Target = fmt.Sprintf("t%d.fuzz.test.", i/6)
				prio[rec.Target[:len(rec.Target)-1]] = rec.Priority
			}
			recs = append(recs, rec)
		}
		r, err := resolver.New(&resolver.Config{
			HostsFile: "-", ServicesFile: "-", MaxSRVTargets: limit, SRVConcurrency: 3,
			Rand: rand.NewPCG(uint64(len(data)), 1),
			LookupSRV: func(context.Context, string) ([]dnsstub.SRV, error) {
				if len(recs) == 0 {
					return nil, &dnsstub.Error{Name: "x", Type: "SRV", Err: dnsstub.ErrNXDomain}
				}
				return recs, nil
			},
			LookupHost: func(ctx context.Context, host string) ([]netip.Addr, error) {
				if _, ok := prio[host]; !ok {
					return nil, errors.New("backend exploded")
				}
				return []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		eps, err := r.Resolve(context.Background(), "srv://_x._tcp.fuzz.test")
		if err != nil {
			var ue *resolver.URIError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v (%T) is not a *URIError", err, err)
			}
			if len(eps) != 0 {
				t.Fatalf("endpoints %v with an error", eps)
			}
			return
		}
		if len(eps) == 0 {
			t.Fatal("no endpoints and no error")
		}
		seen := map[endpoint.Endpoint]bool{}
		hosts := map[string]bool{}
		last := -1
		for _, ep := range eps {
			tcp, ok := ep.(endpoint.TCP)
			if !ok {
				t.Fatalf("endpoint %v is not TCP", ep)
			}
			if seen[ep] {
				t.Fatalf("endpoint %v twice in %v", ep, eps)
			}
			seen[ep] = true
			p, ok := prio[tcp.Host]
			if !ok || tcp.Addr.Port() == 0 {
				t.Fatalf("endpoint %v from no usable healthy record", ep)
			}
			if int(p) < last {
				t.Fatalf("priority %d after %d: %v", p, last, eps)
			}
			last = int(p)
			hosts[tcp.Host] = true
		}
		if len(hosts) > limit {
			t.Fatalf("%d targets used, more than MaxSRVTargets %d", len(hosts), limit)
		}
	})
}
