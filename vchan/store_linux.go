package vchan

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// store is the rendezvous directory, the stand-in for xenstore:
//
//	<dir>/.lock                               flock'd around registrations
//	<dir>/<domid>/pid                         "PID STARTTIME" of the owner
//	<dir>/<domid>/listen/<port>               "/proc/PID/fd/N" of the listener's doorbell (a sealed memfd page)
//	<dir>/<domid>/data/vchan/<cli>/<port>/    one connection request:
//	        client-pid                        the client's "PID STARTTIME"
//	        event-channel                     byte offset of the event page in the shared memory
//	        ring-ref                          "/proc/PID/fd/N" of the server's sealed memfd
//	                                          (control page, rings, event page), written last
//	<dir>/names/<name>                        "<domid>" of a named domain
//
// Entries are created atomically (written under a temporary name, then
// renamed). Entries whose owner process is dead are stale and removed by
// whoever finds them.
type store struct{ dir string }

// openStore opens the store at dir, creating it (mode 0700) if needed,
// and refuses it with ErrUnsafeStore if another user could change it
// (checkStore).
func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := checkStore(dir); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "names"), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return &store{dir: dir}, nil
}

func (s *store) domDir(id int) string { return filepath.Join(s.dir, strconv.Itoa(id)) }

func (s *store) listenPath(id int, port string) string {
	return filepath.Join(s.domDir(id), "listen", port)
}

func (s *store) requestDir(srv, cli int, port string) string {
	return filepath.Join(s.domDir(srv), "data", "vchan", strconv.Itoa(cli), port)
}

// lock takes the store-wide registration lock; flock is dropped by the
// kernel if the process dies.
func (s *store) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// randName returns a fresh temporary name: prefix, then the creating
// process ("PID.STARTTIME") so that cleanStale can tell a dead process's
// leftovers from work in progress, then random hex.
func randName(prefix string) string {
	var b [8]byte
	rand.Read(b[:])
	self := selfProc()
	return fmt.Sprintf("%s%d.%d-%s", prefix, self.pid, self.start, hex.EncodeToString(b[:]))
}

// tempPrefixes are the prefixes of the store's temporary names: a domain
// directory being created, a directory being deleted, a file being
// written, a connection request being posted.
var tempPrefixes = []string{".new-", ".trash-", ".tmp-", ".req-"}

// legacyLeftoverAge is how old a temporary entry without an owner in its
// name must be to count as left over: live processes rename theirs within
// milliseconds.
const legacyLeftoverAge = time.Minute

// leftover reports whether the directory entry e is a temporary entry
// left by a dead process.
func leftover(e fs.DirEntry) bool {
	name := e.Name()
	for _, prefix := range tempPrefixes {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		owner, _, ok := strings.Cut(rest, "-")
		if pid, start, ok2 := strings.Cut(owner, "."); ok && ok2 {
			p, err := parseProc([]byte(pid + " " + start))
			if err == nil {
				return !p.alive()
			}
		}
		info, err := e.Info()
		return err == nil && time.Since(info.ModTime()) > legacyLeftoverAge
	}
	return false
}

// sweepLeftovers removes the temporary entries of dead processes in dir.
func sweepLeftovers(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if leftover(e) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// writeAtomic writes data to path through a temporary file and a rename.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), randName(".tmp-"))
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// owner returns the process owning domain id.
func (s *store) owner(id int) (procID, error) {
	return readProc(filepath.Join(s.domDir(id), "pid"))
}

// domain is a domid registered by this process.
type domain struct {
	s     *store
	id    int
	owned bool // created by this registration: removed by release
}

// removeDir moves a directory out of the way atomically, then deletes it.
func (s *store) removeDir(path string) {
	trash := filepath.Join(s.dir, randName(".trash-"))
	if os.Rename(path, trash) == nil {
		os.RemoveAll(trash)
	}
}

// postRequest creates the connection request directory req
// (<srv>/data/vchan/<cli>/<port>) with this process in client-pid,
// atomically. A stale request of a dead client in its place is replaced;
// a live one fails with ErrInUse. A listener that is gone (no
// <srv>/data/vchan) gives ErrRefused.
func (s *store) postRequest(req string) error {
	cliDir := filepath.Dir(req)
	self := selfProc()
	for attempt := 0; ; attempt++ {
		if err := os.Mkdir(cliDir, 0o700); errors.Is(err, fs.ErrNotExist) {
			return ErrRefused
		} else if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		tmp := filepath.Join(cliDir, randName(".req-"))
		if err := os.Mkdir(tmp, 0o700); err != nil {
			if errors.Is(err, fs.ErrNotExist) && attempt < 8 {
				continue // cliDir was removed, empty, by another request's cleanup
			}
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, "client-pid"), []byte(self.String()), 0o600); err != nil {
			os.RemoveAll(tmp)
			return err
		}
		err := os.Rename(tmp, req)
		if err == nil {
			return nil
		}
		os.RemoveAll(tmp)
		if p, perr := readProc(filepath.Join(req, "client-pid")); attempt < 3 && (perr != nil || !p.alive()) {
			s.removeDir(req) // stale request of a dead client
			continue
		}
		return ErrInUse
	}
}

