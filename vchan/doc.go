// Package vchan implements the Xen vchan protocol (libxenvchan's shared
// ring layout, byte for byte) between processes on one Linux host: the
// rings live in a memfd sealed against resizing (so a peer cannot tear
// the mapping), the event channel is a pair of futexes (spin adaptively,
// then sleep), and a store directory stands in for xenstore. It is conduit's vchan://DOMID/PORT and vchan://NAME/PORT
// transport; docs/vchan.md specifies the layout and the rendezvous.
//
//	l, err := vchan.Listen(ctx, &vchan.Config{Name: "db"}, "sql")
//	...
//	c, err := vchan.DialName(ctx, nil, "db", "sql") // or vchan.Dial(ctx, nil, l.Domid(), "sql")
//	if err != nil {
//		return err // errors.Is(err, vchan.ErrRefused)
//	}
//	defer c.Close()
//	c.Writev(net.Buffers{header, body}) // one pass into the ring
//
// A Conn is a net.Conn with CloseWrite, Writev and the Nodelay variants.
// The peer is not trusted: a peer that corrupts the shared indices or
// announces impossible ring sizes makes calls fail with ErrProtocol, a
// peer that closes makes Read return io.EOF after the ring is drained and
// Write fail with ErrPeerClosed (net.ErrClosed), and a peer process that
// dies is noticed within Config.LivenessInterval (ErrPeerDied).
//
// Domains are numbered 1..32751, each held by one process; 0 is never a
// domain here: it asks Listen for a free domid (vchan://0/PORT to listen
// on, as TCP port 0 asks for a free port), and Dial refuses it. The store
// is private to one user: Dial and Listen refuse, with ErrUnsafeStore, a
// store directory another user could change (as ssh's StrictModes does),
// and a dial to a listener whose shared memory this process may not open
// fails at once with an error matching fs.ErrPermission.
//
// The Xen primitives (grant pages, event channels, liveness of the peer
// domain) are behind the small backend interface, so a Xen backend can
// be added; the in-memory backend drives the same ring code in tests.
package vchan
