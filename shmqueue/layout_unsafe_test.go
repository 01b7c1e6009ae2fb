package shmqueue

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/shmkit/shmkit/layout"
)

// The on-segment layout comes from the Go types; these assertions pin it
// (a change here is a format change) and check that every atomic word is
// naturally aligned and every hot word has its own 128-byte line.
func TestLayout(t *testing.T) {
	const L = layout.LineSize
	var c futexControl
	require.Equal(t, uintptr(0), unsafe.Offsetof(c.enq))
	require.Equal(t, uintptr(1*L), unsafe.Offsetof(c.deq))
	require.Equal(t, uintptr(2*L), unsafe.Offsetof(c.items))
	require.Equal(t, uintptr(3*L), unsafe.Offsetof(c.slots))
	require.Equal(t, uintptr(4*L), unsafe.Offsetof(c.holes))
	require.Equal(t, uintptr(4*L+8), unsafe.Offsetof(c.reclaimed))
	require.Equal(t, uintptr(5*L), unsafe.Sizeof(c))
	require.Equal(t, uint64(unsafe.Sizeof(c)), futexControlSize)
	require.Equal(t, uintptr(8), unsafe.Sizeof(c.items), "sync.Notifier is 8 bytes")

	var v sysvControl
	require.Equal(t, uintptr(0), unsafe.Offsetof(v.head))
	require.Equal(t, uintptr(8), unsafe.Offsetof(v.tail))
	require.Equal(t, uintptr(16), unsafe.Offsetof(v.closed))
	require.Equal(t, uintptr(24), unsafe.Offsetof(v.repairs))
	require.Equal(t, uintptr(1*L), unsafe.Offsetof(v.items))
	require.Equal(t, uintptr(2*L), unsafe.Offsetof(v.slots))
	require.Equal(t, uintptr(3*L), unsafe.Sizeof(v))
	require.Equal(t, uint64(unsafe.Sizeof(v)), sysvControlSize)

	var s8 slot[uint64]
	require.Equal(t, uintptr(0), unsafe.Offsetof(s8.seq))
	require.Equal(t, uintptr(8), unsafe.Offsetof(s8.val))
	require.Equal(t, uint64(16), slotSize[uint64]())
	var s3 slot[[3]byte]
	require.Equal(t, uint64(16), slotSize[[3]byte](), "slots stay 8-aligned: %d", unsafe.Sizeof(s3))
	require.Equal(t, uint64(72), slotSize[item64]())

	var m member
	require.Equal(t, uintptr(0), unsafe.Offsetof(m.owner))
	require.Equal(t, uintptr(8), unsafe.Offsetof(m.lanes))
	require.Equal(t, uintptr(L), unsafe.Sizeof(m), "a member record is one line")
	require.Equal(t, uint64(L), memberSize)
}

func TestLaneWord(t *testing.T) {
	w := laneWord(false, 1000, 64)
	require.True(t, laneCovers(w, false, 1000))
	require.True(t, laneCovers(w, false, 1063))
	require.False(t, laneCovers(w, false, 1064))
	require.False(t, laneCovers(w, false, 999))
	require.False(t, laneCovers(w, true, 1000))
	w = laneWord(true, posLimit-1, 1)
	require.True(t, laneCovers(w, true, posLimit-1))
	require.False(t, laneCovers(0, false, 0))
}
