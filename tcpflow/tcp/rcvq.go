package tcp

// rcvQueue is the receive buffer: the bytes received in order and not
// yet read. Most are copied into a ring; a packet whose payload fills at
// least half of a buffer the link lends (link.Lender) is queued where it
// arrived, and its buffer given back once read, which saves a copy of
// each large segment.
type rcvQueue struct {
	ring   ring
	chunks []rcvChunk // in order
	base   []rcvChunk // chunks' array, from its start
	n      int        // bytes held
	lent   int        // the sizes of the lent buffers held
}

// rcvChunk is a lent payload (owner set), or n bytes at the front of
// the ring (owner nil).
type rcvChunk struct {
	data  []byte
	owner *[]byte
	n     int
}

// Len returns the number of bytes held.
func (q *rcvQueue) Len() int { return q.n }

// mem returns the memory the queue pins: its ring's buffer and the lent
// buffers, whole.
func (q *rcvQueue) mem() int { return q.ring.Cap() + q.lent }

func (q *rcvQueue) push(c rcvChunk) { q.chunks, q.base = appendReuse(q.chunks, q.base, c) }

// appendReuse appends v to q, a queue popped from the front by
// reslicing; base is the start of q's array (or of an older, larger
// one). When q is full and the front of base's array is free for at
// least half of it, q moves there instead of growing, so a queue that
// is drained as fast as it fills allocates nothing. It returns the new
// q and base.
func appendReuse[T any](q, base []T, v T) ([]T, []T) {
	if len(q) == cap(q) && len(q) <= cap(base)/2 {
		q = base[:copy(base[:cap(base)], q)]
	}
	q = append(q, v)
	if cap(q) > cap(base) {
		base = q[:0]
	}
	return q, base
}

// write copies b in.
func (q *rcvQueue) write(b []byte) {
	if len(b) == 0 {
		return
	}
	q.ring.Write(b)
	q.n += len(b)
	if k := len(q.chunks) - 1; k >= 0 && q.chunks[k].owner == nil {
		q.chunks[k].n += len(b)
		return
	}
	q.push(rcvChunk{n: len(b)})
}

// lend queues b, which lies in the lent buffer owner.
func (q *rcvQueue) lend(b []byte, owner *[]byte) {
	q.n += len(b)
	q.lent += cap(*owner)
	q.push(rcvChunk{data: b, owner: owner, n: len(b)})
}

// Read copies the first bytes into p and drops them; lent buffers read
// to their end go back through ret.
func (q *rcvQueue) Read(p []byte, ret func(*[]byte)) int {
	total := 0
	for len(p) > 0 && len(q.chunks) > 0 {
		c := &q.chunks[0]
		var k int
		if c.owner != nil {
			k = copy(p, c.data)
			c.data = c.data[k:]
		} else {
			k = q.ring.Read(p[:min(len(p), c.n)])
		}
		c.n -= k
		total += k
		p = p[k:]
		if c.n == 0 {
			if c.owner != nil {
				q.lent -= cap(*c.owner)
				ret(c.owner)
			}
			*c = rcvChunk{}
			q.chunks = q.chunks[1:]
		}
	}
	q.n -= total
	if len(q.chunks) == 0 {
		q.chunks = q.base[:0]
	}
	return total
}

// release drops everything, giving lent buffers back.
func (q *rcvQueue) release(ret func(*[]byte)) {
	for i := range q.chunks {
		if o := q.chunks[i].owner; o != nil {
			ret(o)
		}
		q.chunks[i] = rcvChunk{}
	}
	q.chunks, q.base, q.n, q.lent = nil, nil, 0, 0
	q.ring.release()
}
