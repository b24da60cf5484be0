// Command grpc-srv runs a gRPC client and three gRPC servers that it
// finds by DNS SRV records, the way Consul and Kubernetes publish
// services: a small DNS server on loopback publishes
// _grpc._tcp.svc.test with alpha and beta at priority 10 (weights 3 and
// 1) and gamma at priority 20, a backup. The client resolves
// conduit:///srv://_grpc._tcp.svc.test with conduit's resolver and
// spreads its RPCs with the SRV balancer: alpha and beta share them 3
// to 1 while gamma waits; when alpha and beta stop, gamma takes over.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	conduitgrpc "github.com/conduit-go/conduit/grpc"
	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// server is a gRPC server (grpc-go's, with its health service) that
// counts the RPCs it serves.
type server struct {
	name     string
	priority uint16
	weight   uint16
	port     uint16
	rpcs     atomic.Int64
	srv      *grpc.Server
	done     chan struct{}
}

func startServer(name string, priority, weight uint16) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{name: name, priority: priority, weight: weight, done: make(chan struct{}),
		port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	s.srv = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		s.rpcs.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s.srv, health.NewServer())
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *server) stop() {
	s.srv.Stop()
	<-s.done
}

// zone answers the SRV records of _grpc._tcp.svc.test and the A record
// of each target, with a TTL of 1 s.
type zone []*server

func (z zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 1}
	}
	switch name := strings.ToLower(q.Name); {
	case q.Qtype == dns.TypeSRV && name == "_grpc._tcp.svc.test.":
		for _, s := range z {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: s.priority, Weight: s.weight,
				Port: s.port, Target: s.name + ".svc.test."})
		}
	case q.Qtype == dns.TypeA && strings.HasSuffix(name, ".svc.test."):
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
	case strings.HasSuffix(name, ".svc.test."):
		// NODATA (AAAA): no records of that type.
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// shares prints each server's share of the RPCs, to the nearest 5%.
func shares(w io.Writer, what string, servers []*server) {
	var total int64
	for _, s := range servers {
		total += s.rpcs.Load()
	}
	var parts []string
	for _, s := range servers {
		pct := 5 * math.Round(float64(s.rpcs.Load())*100/float64(total)/5)
		parts = append(parts, fmt.Sprintf("%s %.0f%%", s.name, pct))
	}
	fmt.Fprintf(w, "%s: %s\n", what, strings.Join(parts, ", "))
}

func run(ctx context.Context, w io.Writer) error {
	conduitgrpc.RegisterBalancer()
	var servers []*server
	for _, s := range []struct {
		name     string
		priority uint16
		weight   uint16
	}{{"alpha", 10, 3}, {"beta", 10, 1}, {"gamma", 20, 1}} {
		srv, err := startServer(s.name, s.priority, s.weight)
		if err != nil {
			return err
		}
		defer srv.stop()
		servers = append(servers, srv)
	}

	// The DNS server, on a free loopback port.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	dnsSrv := &dns.Server{PacketConn: pc, Handler: zone(servers)}
	started := make(chan struct{})
	dnsSrv.NotifyStartedFunc = func() { close(started) }
	go dnsSrv.ActivateAndServe()
	<-started
	defer dnsSrv.Shutdown()
	ns := pc.LocalAddr().(*net.UDPAddr).AddrPort()

	// The client: conduit's resolver asking only that server, the SRV
	// balancer, no TLS (loopback).
	b, err := conduitgrpc.NewBuilder(&conduitgrpc.Options{ResolverConfig: &resolver.Config{
		HostsFile: "-",
		DNS:       &dnsstub.Config{Nameservers: []netip.AddrPort{ns}},
	}})
	if err != nil {
		return err
	}
	defer b.Close()
	conn, err := grpc.NewClient("conduit:///srv://_grpc._tcp.svc.test", append(b.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(conduitgrpc.ServiceConfig))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	call := func(opts ...grpc.CallOption) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := health.Check(cctx, &healthpb.HealthCheckRequest{}, opts...)
		return err
	}
	until := func(cond func() bool) error {
		for !cond() {
			// An RPC in flight when a server stops fails as Unavailable.
			if err := call(grpc.WaitForReady(true)); err != nil && status.Code(err) != codes.Unavailable {
				return err
			}
		}
		return nil
	}
	reset := func() {
		for _, s := range servers {
			s.rpcs.Store(0)
		}
	}

	// Both servers of priority 10 connected, then 400 RPCs.
	if err := until(func() bool { return servers[0].rpcs.Load() > 0 && servers[1].rpcs.Load() > 0 }); err != nil {
		return err
	}
	reset()
	for range 400 {
		if err := call(); err != nil {
			return err
		}
	}
	shares(w, "400 RPCs", servers)

	// Priority 10 goes down: the backup takes over.
	servers[0].stop()
	servers[1].stop()
	if err := until(func() bool { return servers[2].rpcs.Load() > 0 }); err != nil {
		return err
	}
	reset()
	for range 100 {
		if err := call(grpc.WaitForReady(true)); err != nil {
			return err
		}
	}
	shares(w, "alpha and beta stopped, 100 RPCs", servers)
	return nil
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}
