package vchan

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestHostileTruncate plays a hostile client that opens the server's
// shared memory (and a listener's doorbell) and ftruncates it, which on a
// plain file would make the server's next access fault with SIGBUS. The
// seals make the truncation fail with EPERM, and the mapping stays usable.
func TestHostileTruncate(t *testing.T) {
	dir := t.TempDir()
	m, be, err := createRing(dir, 12, 12, selfProc())
	require.NoError(t, err)
	defer be.release()
	ref, err := os.ReadFile(filepath.Join(dir, "ring-ref"))
	require.NoError(t, err)
	path, err := parseMemRef(string(ref), selfProc())
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_RDWR, 0) // what the peer can open
	require.NoError(t, err)
	defer f.Close()
	for _, size := range []int64{0, pageSize, 1 << 30} {
		err := f.Truncate(size)
		assert.ErrorIs(t, err, unix.EPERM, "truncate to %d", size)
	}
	_, err = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE)
	assert.ErrorIs(t, err, unix.EPERM, "adding seals")
	// Every page is still there.
	m.right[len(m.right)-1] = 1
	m.left[len(m.left)-1] = 1
	assert.EqualValues(t, 1, m.ext[len(m.ext)-1]+1)

	// The listener's doorbell likewise.
	sdir := testStore(t)
	l, err := Listen(context.Background(), &Config{Dir: sdir}, "p")
	require.NoError(t, err)
	defer l.Close()
	st, _ := openStore(sdir)
	bref, err := os.ReadFile(st.listenPath(l.Domid(), "p"))
	require.NoError(t, err)
	bpath, err := parseMemRef(string(bref), selfProc())
	require.NoError(t, err)
	bf, err := os.OpenFile(bpath, os.O_RDWR, 0)
	require.NoError(t, err)
	defer bf.Close()
	assert.ErrorIs(t, bf.Truncate(0), unix.EPERM)

	// And a connection survives a peer's attempt during the transfer.
	srv, cli := shmPair(t, &Config{Dir: sdir})
	go func() { cli.Write([]byte("still here")); cli.CloseWrite() }()
	got, err := io.ReadAll(srv)
	require.NoError(t, err)
	assert.Equal(t, "still here", string(got))
}

// TestRefuseUnsealed plays a hostile server that publishes shared memory
// it could still shrink: the client refuses it with ErrProtocol before
// mapping anything.
func TestRefuseUnsealed(t *testing.T) {
	self := selfProc()
	memfd := func(flags, seals int) *os.File {
		fd, err := unix.MemfdCreate("hostile", flags|unix.MFD_CLOEXEC)
		require.NoError(t, err)
		f := os.NewFile(uintptr(fd), "hostile")
		t.Cleanup(func() { f.Close() })
		require.NoError(t, f.Truncate(4*pageSize))
		if seals != 0 {
			_, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals)
			require.NoError(t, err)
		}
		return f
	}
	plain, err := os.CreateTemp(testStore(t), "plain")
	require.NoError(t, err)
	defer plain.Close()
	require.NoError(t, plain.Truncate(4*pageSize))
	good := memfd(unix.MFD_ALLOW_SEALING, requiredSeals)

	for _, tc := range []struct {
		name string
		ref  string
	}{
		{"unsealed memfd", memRef(memfd(unix.MFD_ALLOW_SEALING, 0))},
		{"only grow sealed", memRef(memfd(unix.MFD_ALLOW_SEALING, unix.F_SEAL_GROW|unix.F_SEAL_SEAL))},
		{"memfd without sealing", memRef(memfd(0, 0))},
		{"plain file", memRef(plain)},
		{"a directory", fmt.Sprintf("/proc/%d/cwd", os.Getpid())},
		{"another process", fmt.Sprintf("/proc/1/fd/%d", good.Fd())},
		{"a file name", "ring"},
		{"a path", "/dev/shm/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "ring-ref"), []byte(tc.ref), 0o600))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "event-channel"), []byte(strconv.Itoa(3*pageSize)), 0o600))
			_, _, err := openRing(dir, self)
			assert.ErrorIs(t, err, ErrProtocol)
		})
	}

	// A doorbell the server could shrink is refused too.
	dir := testStore(t)
	st, err := openStore(dir)
	require.NoError(t, err)
	dom, err := st.register(0)
	require.NoError(t, err)
	defer dom.release()
	bell := st.listenPath(dom.id, "p")
	require.NoError(t, os.MkdirAll(filepath.Dir(bell), 0o700))
	require.NoError(t, os.WriteFile(bell, []byte(memRef(memfd(unix.MFD_ALLOW_SEALING, 0))), 0o600))
	_, err = Dial(context.Background(), &Config{Dir: dir}, dom.id, "p")
	assert.ErrorIs(t, err, ErrProtocol)
}
