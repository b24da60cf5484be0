package vchan

import "github.com/conduit-go/conduit/vchan/internal/wire"

// The shared control page is struct vchan_interface of libxenvchan
// (xen/io/libxenvchan.h), little-endian:
//
//	offset  size  field
//	     0     4  left.cons    (server's read index; written by the server)
//	     4     4  left.prod    (client's write index; written by the client)
//	     8     4  right.cons   (client's read index; written by the client)
//	    12     4  right.prod   (server's write index; written by the server)
//	    16     2  left_order   (log2 of the left ring's size)
//	    18     2  right_order  (log2 of the right ring's size)
//	    20     1  cli_live
//	    21     1  srv_live
//	    22     1  cli_notify   (bits the server asks the client to signal)
//	    23     1  srv_notify   (bits the client asks the server to signal)
//	    24   4*n  grants       (left's pages first, then right's)
//
// The layoutcheck package compares these constants with the C header.
const (
	offLeftCons   = wire.OffLeftCons
	offLeftProd   = wire.OffLeftProd
	offRightCons  = wire.OffRightCons
	offRightProd  = wire.OffRightProd
	offLeftOrder  = wire.OffLeftOrder
	offRightOrder = wire.OffRightOrder
	offCliLive    = wire.OffCliLive
	offSrvLive    = wire.OffSrvLive
	offCliNotify  = wire.OffCliNotify
	offSrvNotify  = wire.OffSrvNotify
	offGrants     = wire.OffGrants

	// offFlagsWord is the 32-bit word holding the four one-byte fields
	// live and notify: byte-sized atomics are done on it with masks.
	offFlagsWord = 20
)

// Notification bits (VCHAN_NOTIFY_WRITE and VCHAN_NOTIFY_READ).
const (
	notifyWrite = wire.NotifyWrite // signal when data is written
	notifyRead  = wire.NotifyRead  // signal when data is read (space is freed)
)

// Live flag values.
const (
	liveExited    = 0
	liveConnected = 1
	liveWaiting   = 2
)

// Ring placement, as in libxenvchan's init.c.
const (
	pageShift       = 12
	pageSize        = 1 << pageShift
	smallRingShift  = 10
	smallRingOffset = 1024
	largeRingShift  = 11
	largeRingOffset = 2048

	// MinOrder and MaxOrder bound the ring orders (log2 of the ring size
	// in bytes) a Config may ask for and a peer may announce.
	MinOrder = 10
	MaxOrder = 20
)

// minOrder is libxenvchan's min_order: the smallest order of at least a
// page that holds siz bytes.
func minOrder(siz int) int {
	rv := pageShift
	for siz > 1<<rv {
		rv++
	}
	return rv
}

// chooseOrders reproduces libxenvchan_server_init's choice of ring orders
// from the minimum sizes asked for: rings of order 10 and 11 live inside
// the control page, and only one of each may.
func chooseOrders(leftMin, rightMin int) (left, right int) {
	left, right = minOrder(leftMin), minOrder(rightMin)
	switch {
	case leftMin <= 1<<smallRingShift && rightMin <= 1<<largeRingShift:
		left, right = smallRingShift, largeRingShift
	case leftMin <= 1<<largeRingShift && rightMin <= 1<<smallRingShift:
		left, right = largeRingShift, smallRingShift
	case leftMin <= 1<<largeRingShift:
		left = largeRingShift
	case rightMin <= 1<<largeRingShift:
		right = largeRingShift
	}
	return left, right
}

// ringPages is the number of separate pages a ring of the given order
// needs (0 for rings inside the control page).
func ringPages(order int) int {
	if order < pageShift {
		return 0
	}
	return 1 << (order - pageShift)
}

// ringPlacement describes where one ring lives.
type ringPlacement struct {
	order  int
	inPage int // offset in the control page, or 0 when in separate pages
	grant0 int // index of its first grant in the grant list
	pages  int // number of separate pages
}

// placeRings validates a pair of orders as found in (or about to be
// written to) a control page and returns where each ring lives. It is the
// check applied to an untrusted peer's header.
func placeRings(left, right int) (l, r ringPlacement, err error) {
	if left < MinOrder || left > MaxOrder || right < MinOrder || right > MaxOrder {
		return l, r, protocolErrorf("ring orders %d/%d outside %d..%d", left, right, MinOrder, MaxOrder)
	}
	if left == right && left < pageShift {
		return l, r, protocolErrorf("both rings of order %d would share the control page", left)
	}
	place := func(order, grant0 int) ringPlacement {
		p := ringPlacement{order: order, grant0: grant0, pages: ringPages(order)}
		switch order {
		case smallRingShift:
			p.inPage = smallRingOffset
		case largeRingShift:
			p.inPage = largeRingOffset
		}
		return p
	}
	l = place(left, 0)
	r = place(right, l.pages)
	grantsEnd := offGrants + 4*(l.pages+r.pages)
	limit := pageSize
	for _, p := range []ringPlacement{l, r} {
		if p.inPage != 0 && p.inPage < limit {
			limit = p.inPage
		}
	}
	if grantsEnd > limit {
		return l, r, protocolErrorf("grant list of %d entries overlaps a ring", l.pages+r.pages)
	}
	return l, r, nil
}
