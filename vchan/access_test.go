package vchan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conduit-go/conduit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storeTree lists what a store holds, relative to it (directories end in
// '/'), without the lock file.
func storeTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case rel == "." || rel == ".lock":
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			out = append(out, rel)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// requireUnsafeStore checks that err refuses the store with a one-line
// message that contains each of parts.
func requireUnsafeStore(t *testing.T, err error, parts ...string) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrUnsafeStore)
	assert.ErrorIs(t, err, fs.ErrPermission)
	var ve *Error
	assert.ErrorAs(t, err, &ve)
	msg := err.Error()
	assert.NotContains(t, msg, "\n")
	for _, p := range parts {
		assert.Contains(t, msg, p)
	}
}

// TestStoreModes: a store directory writable by group or others is
// refused by Listen and Dial, before anything is written to it, with the
// path and the chmod that fixes it.
func TestStoreModes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		mode fs.FileMode
		who  string // "" when the store is accepted
	}{
		{0o700, ""},
		{0o750, ""},
		{0o755, ""},
		{0o711, ""},
		{0o770, "writable by group (mode 0770)"},
		{0o720, "writable by group (mode 0720)"},
		{0o702, "writable by others (mode 0702)"},
		{0o777, "writable by group and others (mode 0777)"},
		{0o777 | fs.ModeSticky, "writable by group and others (mode 1777)"},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			dir := filepath.Join(testStore(t), "store")
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.Chmod(dir, tc.mode))
			l, err := Listen(ctx, &Config{Dir: dir}, "p")
			if tc.who == "" {
				require.NoError(t, err)
				l.Close()
				return
			}
			requireUnsafeStore(t, err, "store "+dir+" is "+tc.who, "chmod 700 "+dir, "--vchan-dir")
			_, err = Dial(ctx, &Config{Dir: dir}, 1, "p")
			requireUnsafeStore(t, err, "store "+dir+" is "+tc.who)
			_, err = DialName(ctx, &Config{Dir: dir}, "web", "p")
			requireUnsafeStore(t, err, "store "+dir+" is "+tc.who)
			assert.Empty(t, storeTree(t, dir), "written to a refused store")
		})
	}
}

// TestStoreAncestors: a store inside a directory that another user could
// rename it out of (writable by group or others and not sticky) is
// refused, on the path as given and on the path its links lead to; one
// inside a sticky directory (as /tmp) is accepted.
func TestStoreAncestors(t *testing.T) {
	ctx := context.Background()
	base := testStore(t)
	mkdir := func(path string, mode fs.FileMode) string {
		require.NoError(t, os.MkdirAll(path, 0o700))
		require.NoError(t, os.Chmod(path, mode))
		return path
	}
	open := mkdir(filepath.Join(base, "open"), 0o777)
	group := mkdir(filepath.Join(base, "group"), 0o775)
	sticky := mkdir(filepath.Join(base, "sticky"), 0o777|fs.ModeSticky)
	safe := mkdir(filepath.Join(base, "safe"), 0o755)
	require.NoError(t, os.Symlink(mkdir(filepath.Join(open, "target"), 0o700), filepath.Join(safe, "to-open")))
	require.NoError(t, os.Symlink(mkdir(filepath.Join(safe, "target"), 0o700), filepath.Join(open, "to-safe")))

	for _, tc := range []struct {
		name, dir string
		parts     []string // nil when accepted
	}{
		{"in a sticky directory", filepath.Join(sticky, "store"), nil},
		{"in a safe directory", filepath.Join(safe, "store"), nil},
		{"in a directory others may write", filepath.Join(open, "store"),
			[]string{"inside " + open + ", which is writable by group and others and not sticky (mode 0777)", "chmod go-w " + open}},
		{"in a directory the group may write", filepath.Join(group, "store"),
			[]string{"inside " + group + ", which is writable by group and not sticky (mode 0775)"}},
		{"created in a directory others may write", filepath.Join(open, "new", "store"),
			[]string{"inside " + open + ","}},
		{"a link to a store in a directory others may write", filepath.Join(safe, "to-open"),
			[]string{filepath.Join(safe, "to-open") + " (" + filepath.Join(open, "target") + ")", "inside " + open + ","}},
		{"a link, in a directory others may write, to a store", filepath.Join(open, "to-safe"),
			[]string{"inside " + open + ","}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Listen(ctx, &Config{Dir: tc.dir}, "p")
			if tc.parts == nil {
				require.NoError(t, err)
				l.Close()
				return
			}
			requireUnsafeStore(t, err, tc.parts...)
			_, err = Dial(ctx, &Config{Dir: tc.dir}, 1, "p")
			requireUnsafeStore(t, err, tc.parts...)
		})
	}
}

