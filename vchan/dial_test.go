package vchan

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testStore returns a fresh store directory, on tmpfs when there is one.
func testStore(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "vchan-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func shmPair(t testing.TB, cfg *Config) (srv, cli *Conn) {
	t.Helper()
	ctx := context.Background()
	l, err := Listen(ctx, cfg, "p")
	require.NoError(t, err)
	defer l.Close()
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := l.AcceptVchan(); ch <- res{c, err} }()
	cli, err = Dial(ctx, cfg, l.Domid(), "p")
	require.NoError(t, err)
	r := <-ch
	require.NoError(t, r.err)
	t.Cleanup(func() { r.c.Close(); cli.Close() })
	return r.c, cli
}

func TestShmRoundTrip(t *testing.T) {
	dir := testStore(t)
	for _, o := range [][2]int{{0, 0}, {10, 10}, {11, 10}, {11, 11}, {12, 20}} {
		t.Run(strconv.Itoa(o[0])+"-"+strconv.Itoa(o[1]), func(t *testing.T) {
			srv, cli := shmPair(t, &Config{Dir: dir, ReadOrder: o[0], WriteOrder: o[1]})
			_, err := cli.Write([]byte("ping"))
			require.NoError(t, err)
			buf := make([]byte, 4)
			_, err = io.ReadFull(srv, buf)
			require.NoError(t, err)
			assert.Equal(t, "ping", string(buf))
			_, err = srv.Write([]byte("pong"))
			require.NoError(t, err)
			require.NoError(t, srv.CloseWrite())
			got, err := io.ReadAll(cli)
			require.NoError(t, err)
			assert.Equal(t, "pong", string(got))
			assert.Equal(t, "vchan", cli.RemoteAddr().Network())
			assert.Equal(t, cli.LocalAddr().String(), srv.RemoteAddr().String())
		})
	}
	// Nothing of the connections is left in the store once closed.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() && e.Name() != "names" {
			t.Errorf("left in the store: %s", e.Name())
		}
	}
}

func TestDialName(t *testing.T) {
	dir := testStore(t)
	ctx := context.Background()
	l, err := Listen(ctx, &Config{Dir: dir, Name: "web"}, "http")
	require.NoError(t, err)
	defer l.Close()
	assert.Equal(t, "vchan://web/http", l.Addr().String())

	_, err = Listen(ctx, &Config{Dir: dir, Name: "web"}, "other")
	assert.ErrorIs(t, err, ErrInUse, "a live domain holds the name")

	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		c.Write([]byte("hi"))
		c.Close()
	}()
	c, err := DialName(ctx, &Config{Dir: dir}, "web", "http")
	require.NoError(t, err)
	defer c.Close()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "hi", string(got))
	assert.Equal(t, l.Domid(), c.RemoteAddr().(*Addr).Domid)
}

func TestDialErrors(t *testing.T) {
	dir := testStore(t)
	ctx := context.Background()
	l, err := Listen(ctx, &Config{Dir: dir, Domid: 7}, "open")
	require.NoError(t, err)
	defer l.Close()
	cfg := &Config{Dir: dir}
	for _, tc := range []struct {
		name string
		dial func() error
		want error
	}{
		{"no such domain", func() error { _, err := Dial(ctx, cfg, 99, "open"); return err }, ErrRefused},
		{"no such port", func() error { _, err := Dial(ctx, cfg, 7, "closed"); return err }, ErrRefused},
		{"no such name", func() error { _, err := DialName(ctx, cfg, "nobody", "open"); return err }, ErrRefused},
		{"bad port", func() error { _, err := Dial(ctx, cfg, 7, "a/b"); return err }, nil},
		{"bad domid", func() error { _, err := Dial(ctx, cfg, 0, "open"); return err }, nil},
		{"cancelled", func() error {
			c, cancel := context.WithCancel(ctx)
			cancel()
			_, err := Dial(c, cfg, 7, "open")
			return err
		}, context.Canceled},
		{"no accept", func() error {
			c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			_, err := Dial(c, cfg, 7, "open")
			return err
		}, context.DeadlineExceeded},
		{"port in use", func() error { _, err := Listen(ctx, &Config{Dir: dir, Domid: 7}, "open"); return err }, ErrInUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.dial()
			require.Error(t, err)
			var ve *Error
			assert.ErrorAs(t, err, &ve)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestListenerClose(t *testing.T) {
	dir := testStore(t)
	l, err := Listen(context.Background(), &Config{Dir: dir}, "p")
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, l.Close())
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	assert.ErrorIs(t, l.Close(), net.ErrClosed)
	_, err = Dial(context.Background(), &Config{Dir: dir}, l.Domid(), "p")
	assert.ErrorIs(t, err, ErrRefused)
}

// TestStaleEntries plants the entries of a dead process and checks they
// are reclaimed.
func TestStaleEntries(t *testing.T) {
	dir := testStore(t)
	st, err := openStore(dir)
	require.NoError(t, err)
	dead := procID{pid: deadPid(t), start: 1}
	require.NoError(t, os.MkdirAll(st.listenPath(5, "p"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(st.domDir(5), "pid"), []byte(dead.String()), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "names", "ghost"), []byte("5\n"), 0o600))

	l, err := Listen(context.Background(), &Config{Dir: dir, Domid: 5, Name: "ghost"}, "p")
	require.NoError(t, err, "stale domid, port and name are reclaimed")
	defer l.Close()
	p, err := st.owner(5)
	require.NoError(t, err)
	assert.Equal(t, selfProc(), p)
}

// deadPid returns the pid of a process that has exited.
func deadPid(t testing.TB) int {
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	require.NoError(t, err)
	_, err = p.Wait()
	require.NoError(t, err)
	return p.Pid
}

func TestConfigClone(t *testing.T) {
	var nilCfg *Config
	assert.Nil(t, nilCfg.Clone())
	c := &Config{Dir: "x", Domid: 3, ReadOrder: 12}
	d := c.Clone()
	d.Domid = 4
	assert.Equal(t, 3, c.Domid)
	_, _, err := (&Config{ReadOrder: 9}).orders()
	assert.Error(t, err)
	t.Setenv("CONDUIT_VCHAN_DIR", "/some/dir")
	assert.Equal(t, "/some/dir", nilCfg.dir())
	assert.True(t, errors.Is(ErrPeerDied, net.ErrClosed))
}
