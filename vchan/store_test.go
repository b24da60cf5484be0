package vchan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSweepLeftovers plants the temporary entries a process killed in
// the middle of a store operation leaves, and checks that Listen's
// cleaning removes those of dead processes and keeps those in progress.
func TestSweepLeftovers(t *testing.T) {
	dir := testStore(t)
	st, err := openStore(dir)
	require.NoError(t, err)
	dom, err := st.register(0)
	require.NoError(t, err)
	defer dom.release()
	dead := procID{pid: deadPid(t), start: 1}
	deadName := func(prefix string) string { return fmt.Sprintf("%s%d.%d-0123abcd", prefix, dead.pid, dead.start) }
	reqs := filepath.Join(st.domDir(dom.id), "data", "vchan", "9")
	listen := filepath.Join(st.domDir(dom.id), "listen")
	require.NoError(t, os.MkdirAll(reqs, 0o700))
	require.NoError(t, os.MkdirAll(listen, 0o700))

	gone := []string{
		filepath.Join(dir, deadName(".trash-")),
		filepath.Join(dir, deadName(".new-")),
		filepath.Join(dir, "names", deadName(".tmp-")),
		filepath.Join(reqs, deadName(".req-")),
		filepath.Join(listen, deadName(".tmp-")),
		filepath.Join(dir, ".trash-0123456789abcdef"), // old-style name, old
	}
	kept := []string{
		filepath.Join(dir, randName(".trash-")), // ours: in progress
		filepath.Join(reqs, randName(".req-")),
		filepath.Join(dir, ".new-fedcba9876543210"), // old-style name, recent
	}
	for _, p := range append(append([]string{}, gone...), kept...) {
		require.NoError(t, os.MkdirAll(p, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(p, "pid"), []byte(dead.String()), 0o600))
	}
	old := time.Now().Add(-2 * legacyLeftoverAge)
	require.NoError(t, os.Chtimes(gone[len(gone)-1], old, old))

	l, err := Listen(context.Background(), &Config{Dir: dir}, "p")
	require.NoError(t, err)
	defer l.Close()
	for _, p := range gone {
		assert.NoFileExists(t, p)
		assert.NoDirExists(t, p)
	}
	for _, p := range kept {
		assert.DirExists(t, p)
	}
}

// TestLittleEndian: the shared words are little-endian on every host.
func TestLittleEndian(t *testing.T) {
	b := alignedBytes(pageSize)
	storeLE(word(b, offLeftProd), 0x01020304)
	assert.Equal(t, []byte{4, 3, 2, 1}, b[offLeftProd:offLeftProd+4])
	assert.EqualValues(t, 0x01020304, loadLE(word(b, offLeftProd)))
	writeHeader(b, 16, 11, []uint32{0x0a0b0c0d})
	assert.Equal(t, []byte{16, 0, 11, 0}, b[offLeftOrder:offLeftOrder+4])
	assert.Equal(t, []byte{0x0d, 0x0c, 0x0b, 0x0a}, b[offGrants:offGrants+4])
	assert.Equal(t, []byte{liveWaiting, liveConnected, notifyWrite, 0}, b[offCliLive:offCliLive+4])
}
