package vchan

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// memChannel is the in-memory backend: both ends in one process, the
// "grant pages" plain Go memory and the event channels broadcast
// channels. Tests use it to drive the ring code directly and to play a
// hostile peer by writing to page.
type memChannel struct {
	m     shared
	ev    [2]memEvent // [0] the server waits on, [1] the client waits on
	alive [2]atomic.Bool
}

// alignedBytes returns n zero bytes aligned to 8.
func alignedBytes(n int) []byte {
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n)
}

// newMemChannel lays out a channel as a libxenvchan server would with
// the given orders (already chosen by chooseOrders or deliberately odd)
// and writes the server's initial header: orders, srv_live 1, cli_live 2
// (waiting), cli_notify asking for writes.
func newMemChannel(leftOrder, rightOrder int) (*memChannel, error) {
	l, r, err := placeRings(leftOrder, rightOrder)
	if err != nil {
		return nil, err
	}
	mc := &memChannel{}
	mc.m.page = alignedBytes(pageSize)
	mc.m.ext = alignedBytes(extSize)
	ringMem := func(p ringPlacement) []byte {
		if p.inPage != 0 {
			return mc.m.page[p.inPage : p.inPage+1<<p.order]
		}
		return alignedBytes(1 << p.order)
	}
	mc.m.left, mc.m.right = ringMem(l), ringMem(r)
	writeHeader(mc.m.page, leftOrder, rightOrder, nil)
	mc.alive[0].Store(true)
	mc.alive[1].Store(true)
	for i := range mc.ev {
		mc.ev[i].ch = make(chan struct{})
	}
	return mc, nil
}

// writeHeader initialises a control page as libxenvchan's init_gnt_srv
// does. grants may be nil when no ring needs separate pages.
func writeHeader(page []byte, leftOrder, rightOrder int, grants []uint32) {
	storeLE(word(page, offLeftOrder), uint32(leftOrder)|uint32(rightOrder)<<16)
	for i, g := range grants {
		storeLE(word(page, offGrants+4*i), g)
	}
	newFlagByte(page, offCliLive).store(liveWaiting)
	newFlagByte(page, offSrvLive).store(liveConnected)
	newFlagByte(page, offCliNotify).store(notifyWrite)
}

// ends returns the server's and the client's backends.
func (mc *memChannel) ends() (srv, cli *memBackend) {
	return &memBackend{mc: mc, side: 0}, &memBackend{mc: mc, side: 1}
}

// pair returns connected server and client Conns over mc.
func (mc *memChannel) pair(cfg *Config) (srv, cli *Conn) {
	sb, cb := mc.ends()
	sa := &Addr{Domid: 1, Port: "mem"}
	ca := &Addr{Domid: 2, Port: "mem"}
	srv = newConn(newEndpoint(true, mc.m, sb), sb, sa, ca, cfg, nil)
	ce := newEndpoint(false, mc.m, cb)
	ce.myLive.store(liveConnected)
	cli = newConn(ce, cb, ca, sa, cfg, nil)
	cb.signal()
	return srv, cli
}

// memEvent is a broadcast event with a sequence number, the in-memory
// counterpart of a futex word.
type memEvent struct {
	mu  sync.Mutex
	seq uint32
	ch  chan struct{} // closed and replaced on every signal
}

func (ev *memEvent) token() uint32 {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.seq
}

func (ev *memEvent) signal() {
	ev.mu.Lock()
	ev.seq++
	close(ev.ch)
	ev.ch = make(chan struct{})
	ev.mu.Unlock()
}

func (ev *memEvent) wait(tok uint32, d time.Duration) {
	ev.mu.Lock()
	if ev.seq != tok {
		ev.mu.Unlock()
		return
	}
	ch := ev.ch
	ev.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

type memBackend struct {
	mc   *memChannel
	side int
}

func (b *memBackend) prepare() uint32                  { return b.mc.ev[b.side].token() }
func (b *memBackend) wait(tok uint32, d time.Duration) { b.mc.ev[b.side].wait(tok, d) }
func (b *memBackend) signal()                          { b.mc.ev[1-b.side].signal() }
func (b *memBackend) kick()                            { b.mc.ev[b.side].signal() }
func (b *memBackend) peerAlive() bool                  { return b.mc.alive[1-b.side].Load() }
func (b *memBackend) release() error                   { return nil }

// kill simulates the death of one side's process (0 server, 1 client).
func (mc *memChannel) kill(side int) { mc.alive[side].Store(false) }
