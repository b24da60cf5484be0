package vchan

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The shared memory of a connection (a sealed memfd of the server,
// published in the request directory as ring-ref = "/proc/PID/fd/N"):
//
//	page 0                  control page (struct vchan_interface, with
//	                        rings of order 10/11 inside it)
//	pages 1..               the pages of rings of order >= 12, left's
//	                        first; a grant is the page's index in the file
//	last page (event page)  offset given by event-channel:
//	    +0  u32 server futex word (the client bumps it to signal)
//	    +4  u32 client futex word
//	    +8  u32 server write shutdown (CloseWrite)
//	    +12 u32 client write shutdown
const (
	evSrvFutex = 0
	evCliFutex = 4
	evExt      = 8
	// maxFileSize bounds what a client maps: the control page, two
	// rings of MaxOrder and the event page.
	maxFileSize = (2 + 2<<(MaxOrder-pageShift)) * pageSize
)

// shmBackend is the backend over a shared mapping between processes.
type shmBackend struct {
	ev   futexEvent
	peer procID

	mu       sync.RWMutex // write-held by release; read-held by kick and signal
	mem      []byte
	ref      *os.File // server: the memfd, open until the client has opened it
	released bool
}

// dropRef closes the memfd the store's ring-ref names: the client has
// opened it (or given up), and the mapping lives on without it.
func (b *shmBackend) dropRef() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ref != nil {
		b.ref.Close()
		b.ref = nil
	}
}

func (b *shmBackend) prepare() uint32                  { return b.ev.prepare() }
func (b *shmBackend) wait(tok uint32, d time.Duration) { b.ev.wait(tok, d) }
func (b *shmBackend) peerAlive() bool                  { return b.peer.alive() }

func (b *shmBackend) signal() {
	b.mu.RLock()
	if !b.released {
		b.ev.signal()
	}
	b.mu.RUnlock()
}

func (b *shmBackend) kick() {
	b.mu.RLock()
	if !b.released {
		b.ev.kick()
	}
	b.mu.RUnlock()
}

func (b *shmBackend) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.released {
		return nil
	}
	b.released = true
	if b.ref != nil {
		b.ref.Close()
		b.ref = nil
	}
	return unix.Munmap(b.mem)
}

func mapFile(f *os.File, size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

// createRing lays out and maps a new shared memfd, as the server, with
// the server's read (left) and write (right) orders chosen as libxenvchan
// does. The memfd is sealed against resizing before it is mapped. It
// writes event-channel and then ring-ref (the memfd's /proc reference) in
// dir; the returned backend keeps the memfd open until dropRef.
func createRing(dir string, readOrder, writeOrder int, client procID) (shared, *shmBackend, error) {
	left, right := chooseOrders(1<<readOrder, 1<<writeOrder)
	lp, rp, err := placeRings(left, right)
	if err != nil {
		return shared{}, nil, err
	}
	npages := 1 + lp.pages + rp.pages + 1
	evOff := (npages - 1) * pageSize
	f, err := newSealedMemory("conduit-vchan-ring", npages*pageSize)
	if err != nil {
		return shared{}, nil, err
	}
	mem, err := mapFile(f, npages*pageSize)
	if err != nil {
		f.Close()
		return shared{}, nil, err
	}
	grants := make([]uint32, 0, lp.pages+rp.pages)
	for i := range lp.pages + rp.pages {
		grants = append(grants, uint32(1+i))
	}
	writeHeader(mem, left, right, grants)
	m := sharedFromMapping(mem, lp, rp, grants, evOff)
	b := &shmBackend{
		ev:   futexEvent{mine: word(mem, evOff+evSrvFutex), peer: word(mem, evOff+evCliFutex)},
		peer: client,
		mem:  mem,
		ref:  f,
	}
	err = os.WriteFile(filepath.Join(dir, "event-channel"), []byte(strconv.Itoa(evOff)+"\n"), 0o600)
	if err == nil {
		err = writeAtomic(filepath.Join(dir, "ring-ref"), []byte(memRef(f)))
	}
	if err != nil {
		b.release()
		return shared{}, nil, err
	}
	return m, b, nil
}

func sharedFromMapping(mem []byte, lp, rp ringPlacement, grants []uint32, evOff int) shared {
	ring := func(p ringPlacement) []byte {
		if p.inPage != 0 {
			return mem[p.inPage : p.inPage+1<<p.order : p.inPage+1<<p.order]
		}
		start := int(grants[p.grant0]) * pageSize
		return mem[start : start+1<<p.order : start+1<<p.order]
	}
	return shared{
		page:  mem[:pageSize:pageSize],
		left:  ring(lp),
		right: ring(rp),
		ext:   mem[evOff+evExt : evOff+evExt+extSize : evOff+evExt+extSize],
	}
}

// openRing maps the shared memory a server published in dir, as the
// client, validating everything about it: the server is not trusted. The
// memory must be a memfd sealed against resizing (openSealed), else the
// server could truncate it under our mapping.
func openRing(dir string, server procID) (shared, *shmBackend, error) {
	ref, err := os.ReadFile(filepath.Join(dir, "ring-ref"))
	if err != nil {
		return shared{}, nil, err
	}
	evb, err := os.ReadFile(filepath.Join(dir, "event-channel"))
	if err != nil {
		return shared{}, nil, err
	}
	evOff, err := strconv.Atoi(strings.TrimSpace(string(evb)))
	if err != nil {
		return shared{}, nil, protocolErrorf("event-channel %q is not a number", evb)
	}
	f, size, err := openSealed(string(ref), server, 2*pageSize, maxFileSize)
	if err != nil {
		return shared{}, nil, err
	}
	defer f.Close()
	if evOff < pageSize || evOff%pageSize != 0 || int64(evOff+pageSize) > size {
		return shared{}, nil, protocolErrorf("event page at %d in a file of %d bytes", evOff, size)
	}
	mem, err := mapFile(f, int(size))
	if err != nil {
		return shared{}, nil, err
	}
	m, err := parseHeader(mem, evOff)
	if err != nil {
		unix.Munmap(mem)
		return shared{}, nil, err
	}
	b := &shmBackend{
		ev:   futexEvent{mine: word(mem, evOff+evCliFutex), peer: word(mem, evOff+evSrvFutex)},
		peer: server,
		mem:  mem,
	}
	return m, b, nil
}

// parseHeader reads the orders and grants of a mapped shared file once
// (they are constant after setup; later changes by the peer are never
// read) and checks that every ring lies inside the mapping.
func parseHeader(mem []byte, evOff int) (shared, error) {
	orders := binary.LittleEndian.Uint32(mem[offLeftOrder:])
	lp, rp, err := placeRings(int(orders&0xffff), int(orders>>16))
	if err != nil {
		return shared{}, err
	}
	npages := len(mem) / pageSize
	grants := make([]uint32, lp.pages+rp.pages)
	for i := range grants {
		grants[i] = binary.LittleEndian.Uint32(mem[offGrants+4*i:])
	}
	for _, p := range []ringPlacement{lp, rp} {
		if p.pages == 0 {
			continue
		}
		g0 := grants[p.grant0]
		for i := range p.pages {
			if grants[p.grant0+i] != g0+uint32(i) {
				return shared{}, protocolErrorf("grants of a ring are not consecutive pages")
			}
		}
		if g0 < 1 || int64(g0)+int64(p.pages) > int64(npages) {
			return shared{}, protocolErrorf("ring pages %d..%d outside the %d-page file", g0, int64(g0)+int64(p.pages), npages)
		}
	}
	return sharedFromMapping(mem, lp, rp, grants, evOff), nil
}