// TestStoreOtherOwner: a store owned by another user, or inside a
// directory another user owns, is refused even with a safe mode.
func TestStoreOtherOwner(t *testing.T) {
	testutil.RequireRoot(t, "chown to another user")
	ctx := context.Background()
	base := testStore(t)
	theirs := filepath.Join(base, "theirs")
	require.NoError(t, os.Mkdir(theirs, 0o700))
	require.NoError(t, os.Chown(theirs, nobody, nobody))
	_, err := Listen(ctx, &Config{Dir: theirs}, "p")
	requireUnsafeStore(t, err, "store "+theirs+" is owned by uid 65534, not by this user (uid 0)")
	_, err = Dial(ctx, &Config{Dir: theirs}, 1, "p")
	requireUnsafeStore(t, err, "owned by uid 65534")

	home := filepath.Join(base, "home")
	require.NoError(t, os.Mkdir(home, 0o755))
	require.NoError(t, os.Chown(home, nobody, nobody))
	mine := filepath.Join(home, "store")
	_, err = Listen(ctx, &Config{Dir: mine}, "p")
	requireUnsafeStore(t, err, "store "+mine+" is inside "+home+", which is owned by uid 65534")
}

// waitRequest waits for the connection request of a dial to port of
// domain srv to be posted and returns its directory.
func waitRequest(t *testing.T, dir string, srv int, port string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // only against a hang
	for time.Now().Before(deadline) {
		reqs, _ := filepath.Glob(filepath.Join(dir, strconv.Itoa(srv), "data", "vchan", "*", port, "client-pid"))
		if len(reqs) == 1 {
			return filepath.Dir(reqs[0])
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no request for %d/%s posted in %s", srv, port, dir)
	return ""
}

// TestDialLeavesNothing: a dial that fails after posting its request
// (timeout, cancel, a listener that closes, dies or publishes a bad ring)
// leaves the store as it found it: no request, no data/vchan/CLIENT
// directory, no domain of its own.
func TestDialLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := testStore(t)
	// Domain 7 stays registered throughout (its first listener holds it),
	// so what the dials leave in it shows.
	keep, err := Listen(ctx, &Config{Dir: dir, Domid: 7}, "keep")
	require.NoError(t, err)
	defer keep.Close()
	l, err := Listen(ctx, &Config{Dir: dir, Domid: 7}, "p")
	require.NoError(t, err)
	defer l.Close()
	before := storeTree(t, dir)
	require.Contains(t, before, "7/data/vchan/")

	// dialAsync dials port of domain 7 and returns the result later.
	dialAsync := func(ctx context.Context, port string) <-chan error {
		errc := make(chan error, 1)
		go func() {
			c, err := Dial(ctx, &Config{Dir: dir}, 7, port)
			if err == nil {
				c.Close()
			}
			errc <- err
		}()
		return errc
	}
	result := func(errc <-chan error) error {
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("dial did not return")
			return nil
		}
	}

	t.Run("connected and closed", func(t *testing.T) {
		accepted := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				c.Close()
			}
			accepted <- err
		}()
		c, err := Dial(ctx, &Config{Dir: dir}, 7, "p")
		require.NoError(t, err)
		require.NoError(t, <-accepted)
		c.Close()
		assert.Equal(t, before, storeTree(t, dir))
	})
	t.Run("timeout", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := Dial(tctx, &Config{Dir: dir}, 7, "p")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, before, storeTree(t, dir))
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errc := dialAsync(cctx, "p")
		waitRequest(t, dir, 7, "p")
		cancel()
		require.ErrorIs(t, result(errc), context.Canceled)
		assert.Equal(t, before, storeTree(t, dir))
	})
	t.Run("bad ring", func(t *testing.T) {
		// A hostile listener answers with memory of another process.
		errc := dialAsync(ctx, "p")
		req := waitRequest(t, dir, 7, "p")
		require.NoError(t, os.WriteFile(filepath.Join(req, "event-channel"), []byte("4096\n"), 0o600))
		require.NoError(t, writeAtomic(filepath.Join(req, "ring-ref"), []byte("/proc/1/fd/3\n")))
		require.ErrorIs(t, result(errc), ErrProtocol)
		assert.Equal(t, before, storeTree(t, dir))
	})
	t.Run("listener closed", func(t *testing.T) {
		lq, err := Listen(ctx, &Config{Dir: dir, Domid: 7}, "q")
		require.NoError(t, err)
		errc := dialAsync(ctx, "q")
		waitRequest(t, dir, 7, "q")
		require.NoError(t, lq.Close())
		require.ErrorIs(t, result(errc), ErrRefused)
		assert.Equal(t, before, storeTree(t, dir))
	})
	t.Run("listener died", func(t *testing.T) {
		p := startHelper(t, "listen", dir)
		m := p.WaitLine(t, regexp.MustCompile(`^ready (\d+)$`), 30*time.Second)
		srv, _ := strconv.Atoi(m[1])
		errc := make(chan error, 1)
		go func() { _, err := Dial(ctx, &Config{Dir: dir}, srv, "p"); errc <- err }()
		waitRequest(t, dir, srv, "p")
		require.NoError(t, p.Signal(os.Kill))
		<-p.Exited()
		require.ErrorIs(t, result(errc), ErrPeerDied)
		// The dead listener's domain stays until someone cleans the
		// store; nothing of the dial is in it or elsewhere.
		after := storeTree(t, dir)
		assert.Contains(t, after, m[1]+"/data/vchan/")
		assert.Equal(t, before, slices.DeleteFunc(after, func(s string) bool { return strings.HasPrefix(s, m[1]+"/") }))
	})
	// A client killed between creating its data/vchan/CLIENT directory
	// and posting its request leaves it empty: the next Listen removes it.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "7", "data", "vchan", "9"), 0o700))
	l2, err := Listen(ctx, &Config{Dir: dir}, "other")
	require.NoError(t, err)
	defer l2.Close()
	assert.NoDirExists(t, filepath.Join(dir, "7", "data", "vchan", "9"))
}

