package conduit

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/tcpflow"
	"github.com/conduit-go/conduit/tcpflow/link/channel"
	"github.com/conduit-go/conduit/tcpflow/stack"
)

// TestDirectStack runs tcp:// and tls:// over the userspace TCP/IPv4
// stack: two stacks joined by an in-memory link, a Conduit on each.
func TestDirectStack(t *testing.T) {
	a, b := channel.NewPair(1500, channel.FaultOptions{})
	// Cleanups, not defers: they run after those of serve.
	t.Cleanup(func() { a.Close(); b.Close() })
	sa, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.255.0.1/24"), Link: a})
	require.NoError(t, err)
	t.Cleanup(func() { sa.Close() })
	sb, err := stack.New(stack.Options{Addr: netip.MustParsePrefix("10.255.0.2/24"), Link: b})
	require.NoError(t, err)
	t.Cleanup(func() { sb.Close() })
	pki := testPKI(t)
	srv := New(&Config{Stack: sa, TLS: pki})
	t.Cleanup(func() { srv.Close() })
	cli := New(&Config{Stack: sb, TLS: pki})
	t.Cleanup(func() { cli.Close() })

	for _, uri := range []string{"tcp://10.255.0.1:80", "tls://10.255.0.1:443?sni=" + testServerName} {
		t.Run(uri, func(t *testing.T) {
			target := serve(t, srv, uri, echo)
			f, err := cli.Dial(testCtx(t), target)
			require.NoError(t, err)
			defer f.Close()
			roundTrip(t, f, 1<<20)
		})
	}
	// The flow of a tcp:// dial is the stack's own tcpflow.Flow.
	target := serve(t, srv, "tcp://10.255.0.1:81", echo)
	f, err := cli.Dial(testCtx(t), target)
	require.NoError(t, err)
	defer f.Close()
	tf, ok := f.(tcpflow.Flow)
	require.True(t, ok)
	require.Equal(t, netip.MustParseAddrPort("10.255.0.1:81"), tf.Dst())
}
