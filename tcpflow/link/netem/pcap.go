package netem

import (
	"encoding/binary"
	"io"
	"sync"
	"time"
)

// Pcap writes the packets of a wire to w in the pcap format (link type
// 101, raw IP), for tcpdump or Wireshark: set Config.Tap to its Tap
// method. A Pcap is safe for concurrent use; it keeps the first write
// error, which Err returns, and writes nothing after it.
type Pcap struct {
	mu      sync.Mutex
	w       io.Writer
	dirs    map[Dir]bool // the directions recorded; nil: both
	snaplen int
	started bool
	err     error
	rec     []byte
}

// NewPcap returns a Pcap writing to w the first snaplen bytes of each
// packet (all of it if snaplen is zero) of the directions given (both
// if none).
func NewPcap(w io.Writer, snaplen int, dirs ...Dir) *Pcap {
	p := &Pcap{w: w, snaplen: snaplen}
	if p.snaplen <= 0 {
		p.snaplen = 65535
	}
	if len(dirs) > 0 {
		p.dirs = map[Dir]bool{}
		for _, d := range dirs {
			p.dirs[d] = true
		}
	}
	return p
}

// Tap records pkt, offered to direction dir at the time at.
func (p *Pcap) Tap(dir Dir, at time.Time, pkt []byte) {
	if p.dirs != nil && !p.dirs[dir] {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	if !p.started {
		p.started = true
		var h [24]byte
		binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d) // nanosecond timestamps
		binary.LittleEndian.PutUint16(h[4:], 2)
		binary.LittleEndian.PutUint16(h[6:], 4)
		binary.LittleEndian.PutUint32(h[16:], uint32(p.snaplen))
		binary.LittleEndian.PutUint32(h[20:], 101) // LINKTYPE_RAW
		if _, p.err = p.w.Write(h[:]); p.err != nil {
			return
		}
	}
	n := min(len(pkt), p.snaplen)
	ns := at.UnixNano()
	p.rec = binary.LittleEndian.AppendUint32(p.rec[:0], uint32(ns/1e9))
	p.rec = binary.LittleEndian.AppendUint32(p.rec, uint32(ns%1e9))
	p.rec = binary.LittleEndian.AppendUint32(p.rec, uint32(n))
	p.rec = binary.LittleEndian.AppendUint32(p.rec, uint32(len(pkt)))
	p.rec = append(p.rec, pkt[:n]...)
	_, p.err = p.w.Write(p.rec)
}

// Err returns the first error writing to w.
func (p *Pcap) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
