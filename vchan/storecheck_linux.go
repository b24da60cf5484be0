package vchan

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// storeFix is the end of every unsafe-store message: where else a store
// can be put.
const storeFix = "or use another store (--vchan-dir or $CONDUIT_VCHAN_DIR)"

// storeError says why a store directory is refused and how to fix it. It
// matches ErrUnsafeStore and fs.ErrPermission.
type storeError struct{ msg string }

func (e *storeError) Error() string { return "vchan: " + e.msg }

func (e *storeError) Is(target error) bool {
	return target == ErrUnsafeStore || target == fs.ErrPermission
}

func unsafeStore(format string, args ...any) error {
	return &storeError{fmt.Sprintf(format, args...)}
}

// checkStore refuses a store that another user could change, as ssh's
// StrictModes refuses a ~/.ssh that others can write:
//
//   - the store directory must be owned by this process's effective user
//     and not writable by its group or by others (whatever its sticky bit:
//     anyone who can create entries in it can register domains and names);
//   - every directory above it, on the path as given and on the path its
//     symbolic links resolve to, must be owned by root or by this user, and
//     either not writable by group and others or sticky (as /tmp and
//     /dev/shm are), so that nobody else can rename the store away and put
//     one of their own in its place.
//
// The entries inside the store are not checked one by one: only this user
// (and root) can create them, always with mode 0700 or 0600.
func checkStore(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	euid := os.Geteuid()
	st, err := statDir(real)
	if err != nil {
		return err
	}
	shown := abs
	if real != abs {
		shown = abs + " (" + real + ")"
	}
	mode := st.Mode & 0o7777
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFDIR:
		return unsafeStore("store %s is not a directory; %s", shown, storeFix)
	case int(st.Uid) != euid:
		return unsafeStore("store %s is owned by uid %d, not by this user (uid %d): chown %d %s %s",
			shown, st.Uid, euid, euid, real, storeFix)
	case st.Mode&0o022 != 0:
		return unsafeStore("store %s is writable by %s (mode %04o): chmod 700 %s %s",
			shown, writers(st.Mode), mode, real, storeFix)
	}
	seen := map[string]bool{}
	for _, start := range []string{abs, real} {
		for p := filepath.Dir(start); !seen[p]; p = filepath.Dir(p) {
			seen[p] = true
			if err := checkAncestor(shown, p, euid); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAncestor checks directory p above the store (shown as store).
func checkAncestor(store, p string, euid int) error {
	st, err := statDir(p)
	if err != nil {
		return err
	}
	mode := st.Mode & 0o7777
	switch {
	case st.Uid != 0 && int(st.Uid) != euid:
		return unsafeStore("store %s is inside %s, which is owned by uid %d (neither root nor this user, uid %d) and could be replaced by that user; %s",
			store, p, st.Uid, euid, storeFix)
	case st.Mode&0o022 != 0 && st.Mode&syscall.S_ISVTX == 0:
		return unsafeStore("store %s is inside %s, which is writable by %s and not sticky (mode %04o), so the store could be replaced: chmod go-w %s %s",
			store, p, writers(st.Mode), mode, p, storeFix)
	}
	return nil
}

func statDir(p string) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return &st, nil
}

// writers names who besides the owner may write, from a mode's bits.
func writers(mode uint32) string {
	switch {
	case mode&0o022 == 0o022:
		return "group and others"
	case mode&0o002 != 0:
		return "others"
	}
	return "group"
}
