package vchan

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var fastCfg = &Config{LivenessInterval: 50 * time.Millisecond}

func memPair(t *testing.T, left, right int) (*memChannel, *Conn, *Conn) {
	t.Helper()
	mc, err := newMemChannel(left, right)
	require.NoError(t, err)
	srv, cli := mc.pair(fastCfg)
	t.Cleanup(func() { srv.Close(); cli.Close() })
	return mc, srv, cli
}

func TestChooseOrders(t *testing.T) {
	for _, tc := range []struct {
		leftMin, rightMin int
		left, right       int
	}{
		{0, 0, 10, 11},
		{1024, 2048, 10, 11},
		{2048, 1024, 11, 10},
		{2048, 2048, 11, 12},
		{1 << 16, 1024, 16, 11},
		{1 << 16, 1 << 20, 16, 20},
		{4097, 4096, 13, 12},
	} {
		l, r := chooseOrders(tc.leftMin, tc.rightMin)
		assert.Equal(t, [2]int{tc.left, tc.right}, [2]int{l, r}, "chooseOrders(%d, %d)", tc.leftMin, tc.rightMin)
		_, _, err := placeRings(l, r)
		assert.NoError(t, err)
	}
}

func TestPlaceRingsRejects(t *testing.T) {
	for _, tc := range []struct {
		name        string
		left, right int
	}{
		{"left too small", 9, 11},
		{"right too large", 11, 21},
		{"zero", 0, 0},
		{"both small", 10, 10},
		{"both large in page", 11, 11},
		{"grants over small ring", 10, 20},
		{"huge", 0xffff, 0xffff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := placeRings(tc.left, tc.right)
			assert.ErrorIs(t, err, ErrProtocol)
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ left, right int }{{10, 11}, {11, 10}, {12, 16}, {20, 20}} {
		_, srv, cli := memPair(t, tc.left, tc.right)
		_, err := cli.Write([]byte("hello"))
		require.NoError(t, err)
		buf := make([]byte, 16)
		n, err := srv.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, "hello", string(buf[:n]))
		_, err = srv.Writev(net.Buffers{[]byte("wor"), nil, []byte("ld")})
		require.NoError(t, err)
		n, err = io.ReadFull(cli, buf[:5])
		require.NoError(t, err)
		assert.Equal(t, "world", string(buf[:n]))
	}
}

// TestWrapAround pushes odd-sized chunks through a 1 KiB ring so that
// every offset wraps many times, with the reader lagging.
func TestWrapAround(t *testing.T) {
	_, srv, cli := memPair(t, 10, 11)
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, 300_000)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	errc := make(chan error, 1)
	go func() {
		rest := want
		for len(rest) > 0 {
			k := min(len(rest), 1+rng.IntN(1500))
			a := k / 3
			if _, err := cli.Writev(net.Buffers{rest[:a], rest[a:k]}); err != nil {
				errc <- err
				return
			}
			rest = rest[k:]
		}
		errc <- cli.CloseWrite()
	}()
	var got bytes.Buffer
	buf := make([]byte, 777)
	for {
		n, err := srv.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	require.NoError(t, <-errc)
	assert.True(t, bytes.Equal(want, got.Bytes()), "data differs")
}

func TestFullAndEmpty(t *testing.T) {
	_, srv, cli := memPair(t, 10, 11)
	// Empty: Read blocks until the deadline.
	srv.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	_, err := srv.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())

	// Full: the client's ring (left) holds exactly 1024 bytes.
	cli.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
	n, err := cli.Write(make([]byte, 3000))
	assert.Equal(t, 1024, n)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	// Freeing space lets the writer go on.
	cli.SetWriteDeadline(time.Time{})
	srv.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := cli.Write(make([]byte, 2000)); done <- err }()
	_, err = io.ReadFull(srv, make([]byte, 3024))
	require.NoError(t, err)
	require.NoError(t, <-done)
}

func TestHalfClose(t *testing.T) {
	_, srv, cli := memPair(t, 11, 10)
	_, err := cli.Write([]byte("request"))
	require.NoError(t, err)
	require.NoError(t, cli.CloseWrite())
	_, err = cli.Write([]byte("x"))
	assert.ErrorIs(t, err, net.ErrClosed)

	got, err := io.ReadAll(srv)
	require.NoError(t, err)
	assert.Equal(t, "request", string(got))

	// The other direction still works.
	_, err = srv.Write([]byte("response"))
	require.NoError(t, err)
	require.NoError(t, srv.Close())
	got, err = io.ReadAll(cli)
	require.NoError(t, err)
	assert.Equal(t, "response", string(got))
}

func TestPeerClose(t *testing.T) {
	_, srv, cli := memPair(t, 10, 11)
	_, err := srv.Write([]byte("bye"))
	require.NoError(t, err)
	require.NoError(t, srv.Close())
	assert.ErrorIs(t, srv.Close(), net.ErrClosed)

	_, err = cli.Write([]byte("x"))
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.ErrorIs(t, err, ErrPeerClosed)
	got, err := io.ReadAll(cli) // drains, then EOF
	require.NoError(t, err)
	assert.Equal(t, "bye", string(got))
}

