package testutil

import (
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// ServeDNS serves h over UDP and TCP on one free loopback port and
// returns the address; the servers are shut down, and their goroutines
// waited for, when the test ends. Cleanups a caller registers after it
// run first: one that releases handlers blocked on purpose lets the
// shutdown finish.
func ServeDNS(t testing.TB, h dns.Handler) netip.AddrPort {
	t.Helper()
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 10 {
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(pc.LocalAddr().String())
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the Shutdowns (cleanups run last first)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return addr
}

// FreeUDPPort returns a loopback UDP port that was free a moment ago,
// for a server that cannot be told to pick one itself and report it.
func FreeUDPPort(t testing.TB) uint16 {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}
