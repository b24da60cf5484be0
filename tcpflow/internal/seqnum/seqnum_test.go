package seqnum

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		v, w Value
		less bool
	}{
		{0, 1, true},
		{1, 0, false},
		{math.MaxUint32, 0, true}, // wraps
		{0, math.MaxUint32, false},
		{0, 1<<31 - 1, true},
		{100, 100, false},
		{math.MaxUint32 - 10, 5, true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.less, tt.v.LessThan(tt.w), "%d < %d", tt.v, tt.w)
		assert.Equal(t, tt.less || tt.v == tt.w, tt.v.LessThanEq(tt.w), "%d <= %d", tt.v, tt.w)
		assert.Equal(t, !tt.less && tt.v != tt.w, tt.v.GreaterThan(tt.w), "%d > %d", tt.v, tt.w)
		assert.Equal(t, !tt.less, tt.v.GreaterThanEq(tt.w), "%d >= %d", tt.v, tt.w)
	}
}

func TestWindow(t *testing.T) {
	first := Value(math.MaxUint32 - 1)
	assert.True(t, first.InWindow(first, 1))
	assert.False(t, first.InWindow(first, 0), "empty window")
	assert.True(t, Value(2).InWindow(first, 5)) // first, first+1, 0, 1, 2
	assert.False(t, Value(3).InWindow(first, 5))
	assert.False(t, first.Sub(1).InWindow(first, 5))
	assert.True(t, Value(0).InRange(first, 3))
	assert.False(t, Value(3).InRange(first, 3))
	assert.Equal(t, Value(3), first.Add(5))
	assert.Equal(t, Size(5), first.Size(3))
	v := first
	v.UpdateForward(2)
	assert.Equal(t, Value(0), v)
	assert.Equal(t, Value(1), Max(first, 1))
	assert.Equal(t, first, Min(first, 1))
}

func TestOverlap(t *testing.T) {
	assert.True(t, Overlap(math.MaxUint32-2, 4, 0, 1))
	assert.False(t, Overlap(math.MaxUint32-2, 3, 0, 1))
	assert.False(t, Overlap(10, 0, 10, 5), "empty range")
	assert.True(t, Overlap(10, 5, 14, 5))
	assert.False(t, Overlap(10, 5, 15, 5))
}
