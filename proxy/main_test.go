package proxy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/conduit-go/conduit/internal/testutil"
)

// TestMain fails the package's tests if they leave goroutines running or
// file descriptors open (connections, listeners, peers' pipes).
func TestMain(m *testing.M) {
	// The netpoller's descriptors are opened on first use and kept for
	// the process's life: open them before counting.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	before := openFDs()
	code := testutil.RunNoLeaks(m)
	if code == 0 && before != nil {
		if err := fdLeakError(before); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// openFDs maps this process's open descriptors to what they refer to,
// or is nil where /proc is not available.
func openFDs() map[string]string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	fds := make(map[string]string, len(ents))
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fds[e.Name()] = target
	}
	return fds
}

// fdLeakError waits up to five seconds for the descriptors opened since
// before to be closed and describes those still open.
func fdLeakError(before map[string]string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		// io.Copy between TCP connections splices through pipes that
		// internal/poll keeps in a sync.Pool and closes by finalizer:
		// two collections empty the pool.
		runtime.GC()
		runtime.GC()
		var leaked []string
		for fd, target := range openFDs() {
			if _, ok := before[fd]; !ok && !strings.HasPrefix(target, "/proc/") {
				leaked = append(leaked, fd+" → "+target)
			}
		}
		// The directory being read shows as /proc/…: not a leak.
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			sort.Strings(leaked)
			return fmt.Errorf("leaked %d file descriptor(s): %s", len(leaked), strings.Join(leaked, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
