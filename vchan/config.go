package vchan

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config configures Dial, DialName and Listen. A nil *Config is
// equivalent to a zero Config, and the zero Config works: it allocates a
// fresh domid in the default store with libxenvchan's default ring
// sizes. A Config must not be modified after it has been passed to
// Dial or Listen; use Clone to derive another.
type Config struct {
	// Dir is the rendezvous store directory. Empty means
	// $CONDUIT_VCHAN_DIR, else $XDG_RUNTIME_DIR/conduit-vchan, else
	// os.TempDir()/conduit-vchan-<uid>. All endpoints that talk to each
	// other must use the same store. It is created (mode 0700) if
	// missing, and refused with ErrUnsafeStore unless it is owned by this
	// user and not writable by group or others, and the directories
	// above it are owned by root or this user and not writable by others
	// (or sticky, as /tmp): see docs/vchan.md.
	Dir string
	// Domid is this endpoint's domain id, 1..32751. Zero allocates a
	// fresh, unused domid in the store for each listener and each
	// dialled connection (so Domid 0, Xen's dom0, cannot be chosen: no
	// domain of this backend is 0, and Dial refuses domid 0).
	// A domid is owned by one process: using one that a live process
	// holds fails with ErrInUse; one left by a dead process is reclaimed.
	Domid int
	// Name, if set, is registered for the listener's domain so that
	// DialName (vchan://NAME/PORT) finds it. Ignored by Dial.
	Name string
	// ReadOrder and WriteOrder are log2 of the sizes of the rings this
	// side reads from and writes to, MinOrder..MaxOrder (1 KiB..1 MiB).
	// As in libxenvchan the server (listener) chooses both rings; a
	// dialler's values are ignored. Zero means 20 (1 MiB: the bulk throughput between
	// processes is best with big rings; choose less to save memory). Orders 10
	// and 11 place the rings inside the control page, as libxenvchan does.
	ReadOrder, WriteOrder int
	// SpinTime is the longest a blocked Read or Write polls the ring
	// before sleeping on the futex. Zero means 50µs; negative disables
	// spinning. Within it the spin adapts: spins that keep failing (a
	// slow or descheduled peer) shrink it, down to none; waits the peer
	// ends soon grow it back.
	SpinTime time.Duration
	// LivenessInterval bounds how long a blocked call sleeps before
	// checking that the peer process is still alive, so a peer killed
	// with SIGKILL is noticed. Zero means 250ms.
	LivenessInterval time.Duration
}

// Clone returns a copy of c (nil for nil).
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	cc := *c
	return &cc
}

const defaultOrder = 20

func (c *Config) dir() string {
	if c != nil && c.Dir != "" {
		return c.Dir
	}
	if d := os.Getenv("CONDUIT_VCHAN_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "conduit-vchan")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("conduit-vchan-%d", os.Getuid()))
}

func (c *Config) orders() (read, write int, err error) {
	read, write = defaultOrder, defaultOrder
	if c != nil && c.ReadOrder != 0 {
		read = c.ReadOrder
	}
	if c != nil && c.WriteOrder != 0 {
		write = c.WriteOrder
	}
	for _, o := range []int{read, write} {
		if o < MinOrder || o > MaxOrder {
			return 0, 0, fmt.Errorf("vchan: ring order %d outside %d..%d", o, MinOrder, MaxOrder)
		}
	}
	return read, write, nil
}

func (c *Config) spinTime() time.Duration {
	if c == nil || c.SpinTime == 0 {
		return 50 * time.Microsecond
	}
	return max(c.SpinTime, 0)
}

func (c *Config) liveness() time.Duration {
	if c == nil || c.LivenessInterval <= 0 {
		return 250 * time.Millisecond
	}
	return c.LivenessInterval
}
