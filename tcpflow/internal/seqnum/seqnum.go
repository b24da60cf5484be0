// Package seqnum implements TCP sequence-number arithmetic modulo 2^32
// (RFC 9293 section 3.4): comparisons are valid for values less than
// 2^31 apart.
//
//	var nxt seqnum.Value = iss.Add(1)
//	if seg.InWindow(rcvNxt, rcvWnd) { ... }
//	inFlight := sndUna.Size(sndNxt)
package seqnum

// Value is a TCP sequence number.
type Value uint32

// Size is a count of sequence numbers: a window or a segment length.
type Size uint32

// LessThan reports whether v comes before w.
func (v Value) LessThan(w Value) bool { return int32(v-w) < 0 }

// LessThanEq reports whether v comes before w or equals it.
func (v Value) LessThanEq(w Value) bool { return int32(v-w) <= 0 }

// GreaterThan reports whether v comes after w.
func (v Value) GreaterThan(w Value) bool { return int32(v-w) > 0 }

// GreaterThanEq reports whether v comes after w or equals it.
func (v Value) GreaterThanEq(w Value) bool { return int32(v-w) >= 0 }

// InRange reports whether a <= v < b.
func (v Value) InRange(a, b Value) bool { return v-a < b-a }

// InWindow reports whether v is in the window of size s starting at
// first: first <= v < first+s. An empty window contains nothing.
func (v Value) InWindow(first Value, s Size) bool { return uint32(v-first) < uint32(s) }

// Add returns v advanced by s.
func (v Value) Add(s Size) Value { return v + Value(s) }

// Sub returns v moved back by s.
func (v Value) Sub(s Size) Value { return v - Value(s) }

// Size returns the number of sequence numbers from v up to w (w - v),
// assuming w does not come before v.
func (v Value) Size(w Value) Size { return Size(w - v) }

// UpdateForward advances v by s in place.
func (v *Value) UpdateForward(s Size) { *v += Value(s) }

// Max returns whichever of v and w comes later.
func Max(v, w Value) Value {
	if v.LessThan(w) {
		return w
	}
	return v
}

// Min returns whichever of v and w comes earlier.
func Min(v, w Value) Value {
	if v.LessThan(w) {
		return v
	}
	return w
}

// Overlap reports whether the ranges [a, a+b) and [x, x+y) share a
// sequence number.
func Overlap(a Value, b Size, x Value, y Size) bool {
	return a.LessThan(x.Add(y)) && x.LessThan(a.Add(b)) && b > 0 && y > 0
}
