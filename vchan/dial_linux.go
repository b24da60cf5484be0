package vchan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Dial connects to the listener on port of domain domid
// (vchan://DOMID/PORT), 1..32751: domid 0 is refused, since 0 only asks
// Listen to allocate a domid (dial the one the listener reports). The
// context governs only the setup, not the connection's life. Errors are
// *Error; nothing listening gives ErrRefused; a listener this process may
// not talk to (another user's, or one that is not dumpable) fails at once
// with an error matching fs.ErrPermission; a store another user could
// change gives ErrUnsafeStore.
func Dial(ctx context.Context, cfg *Config, domid int, port string) (*Conn, error) {
	raddr := &Addr{Domid: domid, Port: port}
	if err := checkDomid(domid); err != nil {
		return nil, opError("dial", raddr, err)
	}
	if err := checkPort(port); err != nil {
		return nil, opError("dial", raddr, err)
	}
	c, err := dial(ctx, cfg, raddr)
	return c, opError("dial", raddr, err)
}

// DialName connects to the listener on port of the domain registered as
// name (vchan://NAME/PORT).
func DialName(ctx context.Context, cfg *Config, name, port string) (*Conn, error) {
	raddr := &Addr{Name: name, Port: port}
	if err := checkName(name); err != nil {
		return nil, opError("dial", raddr, err)
	}
	if err := checkPort(port); err != nil {
		return nil, opError("dial", raddr, err)
	}
	st, err := openStore(cfg.dir())
	if err != nil {
		return nil, opError("dial", raddr, err)
	}
	id, err := st.lookupName(name)
	if errors.Is(err, fs.ErrNotExist) {
		err = ErrRefused
	}
	if err != nil {
		return nil, opError("dial", raddr, err)
	}
	raddr.Domid = id
	c, err := dial(ctx, cfg, raddr)
	return c, opError("dial", raddr, err)
}

func dial(ctx context.Context, cfg *Config, raddr *Addr) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := openStore(cfg.dir())
	if err != nil {
		return nil, err
	}
	srv, err := st.owner(raddr.Domid)
	if err != nil || !srv.alive() {
		return nil, ErrRefused
	}
	// Map the listener's doorbell before anything is written to the
	// store: a listener whose memory this process may not open (another
	// user's, or one that is not dumpable) fails the dial at once.
	bell, err := openDoorbell(st.listenPath(raddr.Domid, raddr.Port), srv)
	switch {
	case errors.Is(err, ErrProtocol), errors.Is(err, fs.ErrPermission):
		return nil, err
	case err != nil:
		return nil, ErrRefused // no such port, or the listener just closed
	}
	defer bell.close()
	// A listener running as another user could not read the request
	// (its directory is this user's, mode 0700): it would never answer.
	if uid, err := srv.fsUID(); err == nil && uid != 0 && uid != os.Geteuid() {
		return nil, &accessError{msg: fmt.Sprintf("the listener (pid %d) runs as uid %d and cannot read the requests of this user (uid %d)", srv.pid, uid, os.Geteuid())}
	}
	var myDomid int
	if cfg != nil {
		myDomid = cfg.Domid
	}
	dom, err := st.register(myDomid)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			dom.release()
		}
	}()

	// Post the request: <srv>/data/vchan/<cli>/<port>/client-pid. On
	// every error the request and, when it is left empty, the <cli>
	// directory are removed.
	req := st.requestDir(raddr.Domid, dom.id, raddr.Port)
	posted := false
	defer func() {
		if ok {
			return
		}
		if posted {
			st.removeRequest(req)
		} else {
			os.Remove(filepath.Dir(req)) // only if empty
		}
	}()
	if err := st.postRequest(req); err != nil {
		return nil, err
	}
	posted = true
	bell.ring()

	// Wait for the server to publish the ring.
	wait := 20 * time.Microsecond
	lastCheck := time.Now()
	for !exists(filepath.Join(req, "ring-ref")) {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		wait = min(2*wait, 5*time.Millisecond)
		if time.Since(lastCheck) > 100*time.Millisecond {
			lastCheck = time.Now()
			if !srv.alive() {
				return nil, ErrPeerDied
			}
			if !exists(st.listenPath(raddr.Domid, raddr.Port)) || !exists(req) {
				return nil, ErrRefused // the listener closed
			}
		}
	}
	m, be, err := openRing(req, srv)
	if err != nil {
		return nil, err
	}
	e := newEndpoint(false, m, be)
	e.myLive.store(liveConnected)
	be.signal()
	// The mapping outlives the files: nothing of the connection is left
	// in the store.
	st.removeRequest(req)
	ok = true
	laddr := &Addr{Domid: dom.id, Port: raddr.Port}
	return newConn(e, be, laddr, raddr, cfg, dom.release), nil
}
