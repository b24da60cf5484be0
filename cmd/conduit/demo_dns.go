package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/conduit-go/conduit/resolver"
	"github.com/conduit-go/conduit/resolver/dnsstub"
)

// demoZone is the zone the demo's DNS server answers for.
const demoZone = "demo.test."

// demoDNS is a tiny authoritative server for demo.test on loopback: SRV
// records for the services the demo registers once their listeners have
// ports, and demo.test itself at 127.0.0.1.
type demoDNS struct {
	udp, tcp *dns.Server
	mu       sync.Mutex
	srv      map[string]uint16 // "_echo._tcp.demo.test." → port
}

// startDemoDNS starts the server on a free loopback port (UDP and TCP).
func startDemoDNS() (*demoDNS, netip.AddrPort, error) {
	d := &demoDNS{srv: map[string]uint16{}}
	l, pc, err := bindSamePort()
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	h := dns.HandlerFunc(d.serve)
	d.udp = &dns.Server{PacketConn: pc, Handler: h}
	d.tcp = &dns.Server{Listener: l, Handler: h}
	started := make(chan struct{}, 2)
	d.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	d.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go d.udp.ActivateAndServe()
	go d.tcp.ActivateAndServe()
	<-started
	<-started
	return d, addr, nil
}

// bindAttempts bounds the tries of bindSamePort.
const bindAttempts = 20

// bindSamePort binds a TCP listener on a free loopback port and a UDP
// socket on the same port number. The kernel picks a TCP port free for
// TCP; the UDP port of that number may be taken by another program
// meanwhile or before, so a failed UDP bind is retried on a fresh TCP
// port.
func bindSamePort() (net.Listener, net.PacketConn, error) {
	var lastErr error
	for i := 0; i < bindAttempts; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("binding its TCP port: %w", err)
		}
		pc, err := net.ListenPacket("udp4", l.Addr().String())
		if err == nil {
			return l, pc, nil
		}
		l.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("binding its UDP port on the number of its TCP port, %d tries: %w", bindAttempts, lastErr)
}

// register publishes an SRV record for service on port.
func (d *demoDNS) register(service string, port uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv["_"+service+"._tcp."+demoZone] = port
}

func (d *demoDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 5}
	}
	d.mu.Lock()
	port, isSRV := d.srv[name]
	d.mu.Unlock()
	switch {
	case name == demoZone && q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
	case isSRV && q.Qtype == dns.TypeSRV:
		m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: 10, Weight: 5, Port: port, Target: demoZone})
	case name == demoZone || isSRV:
		// The name exists without records of this type: NODATA.
	default:
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: demoZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 5},
			Ns: "ns." + demoZone, Mbox: "hostmaster." + demoZone, Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 5})
	}
	w.WriteMsg(m)
}

func (d *demoDNS) close() {
	ctx := context.Background()
	d.udp.ShutdownContext(ctx)
	d.tcp.ShutdownContext(ctx)
}

// demoResolver asks only the demo's server: no system configuration.
func demoResolver(ns netip.AddrPort) (*resolver.URIResolver, error) {
	return resolver.New(&resolver.Config{
		HostsFile: "-",
		DNS:       &dnsstub.Config{Nameservers: []netip.AddrPort{ns}},
	})
}