// removeRequest removes a connection request directory and, if that
// leaves it empty, its client's directory (<srv>/data/vchan/<cli>): a
// later request creates it again.
func (s *store) removeRequest(req string) {
	s.removeDir(req)
	os.Remove(filepath.Dir(req)) // fails, harmlessly, unless empty
}

// register registers domid id for this process; id 0 allocates the lowest
// free one. A domid held by a dead process is reclaimed; one held by this
// process is shared (and not removed by release).
func (s *store) register(id int) (*domain, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	self := selfProc()
	try := func(id int) (*domain, error) {
		p, err := s.owner(id)
		switch {
		case err == nil && p == self:
			return &domain{s: s, id: id}, nil
		case err == nil && p.alive():
			return nil, ErrInUse
		case err == nil, errors.Is(err, fs.ErrNotExist) && exists(s.domDir(id)):
			s.removeDir(s.domDir(id)) // stale: dead owner or no pid file
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
		tmp := filepath.Join(s.dir, randName(".new-"))
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(tmp, "pid"), []byte(self.String()), 0o600); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		if err := os.Rename(tmp, s.domDir(id)); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		return &domain{s: s, id: id, owned: true}, nil
	}
	if id != 0 {
		return try(id)
	}
	for id := 1; id <= maxDomid; id++ {
		if p, err := s.owner(id); err == nil && (p == self || p.alive()) {
			continue
		}
		if d, err := try(id); err == nil {
			return d, nil
		} else if !errors.Is(err, ErrInUse) {
			return nil, err
		}
	}
	return nil, errors.New("vchan: no free domid in the store")
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// release removes the domain's entries if this registration created it.
func (d *domain) release() {
	if d == nil || !d.owned {
		return
	}
	unlock, err := d.s.lock()
	if err == nil {
		defer unlock()
	}
	d.s.removeDir(d.s.domDir(d.id))
}

// registerName maps name to domid id; a name held by a dead or
// unregistered domain is taken over.
func (s *store) registerName(name string, id int) (release func(), err error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	path := filepath.Join(s.dir, "names", name)
	if old, err := s.lookupName(name); err == nil && old != id {
		if p, err := s.owner(old); err == nil && p.alive() {
			return nil, ErrInUse
		}
	}
	if err := writeAtomic(path, []byte(strconv.Itoa(id)+"\n")); err != nil {
		return nil, err
	}
	return func() {
		unlock, err := s.lock()
		if err == nil {
			defer unlock()
		}
		if cur, err := s.lookupName(name); err == nil && cur == id {
			os.Remove(path)
		}
	}, nil
}

func (s *store) lookupName(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "names", name))
	if err != nil {
		return 0, err
	}
	id, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || checkDomid(id) != nil {
		return 0, fmt.Errorf("vchan: malformed name entry %q", name)
	}
	return id, nil
}

// cleanStale removes the domains of dead processes, name entries
// pointing at no live domain, the temporary entries (.new-, .trash-,
// .tmp-, .req-) of dead processes (in the store, in names/, and in the
// listen/ and data/vchan/<cli>/ directories of live domains), and empty
// data/vchan/<cli>/ directories.
func (s *store) cleanStale() {
	unlock, err := s.lock()
	if err != nil {
		return
	}
	defer unlock()
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		id, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		if p, err := s.owner(id); err == nil && p.alive() {
			dom := s.domDir(id)
			sweepLeftovers(filepath.Join(dom, "listen"))
			clis, _ := os.ReadDir(filepath.Join(dom, "data", "vchan"))
			for _, c := range clis {
				if c.IsDir() {
					cliDir := filepath.Join(dom, "data", "vchan", c.Name())
					sweepLeftovers(cliDir)
					os.Remove(cliDir) // only if empty: left by a killed client
				}
			}
			continue
		}
		s.removeDir(s.domDir(id))
	}
	sweepLeftovers(s.dir)
	sweepLeftovers(filepath.Join(s.dir, "names"))
	names, _ := os.ReadDir(filepath.Join(s.dir, "names"))
	for _, e := range names {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		id, err := s.lookupName(e.Name())
		if err == nil {
			if p, err := s.owner(id); err == nil && p.alive() {
				continue
			}
		}
		os.Remove(filepath.Join(s.dir, "names", e.Name()))
	}
}