func TestCloseUnblocks(t *testing.T) {
	_, srv, cli := memPair(t, 10, 11)
	_ = cli
	errc := make(chan error, 2)
	go func() { _, err := srv.Read(make([]byte, 1)); errc <- err }()
	go func() { _, err := srv.Write(make([]byte, 1<<20)); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, srv.Close())
	for range 2 {
		select {
		case err := <-errc:
			assert.ErrorIs(t, err, net.ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatal("blocked call did not return after Close")
		}
	}
}

func TestDeadlineChangeWakes(t *testing.T) {
	_, srv, _ := memPair(t, 10, 11)
	errc := make(chan error, 1)
	go func() { _, err := srv.Read(make([]byte, 1)); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	srv.SetReadDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not observe the new deadline")
	}
}

func TestPeerDies(t *testing.T) {
	for _, op := range []string{"read", "write"} {
		t.Run(op, func(t *testing.T) {
			mc, srv, _ := memPair(t, 10, 11)
			errc := make(chan error, 1)
			go func() {
				var err error
				if op == "read" {
					_, err = srv.Read(make([]byte, 1))
				} else {
					_, err = srv.Write(make([]byte, 1<<20))
				}
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			mc.kill(1)
			select {
			case err := <-errc:
				assert.ErrorIs(t, err, ErrPeerDied)
				assert.ErrorIs(t, err, net.ErrClosed)
			case <-time.After(5 * time.Second):
				t.Fatal("blocked call did not notice the dead peer")
			}
		})
	}
}

// TestHostileIndices has the client side scribble on the shared indices
// and checks the server fails cleanly.
func TestHostileIndices(t *testing.T) {
	for _, tc := range []struct {
		name  string
		off   int
		value func(old uint32) uint32
		op    string
	}{
		{"prod a ring ahead", offLeftProd, func(o uint32) uint32 { return o + 1025 }, "read"},
		{"prod far ahead", offLeftProd, func(o uint32) uint32 { return o + 0x80000000 }, "read"},
		{"prod behind", offLeftProd, func(o uint32) uint32 { return o - 1 }, "read"},
		{"cons ahead of prod", offRightCons, func(o uint32) uint32 { return o + 1 }, "write"},
		{"cons far behind", offRightCons, func(o uint32) uint32 { return o - 4096 }, "write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc, srv, _ := memPair(t, 10, 11)
			w := word(mc.m.page, tc.off)
			atomic.StoreUint32(w, tc.value(atomic.LoadUint32(w)))
			var err error
			if tc.op == "read" {
				_, err = srv.Read(make([]byte, 10))
			} else {
				_, err = srv.Write(make([]byte, 10))
			}
			assert.ErrorIs(t, err, ErrProtocol)
		})
	}
}

// TestHostileOwnIndex: a peer that overwrites the indices we own only
// confuses itself; we keep working from our copies.
func TestHostileOwnIndex(t *testing.T) {
	mc, srv, cli := memPair(t, 10, 11)
	_, err := cli.Write([]byte("abc"))
	require.NoError(t, err)
	atomic.StoreUint32(word(mc.m.page, offLeftCons), 12345) // the server's own index
	buf := make([]byte, 3)
	_, err = io.ReadFull(srv, buf)
	require.NoError(t, err)
	assert.Equal(t, "abc", string(buf))
}

func TestBulkBothWays(t *testing.T) {
	_, srv, cli := memPair(t, 16, 16)
	const size = 4 << 20
	send := func(c *Conn, seed uint64) ([32]byte, error) {
		rng := rand.New(rand.NewPCG(seed, seed))
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(buf) {
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			h.Write(buf)
			if _, err := c.Write(buf); err != nil {
				return [32]byte{}, err
			}
		}
		return [32]byte(h.Sum(nil)), c.CloseWrite()
	}
	recv := func(c *Conn) ([32]byte, int64, error) {
		h := sha256.New()
		n, err := io.Copy(h, c)
		return [32]byte(h.Sum(nil)), n, err
	}
	var wg sync.WaitGroup
	var sums [4][32]byte
	var errs [4]error
	var counts [2]int64
	wg.Add(4)
	go func() { defer wg.Done(); sums[0], errs[0] = send(cli, 1) }()
	go func() { defer wg.Done(); sums[1], errs[1] = send(srv, 2) }()
	go func() { defer wg.Done(); sums[2], counts[0], errs[2] = recv(srv) }()
	go func() { defer wg.Done(); sums[3], counts[1], errs[3] = recv(cli) }()
	wg.Wait()
	require.NoError(t, errors.Join(errs[:]...))
	assert.Equal(t, [2]int64{size, size}, counts)
	assert.Equal(t, sums[0], sums[2])
	assert.Equal(t, sums[1], sums[3])
}
