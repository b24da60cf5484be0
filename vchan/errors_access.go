package vchan

import (
	"io/fs"
)

// ErrUnsafeStore: the store directory, or a directory above it, could be
// changed by another user (it is not owned by this user, or is writable by
// group or others; see docs/vchan.md), so Dial, DialName and Listen refuse
// it. The error names the directory and the fix. It also matches
// fs.ErrPermission.
var ErrUnsafeStore error = &kindError{"unsafe store directory", fs.ErrPermission, nil}

// accessError is a peer this process may not talk to: its shared memory
// cannot be opened, or it could not read our request. It matches
// fs.ErrPermission.
type accessError struct {
	msg string
	err error // the system error, if any
}

func (e *accessError) Error() string {
	if e.err != nil {
		return "vchan: " + e.msg + ": " + e.err.Error()
	}
	return "vchan: " + e.msg
}

func (e *accessError) Unwrap() error { return e.err }

func (e *accessError) Is(target error) bool { return target == fs.ErrPermission }
