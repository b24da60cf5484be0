// Command srv-discovery shows service discovery through DNS SRV records,
// the way Consul and Kubernetes publish services: it starts two echo
// backends and a small DNS server on loopback that publishes them as
// _echo._tcp.service.test, then resolves and dials srv:// and
// SCHEME+srv:// URIs through that server, and watches the record set
// change when a third backend is published.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/conduit-go/conduit/conduit"
	"github.com/conduit-go/conduit/endpoint"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// zone is a tiny authoritative DNS server: SRV records for
// _echo._tcp.service.test and an A record per backend.
type zone struct {
	mu    sync.Mutex
	ports []uint16
}

func (z *zone) add(port uint16) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.ports = append(z.ports, port)
}

func (z *zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	z.mu.Lock()
	defer z.mu.Unlock()
	switch {
	case q.Qtype == dns.TypeSRV && strings.EqualFold(q.Name, "_echo._tcp.service.test."):
		for i, p := range z.ports {
			m.Answer = append(m.Answer, &dns.SRV{
				Hdr:      dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1},
				Priority: 10, Weight: 10, Port: p, Target: fmt.Sprintf("node%d.service.test.", i+1),
			})
		}
	case q.Qtype == dns.TypeA && strings.HasSuffix(strings.ToLower(q.Name), ".service.test."):
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.IPv4(127, 0, 0, 1),
		})
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// echoBackend starts an echo server that prefixes its answer with name.
func echoBackend(ctx context.Context, c *conduit.Conduit, name string) (uint16, func(), error) {
	ln, err := c.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		conduit.ServeListener(ctx, ln, conduit.HandlerFunc(func(_ context.Context, f conduit.Flow) {
			b, _ := io.ReadAll(f)
			fmt.Fprintf(f, "%s: %s", name, b)
		}), time.Second)
	}()
	ap := ln.Endpoint().(endpoint.TCP).Addr
	return ap.Port(), func() { stop(); <-done }, nil
}

func run(ctx context.Context, w io.Writer) error {
	// The DNS server, on a free loopback port.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	z := &zone{}
	srv := &dns.Server{PacketConn: pc, Handler: z}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	defer srv.Shutdown()
	ns := pc.LocalAddr().(*net.UDPAddr).AddrPort()

	// A resolver that asks only that server, and knows the echo service
	// (port 7 when there is no SRV record), so echo+srv:// works.
	r, err := resolver.New(&resolver.Config{
		HostsFile: "-",
		Services:  map[string]resolver.Service{"echo": {Port: 7}},
		DNS:       &dnsstub.Config{Nameservers: []netip.AddrPort{ns}},
	})
	if err != nil {
		return err
	}
	defer r.Close()
	c := conduit.New(&conduit.Config{Resolver: r})
	defer c.Close()

	for _, name := range []string{"alpha", "beta"} {
		port, stop, err := echoBackend(ctx, c, name)
		if err != nil {
			return err
		}
		defer stop()
		z.add(port)
	}

	eps, err := c.Resolve(ctx, "srv://_echo._tcp.service.test")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "srv://_echo._tcp.service.test has %d endpoints\n", len(eps))

	// echo+srv:// asks for _echo._tcp.service.test too; dial it.
	f, err := c.Dial(ctx, "echo+srv://service.test")
	if err != nil {
		return err
	}
	io.WriteString(f, "hello")
	f.CloseWrite()
	reply, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "reply from a backend: %v\n", strings.HasSuffix(string(reply), ": hello"))

	// Watch the record set: a third backend appears.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	updates, err := r.Watch(wctx, "srv://_echo._tcp.service.test")
	if err != nil {
		return err
	}
	first := <-updates
	fmt.Fprintf(w, "watch: %d endpoints\n", len(first.Endpoints))
	port, stop, err := echoBackend(ctx, c, "gamma")
	if err != nil {
		return err
	}
	defer stop()
	z.add(port)
	for u := range updates {
		if u.Err != nil {
			return u.Err
		}
		if len(u.Endpoints) == 3 {
			fmt.Fprintf(w, "watch: %d endpoints\n", len(u.Endpoints))
			return nil
		}
	}
	return fmt.Errorf("the watch ended before the third backend appeared")
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}
