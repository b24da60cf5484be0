package vchan

// endpoint is one side's ring machinery over the shared memory: the
// index arithmetic of libxenvchan's io.c, with every shared access atomic
// and every value read from the peer checked before use.
//
// The indices this side owns (the consumer index of the ring it reads,
// the producer index of the ring it writes) are kept in local copies and
// only ever stored to the page, never read back: a peer that scribbles on
// them confuses only itself.
type endpoint struct {
	server bool
	be     backend

	rdBuf          []byte
	rdMask         uint32
	rdProd, rdCons *uint32 // peer's producer, our consumer
	cons           uint32  // our consumer index; guarded by Conn.readMu

	wrBuf          []byte
	wrMask         uint32
	wrProd, wrCons *uint32 // our producer, peer's consumer
	prod           uint32  // our producer index; guarded by Conn.writeMu

	myLive, peerLive     flagByte
	myNotify, peerNotify flagByte // bits the peer asked us to signal; bits we ask of the peer
	myShut, peerShut     *uint32
}

func newEndpoint(server bool, m shared, be backend) *endpoint {
	e := &endpoint{server: server, be: be}
	leftCons, leftProd := word(m.page, offLeftCons), word(m.page, offLeftProd)
	rightCons, rightProd := word(m.page, offRightCons), word(m.page, offRightProd)
	cliLive, srvLive := newFlagByte(m.page, offCliLive), newFlagByte(m.page, offSrvLive)
	cliNotify, srvNotify := newFlagByte(m.page, offCliNotify), newFlagByte(m.page, offSrvNotify)
	srvShut, cliShut := word(m.ext, extSrvShut), word(m.ext, extCliShut)
	if server {
		// The server reads left and writes right.
		e.rdBuf, e.rdProd, e.rdCons = m.left, leftProd, leftCons
		e.wrBuf, e.wrProd, e.wrCons = m.right, rightProd, rightCons
		e.myLive, e.peerLive = srvLive, cliLive
		// libxenvchan: the server clears srv_notify when it acts and
		// sets bits in cli_notify when it wants to be told.
		e.myNotify, e.peerNotify = srvNotify, cliNotify
		e.myShut, e.peerShut = srvShut, cliShut
	} else {
		e.rdBuf, e.rdProd, e.rdCons = m.right, rightProd, rightCons
		e.wrBuf, e.wrProd, e.wrCons = m.left, leftProd, leftCons
		e.myLive, e.peerLive = cliLive, srvLive
		e.myNotify, e.peerNotify = cliNotify, srvNotify
		e.myShut, e.peerShut = cliShut, srvShut
	}
	e.rdMask = uint32(len(e.rdBuf) - 1)
	e.wrMask = uint32(len(e.wrBuf) - 1)
	e.cons = loadLE(e.rdCons)
	e.prod = loadLE(e.wrProd)
	return e
}

// readable returns how many bytes the peer has published and we have not
// consumed. A producer index more than a ring ahead of ours is a protocol
// violation (libxenvchan silently treats it as empty; we fail).
func (e *endpoint) readable() (uint32, error) {
	n := loadLE(e.rdProd) - e.cons // acquire: data before prod
	if n > uint32(len(e.rdBuf)) {
		return 0, protocolErrorf("peer's producer index is %d bytes ahead in a ring of %d", n, len(e.rdBuf))
	}
	return n, nil
}

// writable returns the free space in the ring we write.
func (e *endpoint) writable() (uint32, error) {
	used := e.prod - loadLE(e.wrCons) // acquire: peer is done with freed bytes
	if used > uint32(len(e.wrBuf)) {
		return 0, protocolErrorf("peer's consumer index is %d bytes behind in a ring of %d", used, len(e.wrBuf))
	}
	return uint32(len(e.wrBuf)) - used, nil
}

// read copies up to avail bytes into p, publishes the new consumer index
// and tells the peer if it asked to be told.
func (e *endpoint) read(p []byte, avail uint32) int {
	n := min(uint32(len(p)), avail)
	off := e.cons & e.rdMask
	k := copy(p[:n], e.rdBuf[off:])
	copy(p[k:n], e.rdBuf)
	e.cons += n
	storeLE(e.rdCons, e.cons) // release: our reads before the space is reused
	e.sendNotify(notifyRead)
	return int(n)
}

// write copies as much of bufs as fits in space into the ring in one
// pass, consuming it from bufs, publishes the producer index once and
// tells the peer if it asked to be told. It returns the bytes written.
func (e *endpoint) write(bufs *[][]byte, space uint32) int {
	var n uint32
	for len(*bufs) > 0 && n < space {
		b := (*bufs)[0]
		k := min(uint32(len(b)), space-n)
		off := (e.prod + n) & e.wrMask
		c := uint32(copy(e.wrBuf[off:], b[:k]))
		copy(e.wrBuf, b[c:k])
		n += k
		if k == uint32(len(b)) {
			*bufs = (*bufs)[1:]
		} else {
			(*bufs)[0] = b[k:]
		}
	}
	if n == 0 {
		return 0
	}
	e.prod += n
	storeLE(e.wrProd, e.prod) // release: data before prod
	e.sendNotify(notifyWrite)
	return int(n)
}

// requestNotify asks the peer to signal us when it does what bit names
// (libxenvchan's request_notify). The atomic OR is a full barrier, so the
// request is visible before we re-read the indices.
func (e *endpoint) requestNotify(bit uint8) { e.peerNotify.or(bit) }

// sendNotify signals the peer if it asked for bit, clearing the request
// (libxenvchan's send_notify). The index store before it is sequentially
// consistent, so the peer either sees the new index or its request is
// seen here.
//
// The bit is loaded first and cleared (a locked read-modify-write on the
// line the peer polls) only when set: while the peer is busy, a read or
// write costs one atomic store and one load. This is safe because both
// our index store and this load are sequentially consistent, as are the
// peer's OR of the bit and its re-check of the index: if the load misses
// the bit, the OR comes later in the total order and the re-check after
// it sees our index.
func (e *endpoint) sendNotify(bit uint8) {
	if e.myNotify.load()&bit == 0 {
		return
	}
	if e.myNotify.fetchClear(bit)&bit != 0 {
		e.be.signal()
	}
}
