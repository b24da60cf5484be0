package vchan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// newDoorbell creates a listener's doorbell: a sealed one-page memfd
// whose first word is the futex the listener sleeps on.
func newDoorbell() (*os.File, []byte, error) {
	f, err := newSealedMemory("conduit-vchan-doorbell", pageSize)
	if err != nil {
		return nil, nil, err
	}
	mem, err := mapFile(f, pageSize)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, mem, nil
}

// doorbell is a listener's doorbell as a client maps it.
type doorbell struct{ mem []byte }

// openDoorbell maps the listener's doorbell behind a doorbell entry (a
// reference to the owner's sealed memfd). A doorbell this process may not
// open (the listener runs as another user, or is not dumpable) fails with
// an error matching fs.ErrPermission.
func openDoorbell(path string, owner procID) (*doorbell, error) {
	ref, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, _, err := openSealed(string(ref), owner, pageSize, pageSize)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			err = &accessError{msg: fmt.Sprintf("cannot open the shared memory of the listener (pid %d), which runs as another user or is not dumpable", owner.pid), err: err}
		}
		return nil, err
	}
	defer f.Close()
	mem, err := mapFile(f, pageSize)
	if err != nil {
		return nil, err
	}
	return &doorbell{mem: mem}, nil
}

// ring wakes the listener.
func (d *doorbell) ring() { futexEvent{peer: word(d.mem, 0)}.signal() }

// close unmaps the doorbell.
func (d *doorbell) close() { unix.Munmap(d.mem) }