// helperAsNobody returns a command prefix that runs the test binary as
// user nobody: a copy of it that nobody may execute, started through
// setpriv(1).
func helperAsNobody(t *testing.T) []string {
	setpriv := testutil.RequirePeer(t, "setpriv", "util-linux")
	bin, err := os.MkdirTemp("", "vchan-bin-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(bin) }) // after the helpers are killed
	require.NoError(t, os.Chmod(bin, 0o755))
	src, err := os.Open(os.Args[0])
	require.NoError(t, err)
	defer src.Close()
	exe := filepath.Join(bin, "vchan.test")
	dst, err := os.OpenFile(exe, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	id := strconv.Itoa(nobody)
	return []string{setpriv, "--reuid=" + id, "--regid=" + id, "--clear-groups", exe}
}

// startHelperVia is startHelper with the test binary run through a
// command prefix (nil: directly).
func startHelperVia(t *testing.T, prefix []string, mode, dir string, env ...string) *testutil.Process {
	if prefix == nil {
		return startHelper(t, mode, dir, env...)
	}
	t.Setenv(helperEnv, mode)
	t.Setenv(helperDir, dir)
	for i := 0; i+1 < len(env); i += 2 {
		t.Setenv(env[i], env[i+1])
	}
	p := testutil.StartProcess(t, prefix[0], append(slices.Clone(prefix[1:]), "-test.run=^$")...)
	os.Unsetenv(helperEnv)
	return p
}

// assertOnlyListener checks that the store holds the listener's domain
// srv and no request, and no other domain.
func assertOnlyListener(t *testing.T, dir string, srv int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{".lock", "names", strconv.Itoa(srv)}, names)
	reqs, err := os.ReadDir(filepath.Join(dir, strconv.Itoa(srv), "data", "vchan"))
	require.NoError(t, err)
	assert.Empty(t, reqs)
}

// TestDialListenerNotDumpable: a dial to a listener whose shared memory
// this process may not open (here a non-dumpable process, whose /proc
// files the kernel gives to root) fails at once with a permission error,
// not at the timeout, and leaves nothing in the store. Root may open any
// process's memory, so as root the listener and the dialer both run as
// user nobody.
func TestDialListenerNotDumpable(t *testing.T) {
	store := testStore(t)
	var prefix []string
	if os.Geteuid() == 0 {
		prefix = helperAsNobody(t)
		require.NoError(t, os.Chmod(store, 0o755))
		store = filepath.Join(store, "nobody")
		require.NoError(t, os.Mkdir(store, 0o700))
		require.NoError(t, os.Chown(store, nobody, nobody))
	}
	lp := startHelperVia(t, prefix, "listen-nodump", store)
	m := lp.WaitLine(t, regexp.MustCompile(`^ready (\d+)$`), 30*time.Second)
	srv, _ := strconv.Atoi(m[1])

	var permission, deadline bool
	var msg string
	if prefix == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := Dial(ctx, &Config{Dir: store}, srv, "p")
		require.Error(t, err)
		permission, deadline, msg = errors.Is(err, fs.ErrPermission), errors.Is(err, context.DeadlineExceeded), err.Error()
	} else {
		dp := startHelperVia(t, prefix, "dial", store, helperDomid, m[1])
		d := dp.WaitLine(t, regexp.MustCompile(`^dialed permission=(\w+) deadline=(\w+) err=(.*)$`), 60*time.Second)
		permission, deadline, msg = d[1] == "true", d[2] == "true", d[3]
	}
	assert.True(t, permission, "not a permission error: %s", msg)
	assert.False(t, deadline, "the dial waited for its deadline: %s", msg)
	owner, err := readProc(filepath.Join(store, m[1], "pid"))
	require.NoError(t, err)
	assert.Contains(t, msg, fmt.Sprintf("cannot open the shared memory of the listener (pid %d), which runs as another user or is not dumpable: open /proc/%d/fd/", owner.pid, owner.pid))
	assert.Contains(t, msg, "permission denied")
	assertOnlyListener(t, store, srv)
}

