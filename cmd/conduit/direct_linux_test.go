//go:build linux

package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
)

// stackFlags are the flags that attach the command to n's device.
func stackFlags(n *testutil.TunNet) []string {
	return []string{"--stack", "direct", "--tun", n.Dev, "--addr", n.Ours.String() + "/24"}
}

// TestDirectStackWithTheKernel runs the command on the userspace stack,
// attached to a TUN device, against the Linux kernel's TCP and socat on
// the other side of the device.
func TestDirectStackWithTheKernel(t *testing.T) {
	n := testutil.NewTunNet(t, "conduit-cli")
	ours, kernel := n.Ours.String(), n.Kernel.String()
	socat := testutil.RequirePeer(t, "socat", "socat")
	data := payload(2 << 20)

	// Our listener on the userspace stack; socat on the kernel dials it.
	args := append(n.Exec(binary(t), "listen", "--echo"), stackFlags(n)...)
	p := testutil.StartProcess(t, args[0], append(args[1:], "tcp://"+ours+":7000")...)
	m := p.WaitLine(t, regexpListening, 30*time.Second)
	require.Equal(t, "tcp://"+ours+":7000", m[1])
	cl := n.Exec(socat, "-t", "30", "-", "TCP4:"+ours+":7000")
	cmd := exec.Command(cl[0], cl[1:]...)
	cmd.Stdin = bytes.NewReader(data)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	require.NoError(t, err, errb.String())
	requireSameHash(t, data, out)
	// A TUN device has one user at a time: stop the listener (gracefully).
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.ExitCode(), p.Stderr())

	// Our dial on the userspace stack to socat's echo on the kernel.
	srv := n.Exec(socat, "-d", "-d", "TCP4-LISTEN:0,bind="+kernel+",reuseaddr,fork", "EXEC:cat")
	sp := testutil.StartProcess(t, srv[0], srv[1:]...)
	addr := sp.WaitLine(t, regexp.MustCompile(`listening on AF=2 (\S+)`), 30*time.Second)[1]
	dargs := append(n.Exec(binary(t), "dial"), stackFlags(n)...)
	dargs = append(dargs, "tcp://"+addr)
	dc := exec.Command(dargs[0], dargs[1:]...)
	dc.Stdin = bytes.NewReader(data)
	errb.Reset()
	dc.Stderr = &errb
	out, err = dc.Output()
	require.NoError(t, err, errb.String())
	requireSameHash(t, data, out)
}

func TestDirectStackFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"dial", "--stack", "direct", "tcp://10.99.0.1:1"}, "--stack direct needs --tun NAME and --addr CIDR"},
		{[]string{"dial", "--stack", "direct", "--tun", "x", "--addr", "nonsense", "tcp://10.99.0.1:1"}, "--addr"},
		{[]string{"dial", "--tun", "x", "tcp://127.0.0.1:1"}, "--tun and --addr go with --stack direct"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := runWithInput(t, nil, tc.args...)
			require.Equal(t, 2, code, errOut)
			require.Contains(t, errOut, tc.msg)
		})
	}
}
