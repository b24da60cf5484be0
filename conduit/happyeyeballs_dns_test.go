package conduit

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/clock"
	"github.com/conduit-go/conduit/internal/testutil"
)

// TestStreamedDNSResolution dials through the real resolver and its DNS
// stub, asking a DNS server (miekg/dns, on 127.0.0.1) that holds one
// family's answer until the test ends, and the kernel's TCP on loopback
// listeners at 127.0.0.1 and ::1: the dial connects with the family
// that answered, never waiting for the other (the resolver's timeout is
// far beyond the test's hang guard). The Conduit's manual clock times
// the resolution delay.
func TestStreamedDNSResolution(t *testing.T) {
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback")
	} else {
		l.Close()
	}
	for _, tc := range []struct {
		name      string
		answered  uint16 // the family the server answers
		wantDelay bool   // the resolution delay is waited
		want      netip.Addr
	}{
		{"A first waits the resolution delay", dns.TypeA, true, netip.MustParseAddr("127.0.0.1")},
		{"AAAA first starts at once", dns.TypeAAAA, false, netip.MustParseAddr("::1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			held := make(chan struct{}) // never ready: the answer comes never
			srv := startDelayedAAAAServer(t, "dual.test", func(qtype uint16) <-chan struct{} {
				if qtype == tc.answered {
					return nil
				}
				return held
			})
			port := dualLoopbackListeners(t)
			timers := &manualTimers{Manual: clock.NewManual(time.Unix(0, 0)), created: make(chan time.Duration, 16)}
			c := New(&Config{Resolver: dnsResolver(t, srv.addr, time.Minute), Clock: timers})
			t.Cleanup(func() { c.Close() })

			ctx, cancel := context.WithTimeout(context.Background(), hang)
			defer cancel()
			done := make(chan dialResult, 1)
			go func() {
				f, err := c.Dial(ctx, "tcp://dual.test:"+strconv.Itoa(port))
				done <- dialResult{f, err}
			}()
			if tc.wantDelay {
				require.Equal(t, DefaultResolutionDelay, recv(t, timers.created, "resolution delay"))
				timers.fire(DefaultResolutionDelay)
			}
			r := recv(t, done, "dial result")
			require.NoError(t, r.err)
			defer r.f.Close()
			require.Equal(t, tc.want, r.f.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
			if !tc.wantDelay {
				noneYet(t, timers.created, "timer (a resolution delay)")
			}
		})
	}
}
