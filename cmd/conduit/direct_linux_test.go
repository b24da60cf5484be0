//go:build linux

package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/conduit-go/conduit/internal/testutil"
)

// directNet is a network namespace holding a TUN device: the kernel is
// 10.99.X.1/24 on it, conduit's userspace stack takes 10.99.X.2.
type directNet struct {
	ns, dev      string
	kernel, ours string
}

func run1(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	require.NoError(t, err, "%v: %s", args, out)
}

func newDirectNet(t *testing.T) *directNet {
	testutil.RequireRoot(t, "creates a network namespace and a TUN device")
	ip := testutil.RequirePeer(t, "ip", "iproute2")
	x, id := 1+rand.IntN(254), rand.Uint32()
	n := &directNet{
		ns:     fmt.Sprintf("conduit-cli-%08x", id),
		dev:    fmt.Sprintf("ccli%08x", id),
		kernel: fmt.Sprintf("10.99.%d.1", x),
		ours:   fmt.Sprintf("10.99.%d.2", x),
	}
	run1(t, ip, "netns", "add", n.ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", n.ns).Run() })
	run1(t, ip, "-n", n.ns, "tuntap", "add", "dev", n.dev, "mode", "tun")
	run1(t, ip, "-n", n.ns, "addr", "add", n.kernel+"/24", "dev", n.dev)
	run1(t, ip, "-n", n.ns, "link", "set", n.dev, "up")
	run1(t, ip, "-n", n.ns, "link", "set", "lo", "up")
	return n
}

// inNS returns the command line that runs args inside the namespace.
func (n *directNet) inNS(args ...string) []string {
	return append([]string{"ip", "netns", "exec", n.ns}, args...)
}

func (n *directNet) stackFlags() []string {
	return []string{"--stack", "direct", "--tun", n.dev, "--addr", n.ours + "/24"}
}

// TestDirectStackWithTheKernel runs the command on the userspace stack,
// attached to a TUN device, against the Linux kernel's TCP and socat on
// the other side of the device.
func TestDirectStackWithTheKernel(t *testing.T) {
	n := newDirectNet(t)
	socat := testutil.RequirePeer(t, "socat", "socat")
	data := payload(2 << 20)

	// Our listener on the userspace stack; socat on the kernel dials it.
	args := append(n.inNS(binary(t), "listen", "--echo"), n.stackFlags()...)
	p := testutil.StartProcess(t, args[0], append(args[1:], "tcp://"+n.ours+":7000")...)
	m := p.WaitLine(t, regexpListening, 30*time.Second)
	require.Equal(t, "tcp://"+n.ours+":7000", m[1])
	cl := n.inNS(socat, "-t", "30", "-", "TCP4:"+n.ours+":7000")
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
	srv := n.inNS(socat, "-d", "-d", "TCP4-LISTEN:0,bind="+n.kernel+",reuseaddr,fork", "EXEC:cat")
	sp := testutil.StartProcess(t, srv[0], srv[1:]...)
	addr := sp.WaitLine(t, regexp.MustCompile(`listening on AF=2 (\S+)`), 30*time.Second)[1]
	dargs := append(n.inNS(binary(t), "dial"), n.stackFlags()...)
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
