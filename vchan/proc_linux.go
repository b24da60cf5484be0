package vchan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// procID names a process across pid reuse: its pid and its start time
// (field 22 of /proc/PID/stat, in clock ticks since boot).
type procID struct {
	pid   int
	start uint64
}

func procStart(pid int) (uint64, error) {
	start, _, err := procStat(pid)
	return start, err
}

// procStat returns a process's start time and state letter.
func procStat(pid int) (start uint64, state string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", errors.New("vchan: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 { // fields 3.. ; state is field 3, starttime field 22
		return 0, "", errors.New("vchan: malformed /proc stat")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0], err
}

// selfProc returns this process's identity (read once: it never changes).
var selfProc = sync.OnceValue(func() procID {
	pid := os.Getpid()
	start, _ := procStart(pid)
	return procID{pid: pid, start: start}
})

// alive reports whether the process still runs: kill(pid, 0) succeeds,
// it is not a zombie, and its start time matches (the pid was not reused).
func (p procID) alive() bool {
	if p.pid <= 0 {
		return false
	}
	if err := unix.Kill(p.pid, 0); err == unix.ESRCH {
		return false
	}
	if s, state, err := procStat(p.pid); err == nil {
		if state == "Z" || state == "X" || (p.start != 0 && s != p.start) {
			return false
		}
	}
	return true
}

func (p procID) String() string { return fmt.Sprintf("%d %d\n", p.pid, p.start) }

func parseProc(b []byte) (procID, error) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return procID{}, errors.New("vchan: malformed pid entry")
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return procID{}, errors.New("vchan: malformed pid entry")
	}
	return procID{pid: pid, start: start}, nil
}

func readProc(path string) (procID, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procID{}, err
	}
	return parseProc(b)
}

// fsUID returns the user id the process uses to access files (the fourth
// field of the Uid line of /proc/PID/status, readable by everyone).
func (p procID) fsUID() (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Uid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 4 {
			break
		}
		return strconv.Atoi(f[3])
	}
	return 0, errors.New("vchan: malformed /proc status")
}
