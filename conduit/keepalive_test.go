package conduit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/conduit-go/conduit/tcpflow"
)

// keepaliveOf reads SO_KEEPALIVE and TCP_KEEPIDLE of a kernel flow.
func keepaliveOf(t *testing.T, f Flow) (bool, time.Duration) {
	kf, ok := f.(*tcpflow.KernelFlow)
	require.True(t, ok, "a TCP flow of the kernel stack, got %T", f)
	raw, err := kf.SyscallConn()
	require.NoError(t, err)
	var on, idle int
	require.NoError(t, raw.Control(func(fd uintptr) {
		on, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
		idle, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
	}))
	return on != 0, time.Duration(idle) * time.Second
}

func TestKeepalivePerListenerAndPerConduit(t *testing.T) {
	listenKA := tcpflow.Keepalive{After: 17 * time.Second, Interval: 4 * time.Second, Probes: 3}
	dialKA := tcpflow.Keepalive{After: 23 * time.Second, Interval: 5 * time.Second, Probes: 2}
	srv := New(nil)
	defer srv.Close()
	ln, err := srv.Listen(testCtx(t), "tcp://127.0.0.1:0", WithKeepalive(listenKA))
	require.NoError(t, err)
	defer ln.Close()
	plain, err := srv.Listen(testCtx(t), "tcp://127.0.0.1:0")
	require.NoError(t, err)
	defer plain.Close()

	cli := New(&Config{Keepalive: &dialKA})
	defer cli.Close()
	for _, tc := range []struct {
		ln     *Listener
		accept bool
	}{{ln, true}, {plain, false}} {
		f, err := cli.Dial(testCtx(t), tc.ln.URI())
		require.NoError(t, err)
		on, idle := keepaliveOf(t, f)
		require.True(t, on)
		require.Equal(t, dialKA.After, idle)
		a, err := tc.ln.AcceptFlow()
		require.NoError(t, err)
		on, idle = keepaliveOf(t, a)
		require.Equal(t, tc.accept, on)
		if tc.accept {
			require.Equal(t, listenKA.After, idle)
		}
		a.Close()
		f.Close()
	}
}
