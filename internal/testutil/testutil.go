// Package testutil holds the test machinery shared by conduit's packages:
// a goroutine leak check for TestMain and the lookup of real peers
// (socat, openssl, dnsmasq, …) that tests run against.
//
// A missing peer skips the test locally, naming the Debian package to
// install; with CONDUIT_REQUIRE_PEERS=1 (set by .ci/run) it fails instead.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// RequirePeersEnv is the environment variable that turns a missing peer
// from a skip into a failure.
const RequirePeersEnv = "CONDUIT_REQUIRE_PEERS"

// PeersRequired reports whether missing peers must fail tests.
func PeersRequired() bool {
	v := os.Getenv(RequirePeersEnv)
	return v != "" && v != "0"
}

// RequirePeer returns the path of the program, or skips the test (fails it
// when peers are required) with a message naming the Debian package that
// provides it.
func RequirePeer(t testing.TB, program, debianPackage string) string {
	t.Helper()
	if path, err := exec.LookPath(program); err == nil {
		return path
	}
	// Daemons (knotd, dnsmasq, unbound, danted) live in the sbin
	// directories, which a user's PATH often leaves out.
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if path := filepath.Join(dir, program); isExecutable(path) {
			return path
		}
	}
	msg := fmt.Sprintf("peer %q not found: install it with `apt-get install -y %s`", program, debianPackage)
	if PeersRequired() {
		t.Fatalf("%s (%s=1)", msg, RequirePeersEnv)
	}
	t.Skip(msg)
	return ""
}

// RequireRoot skips (or fails when peers are required) a test that needs
// root privileges, for example to create network namespaces or TUN devices.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "needs root: " + why
	if PeersRequired() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// interesting reports whether a goroutine stack belongs to code under test
// rather than to the runtime or the testing framework.
func interesting(stack string) bool {
	first, _, _ := strings.Cut(stack, "\n")
	if strings.Contains(first, "[running]") {
		return false // the goroutine taking the snapshot
	}
	for _, s := range []string{
		"testing.Main(",
		"testing.(*T).Run(",
		"testing.(*F).Fuzz(",
		"testing.(*M).",
		"testing.tRunner(",
		"testing.runTests",
		"testing.runFuzzing",
		"testing.(*B).",
		"runtime.goexit()",
		"created by runtime.gc",
		"runtime.MHeap_Scavenger",
		"signal.signal_recv",
		"sigterm.handler",
		"runtime_mcall",
		"goroutine in C code",
		"runtime.ReadTrace",
		"os/signal.loop",
		"runtime/trace.Start",
	} {
		if strings.Contains(stack, s) {
			return false
		}
	}
	return true
}

// Goroutines returns the stacks of the goroutines that are not part of the
// runtime or of the testing framework.
func Goroutines() []string {
	buf := make([]byte, 2<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if interesting(g) {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out
}

// LeakError waits up to five seconds for every goroutine started by code
// under test to end and returns a description of those still running.
func LeakError() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		gs := Goroutines()
		if len(gs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leaked %d goroutine(s):\n\n%s", len(gs), strings.Join(gs, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// VerifyNoLeaks is for TestMain: it runs the tests and then fails the
// binary if goroutines are left running.
//
//	func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
func VerifyNoLeaks(m *testing.M) {
	os.Exit(RunNoLeaks(m))
}

// RunNoLeaks runs the tests, checks for leaked goroutines and returns the
// exit code, for a TestMain that has clean-up to do before os.Exit.
func RunNoLeaks(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		if err := LeakError(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
	}
	return code
}

// CheckLeaks registers a cleanup that fails t if goroutines started during
// the test are still running once it ends (with a grace period).
func CheckLeaks(t testing.TB) {
	t.Helper()
	before := map[string]bool{}
	for _, g := range Goroutines() {
		before[goroutineID(g)] = true
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var leaked []string
			for _, g := range Goroutines() {
				if !before[goroutineID(g)] {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leaked %d goroutine(s):\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func goroutineID(stack string) string {
	first, _, _ := strings.Cut(stack, " [")
	return first
}

// isExecutable reports whether path is a regular file someone may run.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
