package vchan

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Shared memory is a memfd sealed against resizing before anyone maps it
// (the stand-in for a Xen grant, which cannot shrink either): a peer that
// ftruncates it gets EPERM instead of making our accesses fault with
// SIGBUS. The store publishes a reference to it, "/proc/PID/fd/N" of the
// process that created it, which keeps the descriptor open until the peer
// has opened the file (for a ring) or for as long as it listens (for a
// doorbell).

// requiredSeals are the seals a mapping must carry: it can neither shrink
// nor grow, and nobody can add or remove seals any more.
const requiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// newSealedMemory creates a memfd of size bytes and seals it.
func newSealedMemory(name string, size int) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, requiredSeals); err != nil {
		f.Close()
		return nil, os.NewSyscallError("fcntl F_ADD_SEALS", err)
	}
	return f, nil
}

// memRef is the store's reference to a memfd of this process.
func memRef(f *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d\n", os.Getpid(), f.Fd())
}

// parseMemRef checks that ref is "/proc/PID/fd/N" with PID the owner's
// and returns the path rebuilt from the numbers.
func parseMemRef(ref string, owner procID) (string, error) {
	parts := strings.Split(strings.TrimSpace(ref), "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "proc" || parts[3] != "fd" {
		return "", protocolErrorf("shared memory reference %q is not /proc/PID/fd/N", ref)
	}
	pid, err1 := strconv.Atoi(parts[2])
	fd, err2 := strconv.Atoi(parts[4])
	if err1 != nil || err2 != nil || fd < 0 {
		return "", protocolErrorf("shared memory reference %q is not /proc/PID/fd/N", ref)
	}
	if pid != owner.pid {
		return "", protocolErrorf("shared memory reference %q names pid %d, not the peer's %d", ref, pid, owner.pid)
	}
	return fmt.Sprintf("/proc/%d/fd/%d", pid, fd), nil
}

// openSealed opens the shared memory a peer published as ref and checks,
// before anything maps it, that it is a regular file carrying
// requiredSeals (so it can never shrink under our mapping) and that its
// size is within [minSize, maxSize]. An unsealed file is refused with
// ErrProtocol.
func openSealed(ref string, owner procID, minSize, maxSize int64) (*os.File, int64, error) {
	path, err := parseMemRef(ref, owner)
	if err != nil {
		return nil, 0, err
	}
	// O_NONBLOCK: the reference might name a FIFO or a device; opening
	// must not block on it (it is refused below).
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, 0, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, 0, os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, 0, protocolErrorf("shared memory %s is not a regular file", path)
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, 0, protocolErrorf("shared memory %s is not sealable (%v): the peer could shrink it", path, err)
	}
	if seals&requiredSeals != requiredSeals {
		return nil, 0, protocolErrorf("shared memory %s has seals %#x, want %#x: the peer could resize it", path, seals, requiredSeals)
	}
	// Size after the seals: it can no longer change.
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, 0, os.NewSyscallError("fstat", err)
	}
	if st.Size < minSize || st.Size > maxSize || st.Size%pageSize != 0 {
		return nil, 0, protocolErrorf("shared memory of %d bytes", st.Size)
	}
	ok = true
	return f, st.Size, nil
}
