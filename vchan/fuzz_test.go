package vchan

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzHostilePeer lets a peer write arbitrary values into every header
// word while we read and write: no panic, no out-of-bounds access, no
// hang (every call is bounded by a deadline).
func FuzzHostilePeer(f *testing.F) {
	f.Add(uint32(0), uint32(5), uint32(0), uint32(0), uint32(0x01010101))
	f.Add(uint32(0), uint32(1025), uint32(7), uint32(0xffffffff), uint32(0))
	f.Add(uint32(3), uint32(0x80000000), uint32(0), uint32(2048), uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, lc, lp, rc, rp, flags uint32) {
		mc, err := newMemChannel(10, 11)
		if err != nil {
			t.Fatal(err)
		}
		srv, cli := mc.pair(&Config{SpinTime: -1, LivenessInterval: time.Millisecond})
		defer cli.Close()
		defer srv.Close()
		for off, v := range map[int]uint32{offLeftCons: lc, offLeftProd: lp, offRightCons: rc, offRightProd: rp, offFlagsWord: flags} {
			atomic.StoreUint32(word(mc.m.page, off), v)
		}
		srv.SetDeadline(time.Now().Add(time.Millisecond))
		buf := make([]byte, 4096)
		for range 3 {
			n, err := srv.Read(buf)
			if n < 0 || n > len(buf) || err == nil && n == 0 {
				t.Fatalf("Read = %d, %v", n, err)
			}
			if err != nil && err != io.EOF && !errors.Is(err, ErrProtocol) && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read: unexpected error %v", err)
			}
			n, err = srv.Write(buf[:3000])
			if n < 0 || n > 3000 || err == nil && n != 3000 {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
	})
}

// FuzzParseHeader feeds arbitrary control pages to the client's parser.
func FuzzParseHeader(f *testing.F) {
	f.Add(uint16(10), uint16(11), uint32(0), 2)
	f.Add(uint16(16), uint16(20), uint32(1), 2+16+256)
	f.Add(uint16(12), uint16(12), uint32(0xffffffff), 3)
	f.Fuzz(func(t *testing.T, lo, ro uint16, g0 uint32, npages int) {
		if npages < 2 || npages > 2+2*256 {
			return
		}
		mem := alignedBytes(npages * pageSize)
		binary.LittleEndian.PutUint16(mem[offLeftOrder:], lo)
		binary.LittleEndian.PutUint16(mem[offRightOrder:], ro)
		for i := range (pageSize - offGrants) / 4 {
			binary.LittleEndian.PutUint32(mem[offGrants+4*i:], g0+uint32(i))
		}
		m, err := parseHeader(mem, (npages-1)*pageSize)
		if err != nil {
			return
		}
		for _, r := range [][]byte{m.left, m.right} {
			if len(r) < 1<<MinOrder || len(r)&(len(r)-1) != 0 {
				t.Fatalf("ring of %d bytes", len(r))
			}
			_ = r[len(r)-1]
		}
	})
}
