package vchan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as the peer process: with
// helperEnv set, TestMain runs helperMain instead of the tests.
const (
	helperEnv   = "VCHAN_TEST_HELPER"
	helperDir   = "VCHAN_TEST_DIR"
	helperDomid = "VCHAN_TEST_DOMID"
	helperIdle  = "VCHAN_TEST_IDLE"
	bulkSize    = 16 << 20
	nobody      = 65534 // the uid and gid of another user in the tests that need one
)

// cpuTime returns the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idleCPU connects a helper process to a listener here and returns the
// CPU time the helper used while its Read waited for d on the idle vchan,
// and the wall time of that wait.
func idleCPU(t testing.TB, d time.Duration) (cpu, wall time.Duration) {
	dir := testStore(t)
	l, err := Listen(context.Background(), &Config{Dir: dir}, "idle")
	require.NoError(t, err)
	defer l.Close()
	t.Setenv(helperEnv, "idle")
	t.Setenv(helperDir, dir)
	t.Setenv(helperDomid, strconv.Itoa(l.Domid()))
	t.Setenv(helperIdle, d.String())
	p := testutil.StartProcess(t, os.Args[0], "-test.run=^$")
	os.Unsetenv(helperEnv)
	c, err := l.AcceptVchan()
	require.NoError(t, err, p.Stderr())
	defer c.Close()
	select {
	case <-p.Exited():
	case <-time.After(d + 30*time.Second):
		t.Fatal("idle helper did not exit")
	}
	m := regexp.MustCompile(`(?m)^idle (\d+) (\d+)$`).FindStringSubmatch(p.Stderr())
	require.NotNil(t, m, p.Stderr())
	c1, _ := strconv.ParseInt(m[1], 10, 64)
	w1, _ := strconv.ParseInt(m[2], 10, 64)
	return time.Duration(c1), time.Duration(w1)
}

// TestIdleCPU: a Read waiting on an idle vchan sleeps (futex) instead of
// spinning: its process uses well under 5% of a CPU. A spinning
// implementation uses ~100%.
func TestIdleCPU(t *testing.T) {
	cpu, wall := idleCPU(t, time.Second)
	pct := 100 * float64(cpu) / float64(wall)
	t.Logf("idle: %v CPU over %v (%.2f%%)", cpu, wall, pct)
	assert.Less(t, pct, 5.0)
}

// pattern writes n pseudo-random bytes from seed to w and returns their
// SHA-256.
func pattern(w io.Writer, seed uint64, n int) (string, error) {
	rng := rand.New(rand.NewPCG(seed, ^seed))
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, len(buf))
		for i := 0; i < k; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < k; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return "", err
		}
		n -= k
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashAll(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func helperMain() int {
	ctx := context.Background()
	cfg := &Config{Dir: os.Getenv(helperDir), LivenessInterval: 100 * time.Millisecond}
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "helper:", err); return 1 }
	switch os.Getenv(helperEnv) {
	case "bulk": // listen, send bulkSize bytes (seed 2), hash what arrives
		l, err := Listen(ctx, cfg, "bulk")
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(os.Stderr, "ready %d\n", l.Domid())
		c, err := l.AcceptVchan()
		l.Close()
		if err != nil {
			return fail(err)
		}
		sent := make(chan error, 1)
		go func() {
			sum, err := pattern(c, 2, bulkSize)
			if err == nil {
				fmt.Fprintf(os.Stderr, "sent %s\n", sum)
				err = c.CloseWrite()
			}
			sent <- err
		}()
		sum, n, err := hashAll(c)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(os.Stderr, "recv %s %d\n", sum, n)
		if err := <-sent; err != nil {
			return fail(err)
		}
		c.Close()
		return 0
	case "serve": // benchmark peer: 's' sinks then acks, 'e' echoes
		l, err := Listen(ctx, cfg, "bench")
		if err != nil {
			return fail(err)
		}
		ul, err := net.Listen("unix", filepath.Join(cfg.Dir, "bench.sock"))
		if err != nil {
			return fail(err)
		}
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(os.Stderr, "ready %d %s\n", l.Domid(), tl.Addr())
		serve := func(c net.Conn) {
			defer c.Close()
			mode := make([]byte, 1)
			if _, err := io.ReadFull(c, mode); err != nil {
				return
			}
			buf := make([]byte, 64<<10)
			if mode[0] == 's' {
				io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
				c.Write(mode)
				return
			}
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		accept := func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go serve(c)
			}
		}
		go accept(ul)
		go accept(tl)
		accept(l)
		return 0
	case "idle": // dial, then measure our CPU time over an idle Read
		domid, _ := strconv.Atoi(os.Getenv(helperDomid))
		d, err := time.ParseDuration(os.Getenv(helperIdle))
		if err != nil {
			return fail(err)
		}
		c, err := Dial(ctx, &Config{Dir: cfg.Dir}, domid, "idle")
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		before, start := cpuTime(), time.Now()
		c.SetReadDeadline(start.Add(d))
		_, err = c.Read(make([]byte, 1))
		cpu, wall := cpuTime()-before, time.Since(start)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return fail(fmt.Errorf("idle Read: %v", err))
		}
		fmt.Fprintf(os.Stderr, "idle %d %d\n", cpu, wall)
		return 0
	case "listen", "listen-nodump": // listen (then become non-dumpable), never accept
		l, err := Listen(ctx, cfg, "p")
		if err != nil {
			return fail(err)
		}
		defer l.Close()
		if os.Getenv(helperEnv) == "listen-nodump" {
			if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
				return fail(err)
			}
		}
		fmt.Fprintf(os.Stderr, "ready %d\n", l.Domid())
		time.Sleep(time.Minute) // killed by the test's cleanup
		return 0
	case "listen-drop": // listen, drop root for nobody (as a daemon does), never accept
		l, err := Listen(ctx, cfg, "p")
		if err != nil {
			return fail(err)
		}
		defer l.Close()
		if err := syscall.Setgid(nobody); err != nil {
			return fail(err)
		}
		if err := syscall.Setuid(nobody); err != nil {
			return fail(err)
		}
		fmt.Fprintf(os.Stderr, "ready %d\n", l.Domid())
		time.Sleep(time.Minute) // killed by the test's cleanup
		return 0
	case "dial": // dial port p, report how it failed
		domid, _ := strconv.Atoi(os.Getenv(helperDomid))
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := Dial(dctx, cfg, domid, "p")
		if err == nil {
			c.Close()
		}
		fmt.Fprintf(os.Stderr, "dialed permission=%v deadline=%v err=%v\n",
			errors.Is(err, fs.ErrPermission), errors.Is(err, context.DeadlineExceeded), err)
		return 0
	case "die": // dial, write a while, then SIGKILL ourselves mid-transfer
		domid, _ := strconv.Atoi(os.Getenv(helperDomid))
		c, err := Dial(ctx, cfg, domid, "die")
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(os.Stderr, "connected")
		go func() {
			time.Sleep(100 * time.Millisecond)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}()
		pattern(c, 3, 1<<30)
		return 1
	}
	return fail(fmt.Errorf("unknown mode %q", os.Getenv(helperEnv)))
}

