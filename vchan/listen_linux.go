package vchan

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Listener accepts vchans on one port of a domain (vchan://DOMID/PORT,
// and vchan://NAME/PORT when Config.Name is set). Each accepted Conn is
// its own vchan, as a libxenvchan server per client. Its methods may be
// called from several goroutines; Accepts are serialised.
type Listener struct {
	st       *store
	dom      *domain
	addr     *Addr
	cfg      *Config
	rd, wr   int
	bellPath string
	bellFile *os.File // the doorbell memfd, referenced by bellPath
	bell     []byte
	bellWord *uint32
	unname   func()

	mu     sync.Mutex // held by Accept; Close takes it to unmap
	closed atomic.Bool
	once   sync.Once
}

var _ net.Listener = (*Listener)(nil)

// Listen registers port in this process's domain (Config.Domid, or a
// fresh domid when it is 0, as for vchan://0/PORT; Domid reports it) and,
// if Config.Name is set, the name. Stale entries of dead processes are
// cleaned first. The context governs only the setup. A store another user
// could change gives ErrUnsafeStore.
func Listen(ctx context.Context, cfg *Config, port string) (*Listener, error) {
	l, err := listen(ctx, cfg.Clone(), port)
	if err != nil {
		a := &Addr{Port: port}
		if cfg != nil {
			a.Domid, a.Name = cfg.Domid, cfg.Name
		}
		return nil, opError("listen", a, err)
	}
	return l, nil
}

func listen(ctx context.Context, cfg *Config, port string) (_ *Listener, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkPort(port); err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Domid != 0 {
		if err := checkDomid(cfg.Domid); err != nil {
			return nil, err
		}
	}
	if cfg.Name != "" {
		if err := checkName(cfg.Name); err != nil {
			return nil, err
		}
	}
	rd, wr, err := cfg.orders()
	if err != nil {
		return nil, err
	}
	st, err := openStore(cfg.dir())
	if err != nil {
		return nil, err
	}
	st.cleanStale()
	dom, err := st.register(cfg.Domid)
	if err != nil {
		return nil, err
	}
	l := &Listener{st: st, dom: dom, cfg: cfg, rd: rd, wr: wr,
		addr: &Addr{Domid: dom.id, Name: cfg.Name, Port: port}}
	defer func() {
		if err != nil {
			l.cleanup()
		}
	}()
	if err := os.MkdirAll(filepath.Join(st.domDir(dom.id), "listen"), 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(st.domDir(dom.id), "data", "vchan"), 0o700); err != nil {
		return nil, err
	}
	path := st.listenPath(dom.id, port)
	if l.bellFile, l.bell, err = newDoorbell(); err != nil {
		return nil, err
	}
	// Publish the doorbell's reference under the port's name, failing if
	// the port is taken: write it aside, then link (which never replaces).
	tmp := filepath.Join(filepath.Dir(path), randName(".tmp-"))
	if err := os.WriteFile(tmp, []byte(memRef(l.bellFile)), 0o600); err != nil {
		return nil, err
	}
	err = os.Link(tmp, path)
	os.Remove(tmp)
	if errors.Is(err, fs.ErrExist) {
		return nil, ErrInUse
	}
	if err != nil {
		return nil, err
	}
	l.bellPath = path
	l.bellWord = word(l.bell, 0)
	if cfg.Name != "" {
		if l.unname, err = st.registerName(cfg.Name, dom.id); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Listener) cleanup() {
	if l.unname != nil {
		l.unname()
	}
	if l.bell != nil {
		unix.Munmap(l.bell)
		l.bell = nil
	}
	if l.bellFile != nil {
		l.bellFile.Close()
		l.bellFile = nil
	}
	if l.bellPath != "" {
		os.Remove(l.bellPath)
	}
	l.dom.release()
}

// Accept waits for a client and returns its *Conn (as a net.Conn).
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptVchan()
	if err != nil {
		return nil, err // never a typed nil
	}
	return c, nil
}

// AcceptVchan is Accept returning the *Conn.
func (l *Listener) AcceptVchan() (*Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.closed.Load() {
			return nil, opError("accept", l.addr, net.ErrClosed)
		}
		tok := atomic.LoadUint32(l.bellWord)
		c, err := l.tryAccept()
		if err != nil {
			return nil, opError("accept", l.addr, err)
		}
		if c != nil {
			return c, nil
		}
		// Rescan now and then even without a doorbell (a client that
		// rang before we looked, or a store on a filesystem without
		// shared futexes).
		futexWaitOn(l.bellWord, tok, time.Second)
	}
}

// tryAccept serves the first pending request, if any.
func (l *Listener) tryAccept() (*Conn, error) {
	base := filepath.Join(l.st.domDir(l.dom.id), "data", "vchan")
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		cli, err := strconv.Atoi(e.Name())
		if err != nil || checkDomid(cli) != nil {
			continue
		}
		req := filepath.Join(base, e.Name(), l.addr.Port)
		if !exists(req) {
			continue
		}
		p, err := readProc(filepath.Join(req, "client-pid"))
		if err != nil || !p.alive() {
			l.st.removeRequest(req) // a dead client's
			continue
		}
		if exists(filepath.Join(req, "ring-ref")) {
			continue // served, the client has not mapped it yet
		}
		m, be, err := createRing(req, l.rd, l.wr, p)
		if err != nil {
			l.st.removeRequest(req)
			continue
		}
		en := newEndpoint(true, m, be)
		raddr := &Addr{Domid: cli, Port: l.addr.Port}
		onClose := func() {
			// The client removes the request once it has mapped the ring
			// (even after we closed: it still reads what we wrote) or
			// when it gives up; remove it here only if it died first.
			if q, err := readProc(filepath.Join(req, "client-pid")); err == nil && q == p && !p.alive() {
				l.st.removeRequest(req)
			}
		}
		c := newConn(en, be, l.addr, raddr, l.cfg, onClose)
		connected := l.waitConnected(c)
		be.dropRef() // the client has opened the memfd, or never will
		if !connected {
			c.Close()
			continue
		}
		return c, nil
	}
	return nil, nil
}

// connectTimeout bounds how long Accept waits for a client that asked
// for a vchan to map it.
const connectTimeout = 10 * time.Second

// waitConnected waits until the client has mapped the ring (cli_live
// leaves 2), so that nothing in the store is needed once Accept returns
// and closing the listener cannot strand the client.
func (l *Listener) waitConnected(c *Conn) bool {
	deadline := time.Now().Add(connectTimeout)
	for {
		tok := c.be.prepare()
		if c.e.peerLive.load() != liveWaiting {
			return true
		}
		if l.closed.Load() || time.Now().After(deadline) || !c.be.peerAlive() {
			return false
		}
		c.be.wait(tok, 50*time.Millisecond)
	}
}

// Close stops listening: pending and future Accepts fail with
// net.ErrClosed; the port (and name, and fresh domid) are unregistered.
// Accepted Conns are not affected.
func (l *Listener) Close() error {
	first := false
	l.once.Do(func() {
		first = true
		l.closed.Store(true)
		futexEvent{mine: l.bellWord}.kick()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.cleanup()
	})
	if !first {
		return opError("close", l.addr, net.ErrClosed)
	}
	return nil
}

// Addr returns the listening address (vchan://DOMID/PORT, or
// vchan://NAME/PORT when a name was registered).
func (l *Listener) Addr() net.Addr { return l.addr }

// Domid returns the domain id the listener registered.
func (l *Listener) Domid() int { return l.dom.id }
