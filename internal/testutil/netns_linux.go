//go:build linux

package testutil

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TunNet is a network namespace made for one test, with a TUN device in
// it: the kernel has Kernel (10.99.X.1/24) on the device and the code
// under test uses Ours (10.99.X.2) on the device's file descriptor.
type TunNet struct {
	NS, Dev      string
	Kernel, Ours netip.Addr
}

// IP runs ip(8) with args and fails the test on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// NewTunNet creates a namespace named PREFIX-<random> and a persistent
// TUN device in it (up, with Kernel's address), removed when the test
// ends. It needs root and ip(8): without them it skips, or fails when
// peers are required.
func NewTunNet(t testing.TB, prefix string) *TunNet {
	t.Helper()
	RequireRoot(t, "creates a network namespace and a TUN device")
	RequirePeer(t, "ip", "iproute2")
	x, id := 1+rand.IntN(254), rand.Uint32()
	n := &TunNet{
		NS:     fmt.Sprintf("%s-%08x", prefix, id),
		Dev:    fmt.Sprintf("ct%08x", id),
		Kernel: netip.AddrFrom4([4]byte{10, 99, byte(x), 1}),
		Ours:   netip.AddrFrom4([4]byte{10, 99, byte(x), 2}),
	}
	IP(t, "netns", "add", n.NS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.NS).Run() })
	IP(t, "-n", n.NS, "tuntap", "add", "dev", n.Dev, "mode", "tun")
	IP(t, "-n", n.NS, "addr", "add", n.Kernel.String()+"/24", "dev", n.Dev)
	IP(t, "-n", n.NS, "link", "set", n.Dev, "up")
	IP(t, "-n", n.NS, "link", "set", "lo", "up")
	return n
}

// Exec returns the command line that runs args inside the namespace.
func (n *TunNet) Exec(args ...string) []string {
	return append([]string{"ip", "netns", "exec", n.NS}, args...)
}

// Do runs f on an OS thread switched into the namespace, so sockets and
// devices f opens belong to it.
func (n *TunNet) Do(t testing.TB, f func()) {
	t.Helper()
	target, err := unix.Open("/var/run/netns/"+n.NS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(target)
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns: %v", err)
	}
	f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime discards it when the
		// goroutine exits instead of reusing a thread in the wrong netns.
		t.Fatalf("setns back: %v", err)
	}
	runtime.UnlockOSThread()
}