func startHelper(t *testing.T, mode, dir string, env ...string) *testutil.Process {
	t.Setenv(helperEnv, mode)
	t.Setenv(helperDir, dir)
	for i := 0; i+1 < len(env); i += 2 {
		t.Setenv(env[i], env[i+1])
	}
	p := testutil.StartProcess(t, os.Args[0], "-test.run=^$")
	os.Unsetenv(helperEnv) // t.Setenv restores it at cleanup anyway
	return p
}

// TestTwoProcessBulk moves 16 MiB each way between two processes at once
// and compares hashes, ending each direction with a half-close.
func TestTwoProcessBulk(t *testing.T) {
	dir := testStore(t)
	p := startHelper(t, "bulk", dir)
	m := p.WaitLine(t, regexp.MustCompile(`^ready (\d+)$`), 30*time.Second)
	domid, _ := strconv.Atoi(m[1])
	c, err := Dial(context.Background(), &Config{Dir: dir}, domid, "bulk")
	require.NoError(t, err, p.Stderr())
	defer c.Close()

	sent := make(chan string, 1)
	go func() {
		sum, err := pattern(c, 1, bulkSize)
		assert.NoError(t, err)
		assert.NoError(t, c.CloseWrite())
		sent <- sum
	}()
	got, n, err := hashAll(c)
	require.NoError(t, err)
	assert.EqualValues(t, bulkSize, n)
	want, _ := pattern(io.Discard, 2, bulkSize)
	assert.Equal(t, want, got, "what the helper sent")
	mine := <-sent
	// Wait for the exit, then read the line: WaitLine may pick the exit
	// over a line still buffered when both are ready.
	select {
	case <-p.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not exit")
	}
	m = regexp.MustCompile(`(?m)^recv ([0-9a-f]+) (\d+)$`).FindStringSubmatch(p.Stderr())
	require.NotNil(t, m, p.Stderr())
	assert.Equal(t, mine, m[1], "what the helper received")
	assert.Equal(t, strconv.Itoa(bulkSize), m[2])
}

// TestPeerKilled: the peer process SIGKILLs itself mid-transfer, while we
// are blocked both reading and writing; both calls fail promptly.
func TestPeerKilled(t *testing.T) {
	dir := testStore(t)
	cfg := &Config{Dir: dir, LivenessInterval: 100 * time.Millisecond}
	l, err := Listen(context.Background(), cfg, "die")
	require.NoError(t, err)
	defer l.Close()
	p := startHelper(t, "die", dir, helperDomid, strconv.Itoa(l.Domid()))
	c, err := l.AcceptVchan()
	require.NoError(t, err)
	defer c.Close()
	p.WaitLine(t, regexp.MustCompile(`^connected$`), 30*time.Second)

	errs := make(chan error, 2)
	go func() { _, err := c.Write(make([]byte, 64<<20)); errs <- err }() // the helper never reads
	go func() { _, err := io.Copy(io.Discard, c); errs <- err }()
	<-p.Exited()
	died := time.Now()
	for range 2 {
		select {
		case err := <-errs:
			assert.ErrorIs(t, err, ErrPeerDied)
		case <-time.After(10 * time.Second):
			t.Fatal("blocked call did not notice the killed peer")
		}
	}
	t.Logf("noticed %v after the peer was reaped", time.Since(died))
}