// TestDialListenerOtherUser: a listener that dropped root for another
// user after Listen (as a daemon does) can no longer read root's
// connection requests; root's dial fails at once with a permission
// error instead of waiting for the timeout.
func TestDialListenerOtherUser(t *testing.T) {
	testutil.RequireRoot(t, "a listener that drops root for another user")
	store := testStore(t)
	p := startHelper(t, "listen-drop", store)
	m := p.WaitLine(t, regexp.MustCompile(`^ready (\d+)$`), 30*time.Second)
	srv, _ := strconv.Atoi(m[1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Dial(ctx, &Config{Dir: store}, srv, "p")
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrPermission)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "runs as uid 65534 and cannot read the requests of this user (uid 0)")
	assertOnlyListener(t, store, srv)
}

// TestDomidZero: domid 0 is never a domain: Listen allocates one for it
// (and reports it), Dial refuses it with a message that says so.
func TestDomidZero(t *testing.T) {
	dir := testStore(t)
	ctx := context.Background()
	l, err := Listen(ctx, &Config{Dir: dir, Domid: 0}, "p")
	require.NoError(t, err)
	defer l.Close()
	assert.GreaterOrEqual(t, l.Domid(), 1)
	assert.Equal(t, fmt.Sprintf("vchan://%d/p", l.Domid()), l.Addr().String())
	assert.Equal(t, l.Domid(), l.Addr().(*Addr).Domain())
	_, err = Dial(ctx, &Config{Dir: dir}, 0, "p")
	var ve *Error
	require.ErrorAs(t, err, &ve)
	assert.Contains(t, err.Error(), "invalid domid 0 (0 only allocates a domid to listen on; dial the domid the listener reports, 1..32751)")
	for _, d := range []int{-1, maxDomid + 1} {
		_, err = Dial(ctx, &Config{Dir: dir}, d, "p")
		assert.ErrorContains(t, err, fmt.Sprintf("invalid domid %d (want 1..32751)", d))
	}
}
